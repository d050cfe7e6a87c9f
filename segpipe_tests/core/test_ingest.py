from pathlib import Path

import fsspec
import polars as pl
import pytest

from segpipe.core.ingest import ingest_batch
from segpipe.core.landing import list_ready_batches, parse_batch_manifest
from segpipe.core.errors import InputError


@pytest.fixture(scope="module")
def ingested(tiny_demo):
    fs = fsspec.filesystem("file")
    root = str(tiny_demo.landing_root)
    return {batch: ingest_batch(fs, root, batch) for batch in list_ready_batches(fs, root)}


def test_every_file_and_annotation_is_accepted_or_quarantined(ingested, tiny_demo, ground_truth):
    for batch in ground_truth["batches"]:
        result = ingested[batch["batch_id"]]
        images_dir = Path(tiny_demo.landing_root) / batch["batch_id"] / "images"
        files = {str(p.relative_to(images_dir)) for p in images_dir.rglob("*") if p.is_file()}
        seen = set(result.images["file_name"]) | set(result.quarantine["file_name"])
        assert result.images.height + result.quarantine.height == len(files) == len(seen)
        assert seen == files


@pytest.mark.parametrize(("kind", "rule"), [
    ("corrupt_image", "image_undecodable"),
    ("size_mismatch", "size_mismatch"),
    ("non_finite_coordinates", "non_finite_coordinates"),
])
def test_planted_defects_are_quarantined_with_the_right_rule(ingested, ground_truth, kind, rule):
    [defect] = [d for d in ground_truth["defects"] if d["kind"] == kind]
    quarantine = ingested[defect["batch_id"]].quarantine
    row = quarantine.filter(pl.col("file_name") == defect["file_name"])
    assert row["rule"].to_list() == [rule]
    assert defect["file_name"] in row["message"][0]


def test_shared_images_have_one_content_hash_across_batches(ingested, ground_truth):
    images = pl.concat([r.images for r in ingested.values()])
    for file_name, annotators in ground_truth["shared"].items():
        rows = images.filter(pl.col("file_name").str.ends_with(file_name.rsplit("/", 1)[-1]))
        assert set(rows["annotator"]) >= set(annotators)
        assert rows["image_id"].n_unique() == 1


def test_metadata_columns_are_filled_from_metadata_csv(ingested):
    images = pl.concat([r.images for r in ingested.values()])
    assert images["time_of_day"].null_count() == 0 and images["sequence_id"].null_count() == 0


def test_a_half_uploaded_batch_is_not_listed(tmp_path):
    (tmp_path / "b1").mkdir()
    (tmp_path / "b1" / "annotations.xml").write_text("<annotations/>")
    (tmp_path / "b2").mkdir()
    (tmp_path / "b2" / "batch.json").write_text("{}")
    assert list_ready_batches(fsspec.filesystem("file"), str(tmp_path)) == ["b2"]


def test_an_invalid_manifest_quarantines_every_file_of_the_batch(tmp_path):
    batch = tmp_path / "b1"
    (batch / "images").mkdir(parents=True)
    (batch / "images" / "a.jpg").write_bytes(b"x")
    (batch / "batch.json").write_text('{"format": "labelbox"}')
    result = ingest_batch(fsspec.filesystem("file"), str(tmp_path), "b1")
    assert result.images.height == 0
    assert result.quarantine["file_name"].to_list() == ["images/a.jpg"]
    assert result.quarantine["rule"].to_list() == ["invalid_batch_manifest"]


def test_manifest_paths_must_stay_inside_the_batch():
    with pytest.raises(InputError, match="relative path inside the batch"):
        parse_batch_manifest(b'{"format": "coco_instances", "annotation_file": "../x.json", "annotator": "a", "source": "s"}', "b", "m")
