"""Whole builds of the tiny demo whose release is cut into parts (a tiny release.part_mib): a nightly with
a batch of new images writes only that batch's parts, a taxonomy backfill writes no image, and the
version fetched or packed with `segpipe` is the whole release; gc then deletes the masks the backfill
superseded."""

import datetime as dt
import io
import shutil
import zipfile
from pathlib import Path

import dagster as dg
import fsspec
import orjson
import polars as pl
import pytest

from segpipe.cli.local_build import run_local_build, run_taxonomy_backfill
from segpipe.cli.main import main
from segpipe.core.release import layout
from segpipe.definitions import defs as load_defs
from segpipe.demo import DEMO_CONFIG, generate_demo
from segpipe.environment import current_environment
from segpipe.store import keys, memo_prune
from segpipe.store.superseded_masks import delete_superseded_masks
from segpipe_tests.conftest import TINY_DEMO, tiny_demo_pipeline

pytestmark = pytest.mark.slow

PART_MIB = 0.02  # about 20 kB of images a part: the tiny demo's 256x128 images make a few parts per batch and split
LATE = "b100_vendor_a_dave"


def members(release: str) -> pl.DataFrame:
    return pl.read_parquet(Path(release) / keys.RELEASE_MEMBERS)


def marker(release: str) -> dict:
    return orjson.loads((Path(release) / keys.RELEASE_MARKER).read_bytes())


def coco_ids(release: str, outcome) -> dict[str, tuple[int, list[int]]]:
    """Each image of the version's coco.json: its id and its annotations' ids, by file name."""
    own = Path(release) / keys.archive_name("street-demo", outcome.release_metadata["version"])
    with zipfile.ZipFile(own) as archive:
        coco = orjson.loads(archive.read(layout.COCO))
    annotations: dict[int, list[int]] = {}
    for annotation in coco["annotations"]:
        annotations.setdefault(annotation["image_id"], []).append(annotation["id"])
    return {image["file_name"]: (image["id"], annotations.get(image["id"], [])) for image in coco["images"]}


def class_masks(store: Path) -> set[str]:
    """The class masks the store's tables name."""
    return set(pl.read_parquet(store / keys.TABLES_DIR / "annotation_masks" / "*.parquet")["mask_key"].drop_nulls())


def coco_fragments(store: Path) -> set[str]:
    return {path.name for path in (store / keys.COCO_FRAGMENTS_DIR).iterdir()}


def consensus_outcomes(store: Path) -> set[str]:
    """The consensus memos (one per image fused or scored against gold), not the reliability-fusion ones."""
    return {path.name for path in (store / "consensus").glob("*.json")}


def files_of_images(manifest: pl.DataFrame) -> set[str]:
    """Every file an item of the manifest has in the release: image, mask, instance mask, YOLO label."""
    labels = [layout.yolo_label(split, Path(mask).stem) for split, mask in manifest.select("split", "mask_path").iter_rows()]
    return {*manifest["image_path"], *manifest["mask_path"], *manifest["instance_path"].drop_nulls(), *labels}


def test_a_nightly_writes_only_its_batchs_parts_a_backfill_no_image_and_fetch_and_pack_agree(tiny_demo, tmp_path, capsys):
    late = generate_demo(tmp_path / "other", **{**TINY_DEMO, "seed": TINY_DEMO["seed"] + 8})
    taxonomy = tmp_path / "taxonomy.yaml"
    taxonomy.write_text((DEMO_CONFIG / "taxonomy.yaml").read_text())
    with pytest.MonkeyPatch.context() as env, dg.instance_for_test() as instance:
        work = tmp_path / "landing"
        shutil.copytree(Path(tiny_demo.landing_root), work)
        env.setenv("SEGPIPE_LANDING_ROOT", str(work))
        env.setenv("SEGPIPE_STORAGE_ROOT", str(tmp_path / "store"))
        env.setenv("SEGPIPE_TAXONOMY", str(taxonomy))
        pipeline = tmp_path / "pipeline.yaml"
        # The demo's model still says car where the backfill makes bob's cars road: with its disagreements sent to
        # review, bob's images it pre-labelled would leave the release, and the parts holding them be rewritten.
        pipeline.write_text(tiny_demo_pipeline().replace("consensus:\n", "consensus:\n  model_disagreement_iou: null\n")
                            + f"release:\n  part_mib: {PART_MIB}\n")
        env.setenv("SEGPIPE_PIPELINE_CONFIG", str(pipeline))
        cold = run_local_build(load_defs(), instance, current_environment())

        shutil.copytree(Path(late.landing_root) / "b001_vendor_a_alice", work / LATE)
        batch = orjson.loads((work / LATE / "batch.json").read_bytes())
        (work / LATE / "batch.json").write_bytes(orjson.dumps({**batch, "batch_id": LATE, "annotator": "dave"}))
        nightly = run_local_build(load_defs(), instance, current_environment())

        taxonomy.write_text(taxonomy.read_text().replace("    automobile: car", "    automobile: road"))
        drawn_before = class_masks(tmp_path / "store")
        fragments_before = coco_fragments(tmp_path / "store")
        outcomes_before = consensus_outcomes(tmp_path / "store")
        env.setattr(memo_prune, "MEMO_GRACE", dt.timedelta(0))  # the release build prunes what it did not use
        backfilled = run_taxonomy_backfill(load_defs(), instance, current_environment())
        # the remapped batches' fragments were made again and the old ones pruned; the others were kept
        fragments_after = coco_fragments(tmp_path / "store")
        assert fragments_after != fragments_before and len(fragments_after) == len(fragments_before)
        assert fragments_after & fragments_before
        # QA judged every batch again (the taxonomy names each judgement) and pruned the nightly's judgements
        judged = {batch.name: len(list(batch.iterdir())) for batch in (tmp_path / "store" / "qa-judged").iterdir()}
        assert judged and set(judged.values()) == {1}, judged
        # consensus fused the images whose masks changed again, one outcome an image, the earlier ones pruned
        outcomes_after = consensus_outcomes(tmp_path / "store")
        assert outcomes_after != outcomes_before and len(outcomes_after) == len(outcomes_before)

        # gc deletes the class masks the backfill superseded, with their memos; a build then draws none
        # of them again and publishes the same version
        superseded = drawn_before - class_masks(tmp_path / "store")
        collected = delete_superseded_masks(fsspec.filesystem("file"), str(tmp_path / "store"), dt.timedelta(0))
        assert superseded and collected.files >= len(superseded) * 3
        assert not any((tmp_path / "store" / key).exists() for key in superseded)
        again = run_local_build(load_defs(), instance, current_environment())
        assert again.success and again.release_metadata["version"] == backfilled.release_metadata["version"]
        assert not any((tmp_path / "store" / key).exists() for key in superseded)

        assert main(["verify", backfilled.release_metadata["release"]]) == 0
        assert main(["fetch", "latest", str(tmp_path / "fetched")]) == 0
        assert main(["pack", "latest", "--out", str(tmp_path / "packed.zip")]) == 0
        capsys.readouterr()

    assert cold.success and nightly.success and backfilled.success
    cold_release, nightly_release, backfill_release = (o.release_metadata["release"] for o in (cold, nightly, backfilled))
    assert nightly.release_metadata["parts"] > cold.release_metadata["parts"] > 2

    # the nightly's new parts hold only the new batch's images and their masks and labels
    old_manifest = pl.read_parquet(Path(cold_release) / keys.RELEASE_MANIFEST)
    new_manifest = pl.read_parquet(Path(nightly_release) / keys.RELEASE_MANIFEST)
    added = new_manifest.filter(~pl.col("image_id").is_in(old_manifest["image_id"].implode()))
    assert added.height > 0
    new_parts = set(marker(nightly_release)["parts"]) - set(marker(cold_release)["parts"])
    assert nightly.release_metadata["parts_written"] == len(new_parts) > 0
    written = members(nightly_release).filter(pl.col("part").is_in(list(new_parts)))
    assert set(written["path"]) == files_of_images(added)
    assert set(marker(cold_release)["parts"]) <= set(marker(nightly_release)["parts"])

    # coco.json follows the landing order: the images already released keep their ids and their
    # annotations', and the new batch's come after them
    before, after = coco_ids(cold_release, cold), coco_ids(nightly_release, nightly)
    assert before and set(before) < set(after)
    assert {path: after[path] for path in before} == before
    assert min(after[path][0] for path in set(after) - set(before)) > max(image for image, _ in before.values())

    # the backfill remaps vendor_b's cars: new annotation parts, no image part, no image read into one
    new_parts = set(marker(backfill_release)["parts"]) - set(marker(nightly_release)["parts"])
    assert backfilled.release_metadata["parts_written"] == len(new_parts) > 0
    rewritten = members(backfill_release).filter(pl.col("part").is_in(list(new_parts)))
    assert rewritten.height > 0 and not any(layout.is_image(path) for path in rewritten["path"])

    # fetched and packed, the version is its whole release: every file, as SHA256SUMS lists it
    index = members(backfill_release)
    unzipped = {p.relative_to(tmp_path / "fetched").as_posix() for p in (tmp_path / "fetched").rglob("*") if p.is_file()}
    assert unzipped == set(index["path"])
    with zipfile.ZipFile(tmp_path / "packed.zip") as packed:
        assert packed.namelist() == index["path"].to_list()
        assert all(packed.read(name) == (tmp_path / "fetched" / name).read_bytes() for name in packed.namelist())
        sums = packed.read(layout.SHA256SUMS).decode().splitlines()
    assert len(sums) == index.height - 1
    with zipfile.ZipFile(io.BytesIO((Path(backfill_release) / keys.archive_name(
            "street-demo", backfilled.release_metadata["version"])).read_bytes())) as own:
        assert not any(layout.is_image(name) for name in own.namelist())
        assert orjson.loads(own.read(layout.META))["release_format"] == layout.RELEASE_FORMAT
