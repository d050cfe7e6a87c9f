"""Each batch partition shows its own numbers, even when one run (a single-run backfill) covers several:
read back from the instance's event log, as the UI shows them."""

import shutil

import dagster as dg
import polars as pl
import pytest
from dagster._core.event_api import PartitionKeyFilter  # the storage's own filter; not exported at the top level

from segpipe.core.shared.quarantine_rules import IMAGE_UNDECODABLE, NON_FINITE_COORDINATES, SIZE_MISMATCH, \
    quarantine_rule
from segpipe.defs.ingest.assets import ingest_annotation_batch
from segpipe.defs.rasterize.assets import annotation_masks, label_masks
from segpipe.defs.taxonomy.assets import mapped_shapes
from segpipe.core.taxonomy.model import load_taxonomy
from segpipe.demo import DEMO_CONFIG
from segpipe.store import keys
from segpipe.io.pipeline_config import PipelineConfig
from segpipe_tests.defs.test_ingest_asset import ingest_resources

A, B = "b001_vendor_a_alice", "b002_vendor_b_bob"  # CVAT and COCO; the demo plants different defects in each


@pytest.fixture
def two_batch_run(tiny_demo, ground_truth, tmp_path):
    """One run over both batches, as a backfill makes it, under the demo taxonomy without vendor_a's
    rule for Sky: batch A's unmapped label is Sky, batch B's the planted 'fire hydrant'."""
    yield from _batch_run(tiny_demo, tmp_path, tags={"dagster/asset_partition_range_start": A,
                                                     "dagster/asset_partition_range_end": B})


def _batch_run(tiny_demo, tmp_path, **partitions: object):
    landing, store = tmp_path / "landing", tmp_path / "store"
    for batch in (A, B):
        shutil.copytree(tiny_demo.landing_root / batch, landing / batch)
    taxonomy = tmp_path / "taxonomy.yaml"
    text = (DEMO_CONFIG / "taxonomy.yaml").read_text()
    assert "    Sky: sky\n" in text
    taxonomy.write_text(text.replace("    Sky: sky\n", "", 1))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("annotation_batches", [A, B])
        result = dg.materialize(
            [ingest_annotation_batch, mapped_shapes, label_masks, annotation_masks], instance=instance, **partitions,
            resources={**ingest_resources(tmp_path, landing),
                       "pipeline_config": PipelineConfig(taxonomy_path=str(taxonomy),
                                                         pipeline_path=str(DEMO_CONFIG / "pipeline.yaml"))},
        )
        assert result.success
        yield instance, result, store


def _metadata(instance: dg.DagsterInstance, asset: str, batch: str) -> dict[str, object]:
    """The latest materialization's metadata of one partition, as plain values (tables as row dicts)."""
    [record] = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[batch]), limit=1).records
    return {key: [dict(r.data) for r in value.records] if isinstance(value, dg.TableMetadataValue) else value.value
            for key, value in record.asset_materialization.metadata.items()}


def _table(store, asset: str, batch: str) -> pl.DataFrame:
    return pl.read_parquet(store / "tables" / asset / f"{batch}.parquet")


def test_each_partition_shows_its_own_quarantine_reasons_counts_and_format(two_batch_run, ground_truth):
    instance, _, store = two_batch_run
    planted = {(d["batch_id"], d["kind"]): d["file_name"] for d in ground_truth["defects"]}
    expected_rules = {A: {IMAGE_UNDECODABLE: planted[A, "corrupt_image"],
                          NON_FINITE_COORDINATES: planted[A, "non_finite_coordinates"]},
                      B: {SIZE_MISMATCH: planted[B, "size_mismatch"]}}
    formats = {A: "cvat_images_1.1", B: "coco_instances"}
    for batch in (A, B):
        images, quarantine = _table(store, "batch_images", batch), _table(store, "batch_quarantine", batch)
        assert _metadata(instance, "batch_images", batch) == {
            "entries_accepted": images.height, "format": formats[batch], "dagster/row_count": images.height}
        meta = _metadata(instance, "batch_quarantine", batch)
        assert meta["entries_quarantined"] == quarantine.height == meta["dagster/row_count"]
        reasons = {row["rule"]: row for row in meta["reasons"]}
        assert set(reasons) == set(expected_rules[batch])
        for rule, file_name in expected_rules[batch].items():
            assert file_name in reasons[rule]["files"]
            assert file_name in reasons[rule]["message"]
            assert reasons[rule]["what_to_do"] == quarantine_rule(rule).action
        assert sum(row["entries"] for row in meta["reasons"]) == quarantine.height
        shapes = _table(store, "batch_shapes", batch)
        assert _metadata(instance, "batch_shapes", batch)["shapes"] == shapes.height
    assert _table(store, "batch_images", A).height != _table(store, "batch_images", B).height


def test_each_partition_lists_only_its_own_unmapped_labels_with_the_rule_to_add(two_batch_run, ground_truth):
    instance, _, store = two_batch_run
    [hydrant] = [d for d in ground_truth["defects"] if d["kind"] == "unmapped_label"]
    assert hydrant["batch_id"] == B
    labels = {batch: _metadata(instance, "mapped_shapes", batch)["unmapped_labels"] for batch in (A, B)}
    assert [(row["source"], row["raw_label"]) for row in labels[A]] == [("vendor_a", "Sky")]
    assert [(row["source"], row["raw_label"]) for row in labels[B]] == [("vendor_b", hydrant["label"])]
    assert labels[A][0]["rule_to_add"] == "mappings.vendor_a: - {label: Sky, to: <class, void or skip>}"
    assert labels[B][0]["rule_to_add"] == "mappings.vendor_b: - {label: fire hydrant, to: <class, void or skip>}"
    assert labels[B][0]["examples"] == f"{B}/images/{hydrant['file_name']}"
    for batch in (A, B):
        meta = _metadata(instance, "mapped_shapes", batch)
        assert "batches" not in meta and meta["unmapped_policy"] == "void"
        assert meta["shapes"] == _table(store, "mapped_shapes", batch).height == meta["dagster/row_count"]
        masks = _metadata(instance, "annotation_masks", batch)
        assert masks["masks"] == _table(store, "batch_images", batch).height == masks["dagster/row_count"]
        assert masks["masks_written"] == masks["masks"]  # a fresh store: every mask of the batch is new
        assert masks["release_annotations_computed"] == 0  # a run over several batches leaves them to the release
        assert _metadata(instance, "label_masks", batch)["masks_written"] == masks["masks"]


def test_batch_checks_are_evaluated_per_partition_and_the_second_does_not_replace_the_first(two_batch_run):
    instance, result, store = two_batch_run
    evaluations = {(e.check_name, e.partition): e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {(name, batch) for name in ("entries_accepted", "batch_usable") for batch in (A, B)}
    for batch in (A, B):
        accepted = evaluations["entries_accepted", batch]
        assert not accepted.passed and accepted.severity == dg.AssetCheckSeverity.WARN and not accepted.blocking
        assert accepted.metadata["batch"].value == batch
        files = {row.data["file_name"] for row in accepted.metadata["entries"].records}
        assert files == set(_table(store, "batch_quarantine", batch)["file_name"])
        assert evaluations["batch_usable", batch].passed
        key = dg.AssetCheckKey(dg.AssetKey("batch_quarantine"), "entries_accepted")
        [latest] = instance.event_log_storage.get_asset_check_execution_history(
            key, limit=1, partition_filter=PartitionKeyFilter(key=batch))
        assert latest.partition == batch and latest.evaluation.metadata["batch"].value == batch


def test_a_batch_s_own_run_remembers_each_mask_s_release_annotations(tiny_demo, tmp_path):
    """batch_job's run of one batch: the YOLO outlines of every class mask and the COCO annotations
    of each one's shapes, remembered under the keys the release recalls them by (item_annotations)."""
    run = _batch_run(tiny_demo, tmp_path, partition_key=A)
    instance, _, store = next(run)  # the instance stays open while `run` is held
    ignore_index = load_taxonomy(tmp_path / "taxonomy.yaml").ignore_index
    masks = _table(store, "annotation_masks", A)
    assert masks.height > 0
    assert all((store / keys.yolo_outlines_memo(mask_key, ignore_index)).is_file() for mask_key in masks["mask_key"])
    shapes_memos = list((store / "coco-mask-shapes").rglob("*.json"))
    assert len(shapes_memos) == _table(store, "mapped_shapes", A)["entry_id"].n_unique()
    assert _metadata(instance, "annotation_masks", A)["release_annotations_computed"] == masks.height + len(shapes_memos)
