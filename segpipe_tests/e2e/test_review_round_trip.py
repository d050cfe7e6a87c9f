"""The review queue goes out as a CVAT task and comes back as a review batch that replaces what it
corrects: real builds on the tiny demo, before and after a reviewer's corrected export lands."""

import io
import json
import os
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import dagster as dg
import numpy as np
import polars as pl
import pytest
from PIL import Image

from segpipe.cli.build_summary import format_summary
from segpipe.cli.local_build import run_local_build
from segpipe.cli.review_export import NothingToReview, export_review_queue
from segpipe.core.ingest.formats.annotation import BoxMask
from segpipe.core.ingest.formats.cvat_rle import encode_cvat_rle
from segpipe.core.rasterize.raster import decode_mask_png
from segpipe.definitions import defs as load_defs
from segpipe.environment import current_environment
from segpipe_tests.conftest import tiny_demo_pipeline
from segpipe_tests.e2e.test_corrections import tiny_demo_project
from segpipe_tests.e2e.test_local_build import released_batch

pytestmark = pytest.mark.slow
REVIEW = "r001_review"
ROAD = 0  # the demo taxonomy's id (and name) of road


def full_frame_road(image: ElementTree.Element) -> None:
    """The reviewer's correction: every pre-annotation of the image gone, the whole frame road."""
    for child in list(image):
        image.remove(child)
    width, height = int(image.get("width")), int(image.get("height"))
    box = BoxMask.from_array(np.ones((height, width), dtype=bool))
    ElementTree.SubElement(image, "mask", label="road", source="manual", occluded="0", **encode_cvat_rle(box),
                           z_order="0")


def land_review(landing: Path, task: Path, extra: dict[str, bytes]) -> list[str]:
    """CVAT's export of the corrected task, as a review batch: the first image corrected, the others
    kept as pre-annotated, plus `extra` images (name -> bytes) the queue never held, each all road.
    Lands an hour after the newest batch. Returns the task's image names in order."""
    batch = landing / REVIEW
    with zipfile.ZipFile(task) as archive:
        archive.extractall(batch)
    tree = ElementTree.parse(batch / "annotations.xml")
    images = tree.getroot().findall("image")
    full_frame_road(images[0])
    for index, (name, data) in enumerate(extra.items(), start=len(images)):
        (batch / "images" / name).write_bytes(data)
        with Image.open(io.BytesIO(data)) as opened:
            width, height = opened.size
        added = ElementTree.SubElement(tree.getroot(), "image", id=str(index), name=name, width=str(width),
                                       height=str(height))
        full_frame_road(added)
    tree.write(batch / "annotations.xml", encoding="utf-8", xml_declaration=True)
    (batch / "batch.json").write_text(json.dumps({"kind": "review", "format": "cvat_images_1.1"}))
    newest = max((path / "batch.json").stat().st_mtime for path in landing.iterdir() if (path / "batch.json").exists())
    os.utime(batch / "batch.json", (newest + 3600, newest + 3600))
    return [image.get("name") for image in images]


def test_a_review_batch_replaces_the_fused_masks_of_the_queue_and_the_ledger_adds_up(tiny_demo, tmp_path):
    with pytest.MonkeyPatch.context() as env, dg.instance_for_test() as instance:
        # the tiny demo's annotators agree well: a stricter bar sends some of its fused images to review
        strict = tiny_demo_pipeline().replace("min_agreement: 0.6", "min_agreement: 0.9")
        assert "min_agreement: 0.9" in strict
        landing = tiny_demo_project(env, tiny_demo, tmp_path, strict)
        defs = load_defs()
        before = run_local_build(defs, instance, current_environment())
        assert before.success, before.failed_checks
        queue_before = defs.load_asset_value("consensus_masks", instance=instance)
        queued = queue_before.filter(pl.col("status").is_in(["low_agreement", "annotator_review"]))
        assert queued.height >= 2, "the tiny demo has no review queue to export"
        task = tmp_path / "queue.zip"
        assert export_review_queue(defs, instance, current_environment(), task) == queued.height
        old_release = Path(before.release_metadata["release"])
        old_ledger = pl.read_parquet(old_release / "ledger.parquet")
        old_manifest = pl.read_parquet(old_release / "manifest.parquet")
        accepted = old_manifest.row(0, named=True)
        with zipfile.ZipFile(before.release_metadata["archive"]) as archive:
            accepted_bytes = archive.read(accepted["image_path"])
        unknown = io.BytesIO()
        Image.new("RGB", (32, 16), (9, 9, 9)).save(unknown, format="PNG")
        names = land_review(landing, task, {"accepted.png": accepted_bytes, "unknown.png": unknown.getvalue()})

        after = run_local_build(load_defs(), instance, current_environment())
        assert after.success, after.failed_checks
        consensus = defs.load_asset_value("consensus_masks", instance=instance)
        summary = format_summary(after, defs, instance, current_environment())
        with pytest.raises(NothingToReview, match="the review queue is empty"):
            export_review_queue(defs, instance, current_environment(), tmp_path / "again.zip")
        release = Path(after.release_metadata["release"])
        ledger = pl.read_parquet(release / "ledger.parquet")
        manifest = pl.read_parquet(release / "manifest.parquet")
        store = tmp_path / "store"
        fused = {image_id: decode_mask_png((store / key).read_bytes())
                 for image_id, key in queued.select("image_id", "mask_key").iter_rows()}
        with zipfile.ZipFile(after.release_metadata["archive"]) as archive:
            released = {row["image_id"]: decode_mask_png(archive.read(row["mask_path"]))
                        for row in manifest.filter(pl.col("mask_source") == "reviewed").iter_rows(named=True)}

    review_rows = ledger.filter(pl.col("batch_id") == released_batch(REVIEW)).sort("file_name")
    by_file = {row["file_name"]: row for row in review_rows.iter_rows(named=True)}
    corrected_id = by_file[f"images/{names[0]}"]["image_id"]
    # Every queued image was reviewed: each releases the review's mask and leaves the queue.
    assert set(released) == set(queued["image_id"]) == set(consensus.filter(
        pl.col("mask_source") == "reviewed")["image_id"])
    assert consensus.filter(pl.col("status").is_in(["low_agreement", "annotator_review"])).is_empty()
    assert (released[corrected_id] == ROAD).all()  # the correction ships
    for image_id in set(released) - {corrected_id}:  # the others as fused: the task read back pixel for pixel
        assert np.array_equal(released[image_id], fused[image_id])
    # Each review names the annotators' entries whose consensus it replaced; they are released with it.
    for name in names:
        row = by_file[f"images/{name}"]
        sent = old_ledger.filter(pl.col("image_id") == row["image_id"], pl.col("reason").str.contains("sent to review"))
        assert sent.height >= 2 and row["outcome"] == "released"
        assert sorted(row["replaces"].split(";")) == sorted(f"{b}/{f}" for b, f in sent.select(
            "batch_id", "file_name").iter_rows())
        now = ledger.join(sent.select("batch_id", "file_name"), on=["batch_id", "file_name"])
        assert now.height == sent.height and set(now["outcome"]) == {"released"}
    # The images the queue never held are filtered, each saying why and naming its file.
    outside, stranger = by_file["images/accepted.png"], by_file["images/unknown.png"]
    assert (outside["outcome"], outside["stage"]) == ("filtered", "consensus")
    assert "images/accepted.png" in outside["reason"] and "not in the review queue" in outside["reason"]
    assert (stranger["outcome"], stranger["stage"]) == ("filtered", "consensus")
    assert "images/unknown.png" in stranger["reason"] and "no annotation batch delivered" in stranger["reason"]
    assert outside["reason"].startswith(f"{released_batch(REVIEW)}/images/accepted.png: ")  # the release's batch names
    [kept] = manifest.filter(pl.col("image_id") == accepted["image_id"]).to_dicts()
    assert {key: kept[key] for key in ("source_batches", "annotators", "mask_source", "mask_sha256")} == {
        key: accepted[key] for key in ("source_batches", "annotators", "mask_source", "mask_sha256")}
    for image_id in released:  # the manifest records the review beside the annotators it overruled
        [row] = manifest.filter(pl.col("image_id") == image_id).to_dicts()
        assert released_batch(REVIEW) in row["source_batches"].split(";")
        assert "annotator-review" in row["annotators"].split(";") and len(row["annotators"].split(";")) >= 3
    assert f"0 sent to review, {len(names)} corrected by review batches" in summary
    # Counts add up: the queue's entries move from filtered to released, with the reviews; two more filtered.
    sent_back = old_ledger.filter(pl.col("reason").str.contains("sent to review", literal=True)).height
    old, new = before.release_metadata["entries"], after.release_metadata["entries"]
    assert new == {"input": old["input"] + len(names) + 2, "released": old["released"] + sent_back + len(names),
                   "filtered": old["filtered"] - sent_back + 2, "quarantined": old["quarantined"]}
