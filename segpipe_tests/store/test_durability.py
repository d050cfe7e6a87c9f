"""Durability is paid once per step: an artefact its readers check is written without its own
fsync and reaches the disk at the step's barrier, run before the step's outputs are recorded;
what a reader trusts as found (tables, split assignments, stored images) is fsynced as written.
Power loss cannot be staged here: these tests watch the real fsync/syncfs calls go by."""

import os

import dagster as dg
import polars as pl
import pytest

from segpipe.io.object_store import ObjectStore
from segpipe.io.parquet_io_manager import PolarsParquetIOManager
from segpipe.store import atomic, keys

MASK = keys.class_mask("b001", "e1", "0123456789abcdef")
MEMO = keys.mask_structure_memo("0123456789abcdef")
IMAGE = keys.image("ab12cd", "", ".jpg")


@pytest.fixture
def fsyncs(monkeypatch) -> list[int]:
    """The file descriptors fsynced, each call still made."""
    seen: list[int] = []
    real = os.fsync

    def counted(fd: int) -> None:
        seen.append(fd)
        real(fd)

    monkeypatch.setattr(atomic.os, "fsync", counted)
    return seen


@pytest.fixture
def barriers(monkeypatch) -> list[str]:
    """The folders whose filesystem was synced, each call still made."""
    seen: list[str] = []
    real = atomic.sync_filesystem

    def counted(folder: str) -> None:
        seen.append(folder)
        real(folder)

    monkeypatch.setattr(atomic, "sync_filesystem", counted)
    atomic.sync_deferred_writes()  # nothing left over from another test
    seen.clear()
    return seen


def test_checked_artefacts_wait_for_the_barrier_and_trusted_objects_are_fsynced_as_written(tmp_path, fsyncs, barriers):
    store = ObjectStore(root=str(tmp_path))
    store.write_bytes(MASK, b"png")
    store.write_bytes(MEMO, b"{}")
    assert fsyncs == []
    store.write_bytes(IMAGE, b"jpeg")
    store.write_bytes(keys.ASSIGNMENTS, b"parquet")
    assert len(fsyncs) == 2
    assert atomic.sync_deferred_writes() == 1  # one filesystem, however many objects
    assert len(barriers) == 1 and os.stat(barriers[0]).st_dev == os.stat(tmp_path).st_dev
    assert atomic.sync_deferred_writes() == 0  # nothing written since: no second sync


def test_only_artefacts_every_reader_checks_skip_their_own_fsync():
    digest = "0123456789abcdef"
    checked = [keys.label_mask("b", "e", digest), keys.class_mask("b", "e", digest), keys.instance_mask("b", "e", digest),
               keys.fused_mask("i", digest), keys.agreement_map("i", digest), keys.confidence_map("i", digest),
               keys.consensus_memo("i", digest), keys.reliability_fusion("i", digest), keys.qa_thumbnail("r", "e", digest),
               keys.mask_structure_memo(digest), keys.qa_batch_memo("b", digest), keys.distribution_chart(digest),
               keys.coco_annotations_memo(MASK), keys.coco_shapes_memo(MASK, digest), keys.coco_fragment(digest),
               keys.yolo_outlines_memo(MASK, 255)]
    trusted = [IMAGE, keys.ASSIGNMENTS, keys.batch_removal("b", "t"), f"{keys.TABLES_DIR}/t.parquet",
               f"{keys.release_prefix('d', 'v')}/{keys.RELEASE_MARKER}", keys.sequence_claim("d", 1)]
    assert [k for k in checked if not keys.checked_on_read(k)] == []
    assert [k for k in trusted if keys.checked_on_read(k)] == []


def test_a_step_syncs_its_artefacts_once_before_its_tables_are_written(tmp_path, fsyncs, barriers, monkeypatch):
    """Several outputs and many artefacts: one barrier, and it runs before the first table (so before
    Dagster records a materialization naming those artefacts)."""
    tables = tmp_path / "tables"
    tables_at_barrier: list[bool] = []
    counted = atomic.sync_filesystem

    def noting_tables(folder: str) -> None:
        tables_at_barrier.append(any(tables.rglob("*.parquet")))
        counted(folder)

    monkeypatch.setattr(atomic, "sync_filesystem", noting_tables)

    @dg.multi_asset(outs={"masks": dg.AssetOut(), "memos": dg.AssetOut()})
    def drawn(object_store: ObjectStore):
        for n in range(5):
            object_store.write_bytes(keys.class_mask("b001", f"e{n}", "0123456789abcdef"), b"png")
            object_store.write_bytes(keys.mask_structure_memo(f"{n:016x}"), b"{}")
        yield dg.Output(pl.DataFrame({"n": [5]}), output_name="masks")
        yield dg.Output(pl.DataFrame({"n": [5]}), output_name="memos")

    with dg.instance_for_test() as instance:
        result = dg.materialize([drawn], instance=instance, resources={
            "object_store": ObjectStore(root=str(tmp_path)),
            "io_manager": PolarsParquetIOManager(base_path=str(tables))})
    assert result.success
    assert len(barriers) == 1 and tables_at_barrier == [False]
    assert len(fsyncs) == 2  # the two tables, fsynced as written; none of the ten artefacts
    assert atomic.sync_deferred_writes() == 0


def test_the_barrier_on_a_store_syncs_what_it_holds_and_clears_what_was_deferred(tmp_path, barriers):
    store = ObjectStore(root=str(tmp_path))
    store.write_bytes(MASK, b"png")
    store.make_durable()
    assert len(barriers) == 1
    assert atomic.sync_deferred_writes() == 0
