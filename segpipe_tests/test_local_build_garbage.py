"""A local build collects each run's garbage as the run ends: what a run leaves in reference cycles
holds its tables until collected, and a backfill's runs of ten batches each grew the process with
every run while Python's collector, among the definitions' objects, reached them late."""

import gc
import weakref

import dagster as dg

from segpipe.cli.local_build import _collected_per_run, _execute
from segpipe.cli.progress import RunProgress


class _Node:
    """A table held in a reference cycle, as Dagster's execution objects hold a run's outputs."""

    def __init__(self) -> None:
        self.itself = self
        self.table = bytearray(1 << 20)


def test_a_runs_tables_held_in_reference_cycles_are_freed_as_the_run_ends_and_nothing_stays_frozen(tmp_path):
    left: list[weakref.ref] = []

    @dg.asset
    def tables() -> int:
        left.append(weakref.ref(_Node()))
        return 1

    defs = dg.Definitions(assets=[tables], jobs=[dg.define_asset_job("tables_job")])
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        gc.disable()  # only the build's own collections run: without them the cycle would stay
        try:
            with _collected_per_run():
                assert gc.get_freeze_count() > 0  # the objects alive before the build are set aside
                assert _execute(defs, "tables_job", instance, RunProgress(), "tables").success
                assert left and left[0]() is None
        finally:
            gc.enable()
    assert gc.get_freeze_count() == 0
