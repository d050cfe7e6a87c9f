"""The Parquet IO manager's own errors follow the steps' retry rule (segpipe/io/transient_errors.py):
one that cannot go away fails the step at once, naming what was read or written and why; one that can
(a store that stops answering) is retried. Real failures: a base path that cannot be a folder, a table
that is not Parquet, a paused SeaweedFS."""

import os
import signal
import uuid

import dagster as dg
import polars as pl
import pytest

from segpipe.io.parquet_io_manager import PolarsParquetIOManager
from segpipe_tests.s3_server import run_s3_server

RETRIED = dg.RetryPolicy(max_retries=2)
RETRY_EVENTS = {dg.DagsterEventType.STEP_UP_FOR_RETRY, dg.DagsterEventType.STEP_RESTARTED}


def _failure(result: dg.ExecuteInProcessResult) -> str:
    """The description of the run's one step failure; the run had no retry."""
    assert not result.success
    assert not {e.event_type for e in result.all_events} & RETRY_EVENTS
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    return failure.step_failure_data.user_failure_data.description


def test_a_table_that_cannot_be_written_fails_the_step_once_naming_the_path(tmp_path):
    base = tmp_path / "tables"
    base.write_text("a file where the tables' folder should be")  # as root, a read-only folder would still be written
    attempts = []

    @dg.asset(retry_policy=RETRIED)
    def counts() -> pl.DataFrame:
        attempts.append(1)
        return pl.DataFrame({"n": [1, 2]})

    with dg.instance_for_test() as instance:
        result = dg.materialize([counts], instance=instance, raise_on_error=False,
                                resources={"io_manager": PolarsParquetIOManager(base_path=str(base))})
    description = _failure(result)
    assert len(attempts) == 1
    assert description.startswith(f"writing table counts under {base}: FileExistsError: ")
    assert str(base) in description.split(": FileExistsError: ")[1]


def test_a_table_that_is_not_parquet_fails_its_reader_once_naming_the_file(tmp_path):
    base = tmp_path / "tables"
    attempts = []

    @dg.asset
    def counts() -> pl.DataFrame:
        return pl.DataFrame({"n": [1, 2]})

    @dg.asset(retry_policy=RETRIED)
    def total(counts: pl.DataFrame) -> pl.DataFrame:
        attempts.append(1)
        return counts.select(pl.col("n").sum())

    resources = {"io_manager": PolarsParquetIOManager(base_path=str(base))}
    with dg.instance_for_test() as instance:
        assert dg.materialize([counts, total], instance=instance, resources=resources).success
        (base / "counts.parquet").write_bytes(b"PAR1 then not Parquet at all")
        result = dg.materialize([counts, total], selection=[total], instance=instance, raise_on_error=False,
                                resources=resources)
    description = _failure(result)
    assert attempts == [1]  # the first run's; the second failed loading its input, once
    assert description == (
        f"reading table counts under {base}: DamagedArtefact: {base}/counts.parquet: not a Parquet table "
        "(parquet: File out of specification: The file must end with PAR1 or PARE); materialize counts again "
        "(for a batch's table, `segpipe batch retry ID`)")



def test_batch_tables_written_before_a_column_was_added_are_read_with_it_as_nulls(tmp_path):
    """A table ingested by an earlier segpipe lacks a later nullable column (landed_at): read across
    batches beside newer tables, and upgraded where the column is read, instead of failing the reader."""
    from segpipe.core.shared.schemas import ImageRecord, with_later_columns

    batches = dg.StaticPartitionsDefinition(["old", "new"])
    base = tmp_path / "tables"

    @dg.asset(partitions_def=batches)
    def images(context: dg.AssetExecutionContext) -> pl.DataFrame:
        frame = pl.DataFrame({"entry_id": [context.partition_key]})
        return frame if context.partition_key == "old" else frame.with_columns(landed_at=pl.lit(7))

    @dg.asset(deps=[images])
    def landing_times(images: pl.DataFrame) -> pl.DataFrame:
        return images.sort("entry_id")

    resources = {"io_manager": PolarsParquetIOManager(base_path=str(base))}
    with dg.instance_for_test() as instance:
        for key in ("old", "new"):
            assert dg.materialize([images], partition_key=key, instance=instance, resources=resources).success
        result = dg.materialize([images, landing_times], selection=[landing_times], instance=instance,
                                resources=resources)
    assert result.output_for_node("landing_times").to_dicts() == [
        {"entry_id": "new", "landed_at": 7}, {"entry_id": "old", "landed_at": None}]
    upgraded = with_later_columns(pl.DataFrame({"entry_id": ["e"]}), ImageRecord)
    assert upgraded.schema["landed_at"] == pl.Datetime("us", "UTC") and upgraded["landed_at"].is_null().all()
    assert "image_id" not in upgraded.columns  # only nullable columns are added; a required one stays missing


def test_a_reader_of_batch_tables_reads_each_batch_when_asked_in_the_columns_asked_for(tmp_path):
    """BatchTables: one batch at a time, only the columns asked for (a column an older table lacks is
    left out), and a digest that changes with the batch's table and only with it."""
    from segpipe.core.shared.batch_tables import BatchTables

    batches = dg.StaticPartitionsDefinition(["b1", "b2", "b3"])
    base = tmp_path / "tables"
    seen = {}

    @dg.asset(partitions_def=batches)
    def shapes(context: dg.AssetExecutionContext) -> pl.DataFrame:
        frame = pl.DataFrame({"entry_id": [context.partition_key] * 2, "rings": [[[1.0, 2.0]], [[3.0]]]})
        return frame if context.partition_key == "b1" else frame.with_columns(label=pl.lit("car"))

    @dg.asset(deps=[shapes])
    def labels(shapes: BatchTables) -> pl.DataFrame:
        seen["batches"] = list(shapes.batches)
        seen["digests"] = {batch: shapes.digest(batch) for batch in shapes.batches}
        seen["columns"] = {batch: shapes.read(batch, ("entry_id", "label")).columns for batch in shapes.batches}
        return shapes.concat(("entry_id", "label"))

    resources = {"io_manager": PolarsParquetIOManager(base_path=str(base))}
    with dg.instance_for_test() as instance:
        for key in ("b1", "b2", "b3"):
            assert dg.materialize([shapes], partition_key=key, instance=instance, resources=resources).success
        result = dg.materialize([shapes, labels], selection=[labels], instance=instance, resources=resources)
        first = dict(seen["digests"])
        assert dg.materialize([shapes], partition_key="b3", instance=instance, resources=resources).success
        dg.materialize([shapes, labels], selection=[labels], instance=instance, resources=resources)
    assert seen["batches"] == ["b1", "b2", "b3"]
    assert seen["columns"] == {"b1": ["entry_id"], "b2": ["entry_id", "label"], "b3": ["entry_id", "label"]}
    assert result.output_for_node("labels").to_dicts() == [
        {"entry_id": "b1", "label": None}, {"entry_id": "b1", "label": None},
        {"entry_id": "b2", "label": "car"}, {"entry_id": "b2", "label": "car"},
        {"entry_id": "b3", "label": "car"}, {"entry_id": "b3", "label": "car"}]
    assert len(set(first.values())) == 3  # b2 and b3 differ in entry_id
    assert seen["digests"] == first  # the same table written again has the same digest


@pytest.mark.s3
def test_a_store_that_stops_answering_while_a_table_is_written_is_retried(tmp_path, monkeypatch):
    """The step's first attempt pauses the store (SIGSTOP), so writing its table times out; the retry
    resumes it and writes. The server is private: pausing the session's would stall other tests."""
    with run_s3_server(tmp_path / "weed") as server:
        for name, value in (("AWS_ACCESS_KEY_ID", server.access_key), ("AWS_SECRET_ACCESS_KEY", server.secret_key),
                            ("AWS_DEFAULT_REGION", server.region), ("AWS_EC2_METADATA_DISABLED", "true")):
            monkeypatch.setenv(name, value)
        bucket = f"segpipe-{uuid.uuid4().hex[:16]}"
        server.filesystem().mkdir(bucket)
        io_manager = PolarsParquetIOManager(base_path=f"s3://{bucket}/tables", endpoint_url=server.endpoint_url,
                                            connect_timeout_s=1.0, read_timeout_s=2.0, request_attempts=1)

        @dg.asset(retry_policy=dg.RetryPolicy(max_retries=1))
        def counts(context: dg.AssetExecutionContext) -> pl.DataFrame:
            os.killpg(server.pid, signal.SIGSTOP if context.retry_number == 0 else signal.SIGCONT)
            return pl.DataFrame({"n": [1, 2]})

        try:
            with dg.instance_for_test() as instance:
                result = dg.materialize([counts], instance=instance, raise_on_error=False,
                                        resources={"io_manager": io_manager})
        finally:
            os.killpg(server.pid, signal.SIGCONT)
        events = [e.event_type for e in result.all_events]
        assert result.success and events.count(dg.DagsterEventType.STEP_UP_FOR_RETRY) == 1, events
        [retry] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
        assert retry.event_specific_data.error.cause.cls_name == "ReadTimeoutError"  # the write timed out
        stored = server.filesystem().cat_file(f"{bucket}/tables/counts.parquet")
        assert pl.read_parquet(stored).equals(pl.DataFrame({"n": [1, 2]}))
