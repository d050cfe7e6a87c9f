import hashlib
import io
import json
import re
from datetime import UTC, datetime

import numpy as np
import polars as pl
from PIL import Image

from segpipe.core.qa.pictures import problem_colour
from segpipe.core.rasterize.raster import decode_mask_png
from segpipe.core.release import layout
from segpipe.core.release.build import release_items
from segpipe_tests.core.release.release_fixture import TAXONOMY, build_release

MARCH, APRIL = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)


def test_sha256sums_lists_every_other_member_sorted_and_comes_last():
    with build_release().archive() as archive:
        names = archive.namelist()
        lines = archive.read("SHA256SUMS").decode().splitlines()
        expected = [f"{hashlib.sha256(archive.read(n)).hexdigest()}  {n}" for n in sorted(names[:-1])]
    assert names[-1] == "SHA256SUMS"
    assert lines == expected
    assert {"README.md", "meta.json", "index.csv", "coco/coco.json"} <= set(names)


def test_meta_records_lineage_which_the_content_version_leaves_out():
    first, again = build_release("run-1", "2026-12-01T22:00:00Z"), build_release("run-2", "2026-12-02T08:30:00Z")
    meta = first.contents.meta
    assert meta["lineage"] == {
        "taxonomy_version": TAXONOMY.taxonomy_version, "taxonomy_hash": TAXONOMY.content_hash,
        "source_batches": ["batch-0", "batch-1"], "segpipe_version": "0.1.0",
        "run_id": "run-1", "created_at": "2026-12-01T22:00:00Z"}
    assert again.contents.version == first.contents.version
    assert again.contents.meta["lineage"]["run_id"] == "run-2"
    with first.archive() as a, again.archive() as b:
        differing = {n for n in a.namelist() if a.read(n) != b.read(n)}
    assert differing == {"meta.json", "SHA256SUMS"}


def test_meta_counts_classes_pixels_and_splits():
    meta = build_release().contents.meta
    assert meta["classes"] == [{"id": 0, "name": "road", "color": [128, 64, 128]},
                               {"id": 1, "name": "car", "color": [0, 0, 142]},
                               {"id": 2, "name": "sky", "color": [70, 130, 180]}]
    # train: 11 sky, 12 road, 1 ignored; val: 6 car, 18 road; test: 6 road, 18 ignored
    assert meta["class_pixels"] == {"road": 36, "car": 6, "sky": 11} and meta["ignored_pixels"] == 19
    assert meta["splits"] == {"test": 1, "train": 1, "val": 1}
    assert meta["image_sizes"] == [{"width": 6, "height": 4, "count": 3}]
    assert meta["task"] == "semantic_segmentation" and meta["mask_encoding"] == "grayscale"
    assert meta["ignore_index"] == 255 and meta["qa_failures"] == {"labels_mapped": 1}


def test_manifest_carries_class_pixels_and_qa_status_per_image():
    built = build_release()
    with built.archive() as archive:
        index = pl.read_csv(io.BytesIO(archive.read("index.csv")))
        for row in index.iter_rows(named=True):
            mask = decode_mask_png(archive.read(row["mask_path"]))
            assert np.array_equal(mask, built.masks[row["split"]])
            assert row["mask_sha256"] == hashlib.sha256(archive.read(row["mask_path"])).hexdigest()
    by_split = {r["split"]: r for r in index.iter_rows(named=True)}
    assert json.loads(by_split["train"]["class_pixels"]) == {"road": 12, "car": 0, "sky": 11}
    assert by_split["train"]["ignored_pixels"] == 1 and by_split["test"]["ignored_pixels"] == 18
    assert [(by_split[s]["qa_status"], by_split[s]["qa_warnings"]) for s in ("train", "val")] == [
        ("passed", None), ("warned", "labels_mapped")]
    assert index.columns == built.contents.manifest.columns


def test_datasheet_shows_class_shares_splits_chart_qa_and_a_pytorch_loader():
    with build_release().archive() as archive:
        readme = archive.read("README.md").decode()
    assert "| 1 | car | `#00008e` | 8.33% |" in readme  # 6 of 72 pixels; a colour as its hex code
    assert "| 255 | (ignored) | | 26.39% |" in readme  # 19 of 72
    assert "| val | 1 |" in readme and "![Class distribution per split](sampling/distribution.png)" in readme
    assert "| labels_mapped | 1 |" in readme
    assert "class ReleaseDataset(torch.utils.data.Dataset)" in readme and "ignore_index=255" in readme
    assert "segpipe" not in readme.split("```python")[1]


def test_datasheet_shows_the_legend_and_the_first_qa_thumbnails_which_are_members_of_the_release():
    with build_release(every_output=True).archive() as archive:
        readme = archive.read(layout.DATASHEET).decode()
        names = set(archive.namelist())
        with Image.open(io.BytesIO(archive.read(layout.LEGEND))) as legend:
            colours = {colour for _, colour in legend.convert("RGB").getcolors(1 << 16)}
    shown = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert shown == [layout.LEGEND, layout.DISTRIBUTION_CHART, "qa/thumbnails/labels_mapped/e1.png"]
    assert set(shown) <= names
    assert "![labels_mapped: batch-1 / images/val.png](qa/thumbnails/labels_mapped/e1.png)" in readme
    assert {c.color for c in TAXONOMY.classes} | {problem_colour(TAXONOMY)} <= colours


def test_released_images_leave_the_stored_metadata_out_and_the_manifest_hashes_what_is_released():
    built = build_release()
    with built.archive() as archive:
        index = pl.read_csv(io.BytesIO(archive.read("index.csv")), infer_schema=False)
        readme = archive.read("README.md").decode()
        for row in index.iter_rows(named=True):
            stored = built.contents.store.read(f"images/{row['image_id']}.png")
            released = archive.read(row["image_path"])
            assert b"Alice Example" in stored and b"Alice Example" not in released
            assert row["image_sha256"] == hashlib.sha256(released).hexdigest()
            with Image.open(io.BytesIO(released)) as image, Image.open(io.BytesIO(stored)) as original:
                assert np.array_equal(np.asarray(image), np.asarray(original))
    assert "EXIF (GPS position, camera serial number, artist), XMP, IPTC and comments were removed" in readme


def _images(**columns: list) -> pl.DataFrame:
    """batch_images rows for release_items: the columns given, the rest of the metadata unknown."""
    n = len(columns["entry_id"])
    metadata = {c: [None] * n for c in ("camera", "city", "time_of_day", "weather", "sequence_id")}
    defaults = {"source_uri": ["u"] * n, "width": [1] * n, "height": [1] * n, "landed_at": [MARCH] * n}
    return pl.DataFrame({**defaults, **metadata, **columns},
                        schema_overrides={c: pl.String for c in metadata})


def test_release_items_lists_the_rules_failed_by_the_entries_qa_kept():
    """e2 is excluded: its own warning (polygon_zero_area) is not the released image's."""
    splits = pl.DataFrame({"image_id": ["i1", "i2"], "split": ["train", "val"]})
    consensus = pl.DataFrame({"image_id": ["i1", "i2"], "status": ["accepted", "accepted"], "mask_key": ["m1", "m2"],
                              "instance_mask_key": [None, None], "mask_source": ["single", "fused"],
                              "agreement": [None, 0.9], "class_pixels": [[1] * 256, [2] * 256]},
                             schema_overrides={"instance_mask_key": pl.String, "agreement": pl.Float64})
    images = _images(entry_id=["e1", "e2", "e3"], batch_id=["b", "b", "c"], file_name=["x", "y", "y"],
                     image_id=["i1", "i2", "i2"], image_key=["k1", "k2", "k2"], annotator=["a", "a", "b"])
    qa = pl.DataFrame({"entry_id": ["e2", "e3", "e3", "e2", "e2", "e1"],
                       "check_id": ["tiny_region", "labels_mapped", "tiny_region", "mask_ids", "polygon_zero_area",
                                    "labels_mapped"],
                       "passed": [False, False, False, False, False, True],
                       "excludes_entry": [False, False, False, True, False, False],
                       "reason": ["r"] * 6})
    items = release_items(splits, consensus, images, qa)
    assert items.select("image_id", "qa_warnings").rows() == [("i1", None), ("i2", "labels_mapped;tiny_region")]


def test_a_released_image_takes_its_name_batches_and_metadata_from_the_current_deliveries_first():
    """ann delivered i1 in batch a (city wrong) and corrected it in batch b, which states no weather;
    bob labelled it in batch c."""
    splits = pl.DataFrame({"image_id": ["i1"], "split": ["train"]})
    consensus = pl.DataFrame({"image_id": ["i1"], "status": ["accepted"], "mask_key": ["m1"],
                              "instance_mask_key": [None], "mask_source": ["fused"], "agreement": [0.9],
                              "class_pixels": [[{"class_id": 1, "pixels": 9}]]},
                             schema_overrides={"instance_mask_key": pl.String})
    images = _images(entry_id=["stale", "fixed", "bob"], batch_id=["a", "b", "c"],
                     file_name=["old.jpg", "new.jpg", "bob.jpg"], image_id=["i1"] * 3, image_key=["k1"] * 3,
                     annotator=["ann", "ann", "bob"], landed_at=[MARCH, APRIL, MARCH],
                     city=["oslo", "bergen", None], weather=["rain", None, None])
    qa = pl.DataFrame({"entry_id": ["stale"], "check_id": ["entry_not_superseded"], "passed": [False],
                       "excludes_entry": [True], "reason": ["replaced by b/new.jpg, delivered later"]})
    [item] = release_items(splits, consensus, images, qa).to_dicts()
    assert (item["file_name"], item["city"], item["weather"], item["source_batches"], item["annotators"]) == (
        "new.jpg", "bergen", "rain", "b;c", "ann;bob")


def test_yolo_labels_sit_where_ultralytics_looks_for_them_beside_a_data_yaml():
    with build_release().archive() as archive:
        index = pl.read_csv(io.BytesIO(archive.read("index.csv")), infer_schema=False)
        labels = {row["split"]: archive.read(row["image_path"].replace("images/", "labels/", 1).rsplit(".", 1)[0] + ".txt")
                  for row in index.iter_rows(named=True)}
        data_yaml = archive.read("yolo/data.yaml").decode()
    assert labels == {  # train: sky over road, val: a car on road, test: road under ignored pixels
        "train": b"0 0.000000 0.500000 0.000000 1.000000 1.000000 1.000000 1.000000 0.500000\n"
                 b"2 0.000000 0.250000 0.000000 0.500000 1.000000 0.500000 1.000000 0.000000 0.166667 0.000000 "
                 b"0.166667 0.250000\n",
        "val": b"0 0.000000 0.000000 0.000000 1.000000 1.000000 1.000000 1.000000 0.000000\n"
               b"1 0.166667 0.250000 0.166667 0.750000 0.666667 0.750000 0.666667 0.250000\n",
        "test": b"0 0.000000 0.750000 0.000000 1.000000 1.000000 1.000000 1.000000 0.750000\n"}
    assert "train: ../images/train\n" in data_yaml and "  1: car\n" in data_yaml
