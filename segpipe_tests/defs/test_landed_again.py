"""A done batch landed again after its ingest read it (a re-delivery into the same folder) is named
by defs/batches.landed_again, which `segpipe build` and `segpipe batches` print, from when its ingest
recorded the batch it read had landed (batch_files' `landed_at`)."""

import os
import shutil
from datetime import UTC, datetime

import dagster as dg

from segpipe.defs.batches import BATCH_DONE_ASSET, LANDED_AT, LandedAgain, landed_again
from segpipe_tests.defs.test_ingest_asset import materialize_batch

BATCH = "b002_vendor_b_bob"
READ = datetime(2026, 5, 4, 12, 30, 15, tzinfo=UTC).timestamp()  # when the delivery ingest reads landed
AGAIN = READ + 3600  # a second delivery into the same folder, an hour later


def _land(marker, at: float) -> None:
    os.utime(marker, (at, at))


def _recorded(instance: dg.DagsterInstance) -> float:
    [record] = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("batch_files"), asset_partitions=[BATCH]), limit=1).records
    return record.asset_materialization.metadata[LANDED_AT].value


def test_a_done_batch_landed_again_since_its_ingest_is_named_until_it_is_read_again(tiny_demo, tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(tiny_demo.landing_root / BATCH, landing / BATCH)
    marker = landing / BATCH / "batch.json"
    _land(marker, READ)
    with dg.instance_for_test() as instance:
        assert materialize_batch(tmp_path, landing, BATCH, instance).success
        assert _recorded(instance) == READ
        assert landed_again(instance, {BATCH: AGAIN}) == []  # not done: the next build runs it anyway

        instance.report_runless_asset_event(dg.AssetMaterialization(BATCH_DONE_ASSET, partition=BATCH))
        assert landed_again(instance, {BATCH: READ}) == []
        [again] = landed_again(instance, {BATCH: AGAIN, "b999_not_known": AGAIN})
        assert again == LandedAgain(BATCH, READ, AGAIN)
        assert str(again) == (
            f"{BATCH}: landed again (2026-05-04 13:30:15 UTC) after its ingest read the one of 2026-05-04 12:30:15 "
            f"UTC; releases hold what was read then. `segpipe batch retry {BATCH}` reads it again; a correction "
            "is better landed as a new batch (docs/landing.md, Corrections)")

        _land(marker, AGAIN)  # `segpipe batch retry`: the batch read again, as it is now
        assert materialize_batch(tmp_path, landing, BATCH, instance).success
        assert _recorded(instance) == AGAIN and landed_again(instance, {BATCH: AGAIN}) == []
