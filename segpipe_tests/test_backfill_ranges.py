"""How `segpipe backfill` cuts the batches into remapping runs for its processes."""

from hypothesis import given
from hypothesis import strategies as st

from segpipe.cli.local_build import backfill_ranges
from segpipe.defs.partitions import BACKFILL_RUN_BATCHES


@given(st.integers(1, 300), st.integers(1, 12))
def test_ranges_cover_the_batches_in_order_and_hold_one_run_of_tables_at_once(count, workers):
    batches = [f"b{n:04d}" for n in range(count)]
    ranges = backfill_ranges(batches, workers)
    assert [batch for _, chunk in ranges for batch in chunk] == batches
    assert [start for start, _ in ranges] == [batches.index(chunk[0]) for _, chunk in ranges]
    # the processes' runs together hold at most BACKFILL_RUN_BATCHES batches (one each when there are more processes)
    assert all(len(chunk) <= max(1, BACKFILL_RUN_BATCHES // workers) for _, chunk in ranges)
    assert len(ranges) >= min(workers, count)  # every process gets a run when there are enough batches
