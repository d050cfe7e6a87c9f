"""A corrected re-delivery ships in place of the annotation it corrects, and the ledger says so: real
builds on the tiny demo, before and after an annotator lands a correction."""

import json
import os
import shutil
import zipfile
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from PIL import Image

from segpipe.cli.local_build import run_local_build
from segpipe.core.rasterize.raster import decode_mask_png
from segpipe.definitions import defs as load_defs
from segpipe.demo.landing import VOCABULARIES
from segpipe.environment import current_environment
from segpipe_tests.conftest import tiny_demo_pipeline
from segpipe_tests.e2e.test_local_build import released_batch

pytestmark = pytest.mark.slow
ORIGINAL = "b001_vendor_a_alice"
CORRECTION = "b005_vendor_a_fix"  # sorts after the batch it corrects, whose annotation a "first batch wins" rule kept
ROAD = 0  # the demo taxonomy's id of vendor_a's "Road"


def land_correction(landing: Path, image: Path) -> None:
    """alice delivers `image` again, as LabelMe under another name, now all road, an hour after her first batch."""
    batch = landing / CORRECTION
    (batch / "fix").mkdir(parents=True)
    shutil.copy(image, batch / "fix" / "redo.jpg")
    with Image.open(image) as opened:
        width, height = opened.size
    road = {"label": VOCABULARIES["vendor_a"]["road"], "shape_type": "polygon", "group_id": None, "flags": {},
            "points": [[0, 0], [width, 0], [width, height], [0, height]]}
    (batch / "fix" / "redo.json").write_text(json.dumps({
        "version": "5.5.0", "flags": {}, "shapes": [road], "imagePath": "redo.jpg", "imageData": None,
        "imageHeight": height, "imageWidth": width}))
    (batch / "batch.json").write_text(json.dumps({"format": "labelme", "annotator": "alice", "source": "vendor_a"}))
    first = (landing / ORIGINAL / "batch.json").stat().st_mtime
    os.utime(batch / "batch.json", (first + 3600, first + 3600))


def tiny_demo_project(env: pytest.MonkeyPatch, tiny_demo, folder: Path, pipeline: str) -> Path:
    """A project of the tiny demo's landed batches (copied: a test lands more) under `folder`, with
    `pipeline` as its pipeline.yaml, chosen through the environment; its landing zone."""
    landing = folder / "landing"
    shutil.copytree(Path(tiny_demo.landing_root), landing)
    env.setenv("SEGPIPE_LANDING_ROOT", str(landing))
    env.setenv("SEGPIPE_STORAGE_ROOT", str(folder / "store"))
    env.setenv("SEGPIPE_TAXONOMY", str(Path(tiny_demo.landing_root).parent / "taxonomy.yaml"))
    (folder / "pipeline.yaml").write_text(pipeline)
    env.setenv("SEGPIPE_PIPELINE_CONFIG", str(folder / "pipeline.yaml"))
    return landing


def test_a_corrected_redelivery_ships_and_the_ledger_names_what_it_replaced(tiny_demo, tmp_path):
    with pytest.MonkeyPatch.context() as env, dg.instance_for_test() as instance:
        landing = tiny_demo_project(env, tiny_demo, tmp_path, tiny_demo_pipeline())
        before = run_local_build(load_defs(), instance, current_environment())
        assert before.success, before.failed_checks
        old_manifest = pl.read_parquet(Path(before.release_metadata["release"]) / "manifest.parquet")
        # The image only alice labelled; her batch also holds a copy of it (a planted defect, filtered).
        [row] = old_manifest.filter((pl.col("source_batches") == released_batch(ORIGINAL))
                                    & (pl.col("mask_source") == "single")).to_dicts()
        land_correction(landing, landing / ORIGINAL / row["original_file_name"])

        after = run_local_build(load_defs(), instance, current_environment())
        assert after.success, after.failed_checks
        release = Path(after.release_metadata["release"])
        ledger = pl.read_parquet(release / "ledger.parquet")
        manifest = pl.read_parquet(release / "manifest.parquet")
        diff = json.loads((release / "diff.json").read_text())
        items = pl.read_parquet(release / "diff.parquet")
        with zipfile.ZipFile(after.release_metadata["archive"]) as archive:
            [new_row] = manifest.filter(pl.col("image_id") == row["image_id"]).to_dicts()
            mask = decode_mask_png(archive.read(new_row["mask_path"]))

    fix = f"{released_batch(CORRECTION)}/fix/redo.jpg"
    stale = f"{released_batch(ORIGINAL)}/{row['original_file_name']}"
    copy = stale.replace(".jpg", "_copy.jpg")
    assert (mask == ROAD).all()  # the correction's mask ships
    assert (new_row["source_batches"], new_row["original_file_name"]) == (released_batch(CORRECTION), "fix/redo.jpg")
    rows = {f"{r['batch_id']}/{r['file_name']}": r for r in ledger.iter_rows(named=True)}
    assert (rows[fix]["outcome"], rows[fix]["replaces"]) == ("released", f"{stale};{copy}")
    for replaced in (stale, copy):
        assert (rows[replaced]["outcome"], rows[replaced]["stage"], rows[replaced]["reason"]) == (
            "filtered", "qa", f"entry_not_superseded: replaced by {fix}, delivered later")
    assert ledger["replaces"].drop_nulls().to_list() == [f"{stale};{copy}"]
    # One entry more, filtered (the copy was filtered before too); the same images released, one with another mask.
    old, new = before.release_metadata["entries"], after.release_metadata["entries"]
    assert new == {**old, "input": old["input"] + 1, "filtered": old["filtered"] + 1}
    assert diff["counts"] == {"added": 0, "removed": 0, "changed": 1}
    assert items.select("image_id", "change", "what").rows() == [(row["image_id"], "changed", "mask")]
