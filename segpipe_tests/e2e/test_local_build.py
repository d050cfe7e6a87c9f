"""Materialize the whole graph in-process on a tiny demo landing zone and open the release."""

import dataclasses
import hashlib
import io
import json
import re
import shutil
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import fsspec
import numpy as np
import polars as pl
import pytest
from PIL import Image

from segpipe.core.config.pipeline import load_pipeline_settings
from segpipe.core.ingest.pseudonym import annotator_key, batch_pseudonym
from segpipe.core.rasterize.raster import decode_mask_png, paint_in_order
from segpipe.core.release.build import ReleaseInputs, build_release
from segpipe.core.release.writers import BuildStamp
from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.core.shared.rle import decode_rle
from segpipe.core.taxonomy.model import load_taxonomy
from segpipe.definitions import defs as load_defs
from segpipe.demo import DEMO_CONFIG
from segpipe.environment import current_environment
from segpipe.cli.local_build import BuildOutcome, run_local_build, run_taxonomy_backfill
from segpipe.cli.main import main
from segpipe.core.qa.pictures import PANEL_GAP, PANEL_WIDTH, problem_colour
from segpipe.core.qa.rules import QA_RULES
from segpipe.core.shared.quarantine_rules import ANNOTATIONS_MISSING, quarantine_rule
from segpipe.store.release_build import PublishedBuild, build_and_publish
from segpipe.store.release_fetch import fetch_release
from segpipe.store.release_read import ReleaseFileCorrupt, list_releases, read_release_file
from segpipe_tests.conftest import tiny_demo_pipeline
from segpipe_tests.store.gated_stores import Gate, GatedLocalFileSystem, marker_write
from segpipe_tests.store.publish_races import PAUSE_SECONDS, run_both

pytestmark = pytest.mark.slow


@dataclass
class Build:
    outcome: BuildOutcome
    qa_report: pl.DataFrame
    store: Path
    instance: dg.DagsterInstance  # open only inside built_in: its event log holds the build's runs


@contextmanager
def built_in(tmp: Path, landing: Path, taxonomy: Path = DEMO_CONFIG / "taxonomy.yaml",
             pipeline: Path | None = None) -> Iterator[Build]:
    """Point segpipe at a private landing copy and store with the variables a user sets, and build;
    with the demo's taxonomy and the tiny demo's pipeline.yaml unless told otherwise. The variables
    are restored once the build is done; its instance stays open until the context ends."""
    with dg.instance_for_test() as instance:
        with pytest.MonkeyPatch.context() as env:
            work = tmp / "landing"
            shutil.copytree(landing, work)
            env.setenv("SEGPIPE_LANDING_ROOT", str(work))
            env.setenv("SEGPIPE_STORAGE_ROOT", str(tmp / "store"))
            env.setenv("SEGPIPE_TAXONOMY", str(taxonomy))
            if pipeline is None:
                pipeline = tmp / "pipeline.yaml"
                pipeline.write_text(tiny_demo_pipeline())
            env.setenv("SEGPIPE_PIPELINE_CONFIG", str(pipeline))
            defs = load_defs()
            outcome = run_local_build(defs, instance, current_environment())
            qa_report = defs.load_asset_value("qa_report", instance=instance)
        yield Build(outcome, qa_report, tmp / "store", instance)


def build_in(tmp: Path, landing: Path, taxonomy: Path = DEMO_CONFIG / "taxonomy.yaml",
             pipeline: Path | None = None) -> Build:
    """built_in, for a test that needs the build's outcome, tables and store, not its event log."""
    with built_in(tmp, landing, taxonomy, pipeline) as build:
        return build


@pytest.fixture(scope="module")
def demo_build(tiny_demo, tmp_path_factory) -> Build:
    return build_in(tmp_path_factory.mktemp("build"), Path(tiny_demo.landing_root))


@pytest.fixture(scope="module")
def ledger(demo_build) -> pl.DataFrame:
    return pl.read_parquet(Path(demo_build.outcome.release_metadata["release"]) / "ledger.parquet")


def test_demo_release_has_the_promised_layout(demo_build):
    outcome = demo_build.outcome
    assert outcome.success, outcome.failed_checks
    archive_path = Path(outcome.release_metadata["archive"])
    with zipfile.ZipFile(archive_path) as archive:
        names = set(archive.namelist())
        index = pl.read_csv(io.BytesIO(archive.read("index.csv")))
        meta = json.loads(archive.read("meta.json"))
        coco = json.loads(archive.read("coco/coco.json"))
        qa = pl.read_csv(io.BytesIO(archive.read("qa/report.csv")))
        class_ids = {c["id"] for c in meta["classes"]}
        present: set[int] = set()
        for row in index.iter_rows(named=True):
            mask = decode_mask_png(archive.read(row["mask_path"]))
            with Image.open(io.BytesIO(archive.read(row["image_path"]))) as image:
                assert image.size == (mask.shape[1], mask.shape[0]) == (row["width"], row["height"])
            assert row["image_path"].startswith(f"images/{row['split']}/")
            present |= set(np.unique(mask).tolist())
    assert names == {"index.csv", "index.parquet", "meta.json", "README.md", "legend.png", "SHA256SUMS", "dataset_meta.json", "coco/coco.json", "qa/report.csv", "sampling/distribution.csv",
                     "sampling/distribution.png", "sampling/classes.csv", "sampling/leakage.csv", "yolo/data.yaml",
                     *[f"labels/{p.removeprefix('masks/').removesuffix('.png')}.txt" for p in index["mask_path"]],
                     *index["image_path"],
                     *index["mask_path"], *qa["thumbnail_path"].drop_nulls()}
    assert present <= class_ids | {meta["ignore_index"]} and present & class_ids
    assert meta["task"] == "semantic_segmentation" and meta["ignore_index"] == 255
    assert meta["mask_encoding"] == "grayscale" and meta["version"] == outcome.release_metadata["content_digest"]
    assert sum(s["count"] for s in meta["image_sizes"]) == index.height
    assert len(coco["images"]) == index.height and {a["category_id"] for a in coco["annotations"]} <= class_ids
    assert set(index["split"]) <= {"train", "val", "test"}
    assert index.group_by("sequence_id").agg(pl.col("split").n_unique())["split"].max() == 1
    manifest = pl.read_parquet(archive_path.parent / "manifest.parquet")
    assert manifest.sort("image_id").select(index.columns).equals(index.sort("image_id"), null_equal=True)


def test_the_demo_release_verifies_and_its_coco_annotations_paint_its_masks(demo_build, tmp_path):
    from pycocotools.coco import COCO

    from segpipe.core.release.verify import verify_release

    with zipfile.ZipFile(demo_build.outcome.release_metadata["archive"]) as archive:
        result = verify_release(archive, mask_sample=1000)
        archive.extractall(tmp_path)
    assert result.problems == [] and result.masks_decoded == result.images > 0
    coco = COCO(str(tmp_path / "coco" / "coco.json"))
    drawn = 0
    for image in coco.loadImgs(coco.getImgIds()):
        mask = decode_mask_png((tmp_path / image["file_name"].replace("images/", "masks/", 1)).with_suffix(".png").read_bytes())
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
        if all(isinstance(a["segmentation"], dict) and not a["iscrowd"] for a in annotations):
            # fused or read from mask files: one RLE per class, exactly its pixels
            by_class = {a["category_id"]: coco.annToMask(a) for a in annotations}
            assert set(by_class) == set(np.unique(mask).tolist()) - {255}
            for class_id, pixels in by_class.items():
                assert np.array_equal(pixels.astype(bool), mask == class_id), (image["file_name"], class_id)
            continue
        drawn += 1
        by_pycocotools, by_segpipe = np.full(mask.shape, 255, np.uint8), np.full(mask.shape, 255, np.uint8)
        for annotation in annotations:  # in painter's order
            by_pycocotools[coco.annToMask(annotation).astype(bool)] = annotation["category_id"]
            by_segpipe[_segpipe_pixels(annotation, *mask.shape)] = annotation["category_id"]
        # void shapes painted over the polygons are no annotation: compare the labelled pixels
        labelled = mask != 255
        assert np.array_equal(by_segpipe[labelled], mask[labelled]), image["file_name"]
        # pycocotools rasterizes polygons as area-preserving squares, segpipe by Pillow's scan
        # conversion: on the demo's 256x128 scenes of small objects the outlines are ~2 % of the pixels
        assert (by_pycocotools[labelled] == mask[labelled]).mean() >= 0.97, image["file_name"]
    assert drawn > 0


def pseudonym_key() -> bytes:
    environment = current_environment()
    return annotator_key(environment.pseudonym_key, environment.pseudonym_key_path)


def released_batch(batch_id: str) -> str:
    """How releases name a batch."""
    return batch_pseudonym(batch_id, pseudonym_key())


def release_inputs(build: Build, stamp: BuildStamp, **changes) -> ReleaseInputs:
    """The release inputs the build's run left in its store, read back as its IO manager reads them (a
    partitioned table as its partitions in key order), with `changes` applied; memos a build writes
    stay in memory, so the build's store stays as the run left it."""
    tables = build.store / "tables"

    def table(name: str) -> pl.DataFrame:
        if (tables / f"{name}.parquet").exists():
            return pl.read_parquet(tables / f"{name}.parquet")
        return pl.concat([pl.read_parquet(p) for p in sorted((tables / name).glob("*.parquet"), key=lambda p: p.stem)])

    memos: dict[str, bytes] = {}
    store = ArtefactStore(lambda key: memos[key] if key in memos else (build.store / key).read_bytes(),
                          memos.__setitem__, lambda key: key in memos or (build.store / key).exists())
    settings = load_pipeline_settings(build.store.parent / "pipeline.yaml")
    inputs = ReleaseInputs(
        **{name: table(name) for name in ("dataset_split", "sampling_report", "class_balance", "consensus_masks",
                                          "annotation_masks", "mapped_shapes", "batch_images", "batch_quarantine",
                                          "qa_report")},
        taxonomy=load_taxonomy(DEMO_CONFIG / "taxonomy.yaml"), dataset_name=settings.dataset_name,
        mask_encoding=settings.mask_encoding, sampling=settings.sampling,
        near_duplicate_bits=settings.qa.near_duplicate_bits, store=store, stamp=stamp,
        landing_uri=str(build.store.parent / "landing"),
        pseudonym_key=pseudonym_key())
    return dataclasses.replace(inputs, **changes)


def test_core_alone_builds_the_release_the_asset_published(demo_build):
    """No Dagster: the tables the asset's run left in the store, built into memory with build_release over
    the store's folder, give the content digest the asset recorded, and with the run's stamp the same
    members in the same order with the same bytes."""
    metadata = demo_build.outcome.release_metadata
    marker = json.loads((Path(metadata["release"]) / "_RELEASE.json").read_text())
    with zipfile.ZipFile(metadata["archive"]) as published:
        lineage = json.loads(published.read("meta.json"))["lineage"]
        out = io.BytesIO()
        contents = build_release(release_inputs(demo_build, BuildStamp(lineage["run_id"], lineage["created_at"])), out)
        with zipfile.ZipFile(out) as built:
            assert built.namelist() == published.namelist()
            assert [n for n in built.namelist() if built.read(n) != published.read(n)] == []
    assert contents.version == metadata["content_digest"] == marker["content_digest"]
    assert contents.counts == metadata["entries"] == marker["counts"]
    assert contents.ledger.equals(pl.read_parquet(Path(metadata["release"]) / "ledger.parquet"), null_equal=True)


def test_a_manifest_changed_after_publishing_stops_the_next_build_instead_of_being_its_diff_base(demo_build, tmp_path):
    """One flipped byte in the published manifest.parquet still parses; the next build's diff must not use it."""
    fs, root = fsspec.filesystem("file", auto_mkdir=True), str(tmp_path / "store")
    first = build_and_publish(fs, root, release_inputs(demo_build, BuildStamp.now("run-1"))).published
    manifest = Path(root) / first.prefix / "manifest.parquet"
    data = bytearray(manifest.read_bytes())
    data[data.index(b"Polars")] ^= 0x20  # the writer's name in the footer: "polars"
    manifest.write_bytes(bytes(data))
    assert pl.read_parquet(manifest).height == pl.read_parquet(Path(root) / first.prefix / "ledger.parquet").filter(
        pl.col("outcome") == "released").select("image_id").n_unique(), "the damaged manifest still reads"

    with pytest.raises(ReleaseFileCorrupt) as raised:
        build_and_publish(fs, root, release_inputs(demo_build, BuildStamp.now("run-2"), mask_encoding="palette"))
    assert str(raised.value).startswith(
        f"{manifest}: SHA-256 is {hashlib.sha256(data).hexdigest()}, _RELEASE.json recorded "
        f"{first.marker['files']['manifest.parquet']}: the object changed after it was published, so it is not used")
    assert [m["version"] for m in list_releases(fs, root, first.marker["dataset"])] == [first.version]


@pytest.mark.parametrize("same_content", [False, True], ids=["other-content", "same-content"])
def test_a_build_does_not_publish_past_one_that_has_not_committed_and_diffs_against_it(demo_build, tmp_path,
                                                                                      same_content):
    """The race of issue 17: the first build has written its version's objects but not yet its marker when
    the second reads the store. The second reports the first's release (same content) or publishes the
    next version with its diff against the first's (other content), never a second copy or a diff
    against the release before both."""
    fs, root = fsspec.filesystem("file", auto_mkdir=True), str(tmp_path / "store")
    base = build_and_publish(fs, root, release_inputs(demo_build, BuildStamp.now("run-0"))).published
    palette = {"mask_encoding": "palette"}
    moved = release_inputs(demo_build, BuildStamp.now("run-2"))  # one training image moved to val
    image = moved.dataset_split.filter(pl.col("split") == "train")["image_id"][0]
    moved = dataclasses.replace(moved, dataset_split=moved.dataset_split.with_columns(
        pl.when(pl.col("image_id") == image).then(pl.lit("val")).otherwise(pl.col("split")).alias("split")))
    second_inputs = release_inputs(demo_build, BuildStamp.now("run-2"), **palette) if same_content else moved
    paused, second_done = threading.Event(), threading.Event()

    def pause() -> None:
        paused.set()
        second_done.wait(PAUSE_SECONDS)

    def second() -> PublishedBuild:
        try:
            return build_and_publish(fs, root, second_inputs)
        finally:
            second_done.set()

    first, later = run_both(
        lambda: build_and_publish(GatedLocalFileSystem(Gate(marker_write, pause)), root,
                                  release_inputs(demo_build, BuildStamp.now("run-1"), **palette)),
        second, second_starts=paused)
    diffs = {m["version"]: json.loads(read_release_file(fs, root, m, "diff.json"))
             for m in list_releases(fs, root, base.marker["dataset"])}
    assert first.published.newly_published and first.previous_version == base.version
    assert diffs[first.published.version]["previous_version"] == base.version
    if same_content:
        assert list(diffs) == [base.version, first.published.version]
        assert (later.published.version, later.published.newly_published) == (first.published.version, False)
    else:
        assert list(diffs) == [base.version, first.published.version, later.published.version]
        assert later.previous_version == first.published.version
        assert diffs[later.published.version]["previous_version"] == first.published.version
        assert diffs[later.published.version]["counts"] == {"added": 0, "removed": 0, "changed": 1}


def _segpipe_pixels(annotation: dict, height: int, width: int) -> np.ndarray:
    """An annotation's pixels by segpipe's raster rule: its RLE, or its polygon rings painted."""
    if isinstance(annotation["segmentation"], dict):
        return decode_rle(annotation["segmentation"], "coco.json")
    shape = pl.DataFrame({"kind": ["polygon"], "fill": [1], "rings": [annotation["segmentation"]], "mask_box": [None],
                          "mask_counts": [None]},
                         schema={"kind": pl.String, "fill": pl.Int64, "rings": pl.List(pl.List(pl.Float64)),
                                 "mask_box": pl.List(pl.Int64), "mask_counts": pl.List(pl.UInt32)})
    return paint_in_order(shape, width, height, 0) == 1


def test_counts_add_up_to_every_input_file(demo_build, ledger, ground_truth):
    counts = demo_build.outcome.release_metadata["entries"]
    assert counts["input"] == counts["released"] + counts["filtered"] + counts["quarantined"] == ledger.height
    expected = {(released_batch(b["batch_id"]), f) for b in ground_truth["batches"] for f in b["files"]}
    assert set(ledger.select("batch_id", "file_name").iter_rows()) == {(b, f"images/{f}") for b, f in expected}
    assert ledger.filter(pl.col("outcome") != "released")["reason"].null_count() == 0
    assert demo_build.outcome.check_outcomes["dataset_release:ledger_balances"]


def test_each_planted_defect_is_quarantined_or_flagged_by_the_right_check(demo_build, ledger, ground_truth):
    rules = {
        "corrupt_image": ("quarantined", "image_undecodable"),
        "size_mismatch": ("quarantined", "size_mismatch"),
        "non_finite_coordinates": ("quarantined", "non_finite_coordinates"),
        "duplicate_image": ("filtered", "entry_not_superseded"),
    }
    defects = {d["kind"]: d for d in ground_truth["defects"]}
    assert set(defects) == {*rules, "unmapped_label", "self_intersecting_polygon", "oversized_instance"}
    for kind, (outcome, rule) in rules.items():
        d = defects[kind]
        row = ledger.filter((pl.col("batch_id") == released_batch(d["batch_id"])) & (pl.col("file_name") == f"images/{d['file_name']}"))
        assert (row["outcome"].to_list(), row["reason"][0].startswith(rule)) == ([outcome], True), row.to_dicts()
    unmapped = defects["unmapped_label"]
    flagged = demo_build.qa_report.filter((pl.col("check_id") == "labels_mapped") & ~pl.col("passed"))
    assert flagged["file_name"].to_list() == [f"images/{unmapped['file_name']}"]
    assert unmapped["label"] in flagged["reason"][0]
    crossed = defects["self_intersecting_polygon"]
    flagged = demo_build.qa_report.filter((pl.col("check_id") == "polygon_self_intersection") & ~pl.col("passed"))
    [reason] = flagged.filter((pl.col("batch_id") == crossed["batch_id"])
                              & (pl.col("file_name") == f"images/{crossed['file_name']}"))["reason"].to_list()
    assert f"({crossed['label']!r}) crosses itself" in reason
    oversized = defects["oversized_instance"]
    flagged = demo_build.qa_report.filter((pl.col("check_id") == "instance_area_typical") & ~pl.col("passed"))
    assert flagged.select("batch_id", "file_name").rows() == [(oversized["batch_id"], f"images/{oversized['file_name']}")]
    assert f"({oversized['label']!r}) covers" in flagged["reason"].item() and "above the typical car" in flagged["reason"].item()
    checks = demo_build.outcome.check_outcomes
    assert checks["qa_report:labels_mapped"] is False and checks["qa_report:entry_not_superseded"] is False
    assert checks["qa_report:unmapped_labels"] is False
    assert checks["qa_report:mask_matches_image_size"] and checks["qa_report:mask_ids_in_taxonomy"]
    assert checks["qa_report:class_never_present"] and checks["qa_report:image_not_near_duplicate"]


def test_rebuilding_the_same_data_publishes_nothing_new(demo_build, tiny_demo, tmp_path):
    again = build_in(tmp_path, Path(tiny_demo.landing_root))
    assert again.outcome.release_metadata["version"] == demo_build.outcome.release_metadata["version"]
    archives = [zipfile.ZipFile(b.outcome.release_metadata["archive"]) for b in (demo_build, again)]
    assert archives[0].namelist() == archives[1].namelist()
    differing = {n for n in archives[0].namelist() if archives[0].read(n) != archives[1].read(n)}
    assert differing == {"meta.json", "SHA256SUMS"}  # the lineage's run id and time, nothing else
    metas = [json.loads(a.read("meta.json")) for a in archives]
    for meta in metas:
        meta["lineage"].pop("run_id"), meta["lineage"].pop("created_at")
    assert metas[0] == metas[1]


def test_a_nightly_build_draws_only_the_batch_that_landed_since_and_releases_all(tiny_demo, tmp_path):
    """`segpipe build` on an instance that has drawn some batches runs batch_job only for the new one."""
    with pytest.MonkeyPatch.context() as env, dg.instance_for_test() as instance:
        work = tmp_path / "landing"
        shutil.copytree(Path(tiny_demo.landing_root), work)
        late = sorted(p.name for p in work.iterdir() if (p / "batch.json").exists())[-1]
        shutil.move(work / late, tmp_path / late)
        env.setenv("SEGPIPE_LANDING_ROOT", str(work))
        env.setenv("SEGPIPE_STORAGE_ROOT", str(tmp_path / "store"))
        env.setenv("SEGPIPE_TAXONOMY", str(DEMO_CONFIG / "taxonomy.yaml"))
        pipeline = tmp_path / "pipeline.yaml"
        pipeline.write_text(tiny_demo_pipeline())
        env.setenv("SEGPIPE_PIPELINE_CONFIG", str(pipeline))
        first = run_local_build(load_defs(), instance, current_environment())
        shutil.move(tmp_path / late, work / late)
        nightly = run_local_build(load_defs(), instance, current_environment())
        drawn_in = [run.tags.get("dagster/partition") for run in instance.get_runs(
            filters=dg.RunsFilter(job_name="batch_job"))]
    assert first.success and nightly.success and late not in first.batches and late in nightly.batches
    assert sorted(drawn_in) == sorted(first.batches + [late])  # each batch drawn once: the late one by the nightly
    assert nightly.release_metadata["version"] != first.release_metadata["version"]
    counts = nightly.release_metadata["entries"]
    assert counts["input"] > first.release_metadata["entries"]["input"]
    assert counts["input"] == counts["released"] + counts["filtered"] + counts["quarantined"]


def test_build_and_backfill_end_with_what_stopped_the_release_and_exit_1(tiny_demo, ground_truth, tmp_path, capsys):
    """`segpipe build` on the tiny demo with the packaged distribution spec, which it cannot meet, names
    the step and the spec's problems; `segpipe backfill` under `unmapped: error` names the blocking
    checks, the entry and the label. Both name a batch that ingest quarantined whole, and say what to
    do, on stdout, without a traceback."""
    taxonomy, pipeline = tmp_path / "taxonomy.yaml", DEMO_CONFIG / "pipeline.yaml"
    taxonomy.write_text((DEMO_CONFIG / "taxonomy.yaml").read_text())
    shutil.copytree(Path(tiny_demo.landing_root), tmp_path / "landing")
    broken = tmp_path / "landing" / "b004_vendor_x"  # its batch.json names an annotation file it lacks
    (broken / "images").mkdir(parents=True)
    shutil.copy(next((tmp_path / "landing").glob("b001_*/images/*.jpg")), broken / "images" / "a.jpg")
    (broken / "batch.json").write_text(json.dumps({"format": "coco_instances", "annotation_file": "annotations.json"}))
    quarantined = [f"batch b004_vendor_x: nothing accepted, 1 x {ANNOTATIONS_MISSING} at ingest: e.g. "
                   f"{broken / 'annotations.json'}: the annotation file named in batch.json does not exist",
                   f"  what to do: {quarantine_rule(ANNOTATIONS_MISSING).action}"]
    (tmp_path / "dagster").mkdir()
    (tmp_path / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with pytest.MonkeyPatch.context() as env:
        for name, value in (("SEGPIPE_HOME", tmp_path), ("SEGPIPE_LANDING_ROOT", tmp_path / "landing"),
                            ("SEGPIPE_STORAGE_ROOT", tmp_path / "store"), ("SEGPIPE_TAXONOMY", taxonomy),
                            ("SEGPIPE_PIPELINE_CONFIG", pipeline), ("DAGSTER_HOME", tmp_path / "dagster")):
            env.setenv(name, str(value))
        assert main(["build"]) == 1
        infeasible = capsys.readouterr()
        taxonomy.write_text(taxonomy.read_text().replace("unmapped: void", "unmapped: error"))
        assert main(["backfill"]) == 1
        blocked = capsys.readouterr()
    progress = re.compile(r"^(taxonomy|batch \d+/\d+ \S+|remap \d+ batches|remap batches \d+-\d+ of \d+|release): "
                          r"\w+ (done|FAILED|skipped) \(\d+/\d+ steps, \d+\.\d s\)$")
    errors = infeasible.err.splitlines() + blocked.err.splitlines()
    assert [line for line in errors if not progress.match(line)] == []  # progress only: no traceback, no Dagster log
    remapped = len(tiny_demo.batch_ids) + 1  # the demo's batches and the broken one
    assert "release: golden_sample FAILED" in infeasible.err
    assert re.search(rf"remap (batches 1-\d+ of {remapped}|{remapped} batches): mapped_shapes done", blocked.err)
    assert not (tmp_path / "store" / "releases").exists()

    lines = infeasible.out.splitlines()
    target = load_pipeline_settings(pipeline).sampling.target_size
    assert lines[1].startswith("RELEASE BLOCKED: release_job run ")
    assert lines[2:4] == ["step golden_sample raised InfeasibleSpec:", "  the distribution spec cannot be met by the data:"]
    assert lines[4].startswith(f"    sampling.target_size: {target} images asked for, the data offers ")
    assert any(line.startswith("    sampling.strata.time_of_day.night: target ") for line in lines)
    assert f"  what to do: Change the distribution spec (`sampling` in {pipeline}, see docs/sampling.md) as each line " \
           "says, or land more data." in lines
    assert lines[-3:-1] == quarantined
    assert lines[-1].startswith("details: run ") and lines[-1].endswith(" in the Dagster UI (make dev)")

    [defect] = [d for d in ground_truth["defects"] if d["kind"] == "unmapped_label"]
    entry = f"{defect['batch_id']}/images/{defect['file_name']}"
    source = json.loads((tmp_path / "landing" / defect["batch_id"] / "batch.json").read_text())["source"]
    rule = next(rule for rule in QA_RULES if rule.id == "labels_mapped")
    lines = blocked.out.splitlines()
    start = lines.index(f"check qa_report:labels_mapped failed on 1 entry, 0 allowed (qa.max_error_failures in {pipeline})")
    assert lines[start + 1:-1] == [
        f"  rule: {rule.description}",
        f"  entries: {entry}: unmapped labels [{defect['label']!r}]",
        f"  what to do: {rule.action}",
        "check qa_report:unmapped_labels failed: 1 label no rule maps, and the taxonomy says unmapped: error",
        f"  labels: {defect['label']!r} (source {source}): 1 shape in 1 entry, e.g. {entry}",
        f"  what to do: Add a rule for each under mappings.{source} in {taxonomy} (to a class, void or skip), then run "
        "`segpipe backfill`; `segpipe check-source --taxonomy` on a batch lists them too.",
        *quarantined,
    ]
    assert lines[-1].startswith("details: run ")


def _model_review(consensus: pl.DataFrame) -> dict[str, list[str]]:
    """The images a model's disagreement sent to review, with the classes in dispute."""
    return dict(consensus.filter(pl.col("status") == "model_review").select("image_id", "disputed_classes").iter_rows())


def test_an_alias_change_is_backfilled_into_a_new_release_without_redrawing(tiny_demo, tmp_path):
    taxonomy = tmp_path / "taxonomy.yaml"
    taxonomy.write_text((DEMO_CONFIG / "taxonomy.yaml").read_text())
    with pytest.MonkeyPatch.context() as env, dg.instance_for_test() as instance:
        work = tmp_path / "landing"
        shutil.copytree(Path(tiny_demo.landing_root), work)
        env.setenv("SEGPIPE_LANDING_ROOT", str(work))
        env.setenv("SEGPIPE_STORAGE_ROOT", str(tmp_path / "store"))
        env.setenv("SEGPIPE_TAXONOMY", str(taxonomy))
        pipeline = tmp_path / "pipeline.yaml"
        pipeline.write_text(tiny_demo_pipeline())
        env.setenv("SEGPIPE_PIPELINE_CONFIG", str(pipeline))
        cold_defs = load_defs()
        cold = run_local_build(cold_defs, instance, current_environment())
        disputed_before = _model_review(cold_defs.load_asset_value("consensus_masks", instance=instance))
        label_masks_before = {p: p.stat().st_mtime_ns for p in (tmp_path / "store" / "label-masks").rglob("*.png")}
        class_masks_before = {p: p.stat().st_mtime_ns for p in (tmp_path / "store" / "masks").rglob("*.png")}

        taxonomy.write_text(taxonomy.read_text().replace("    automobile: car", "    automobile: road"))
        defs = load_defs()
        backfilled = run_taxonomy_backfill(defs, instance, current_environment())
        masks = defs.load_asset_value("annotation_masks", instance=instance, partition_key="b002_vendor_b_bob")
        others = defs.load_asset_value("annotation_masks", instance=instance, partition_key="b001_vendor_a_alice")
        disputed_after = _model_review(defs.load_asset_value("consensus_masks", instance=instance))
        [backfill_run] = instance.get_runs(filters=dg.RunsFilter(job_name="taxonomy_backfill_job"))
        remapped = {record.partition_key for record in instance.fetch_materializations(
            dg.AssetKey("annotation_masks"), limit=100).records if record.run_id == backfill_run.run_id}

    assert backfilled.success
    assert backfilled.release_metadata["version"] != cold.release_metadata["version"]
    old_meta, new_meta = (
        json.loads(zipfile.ZipFile(o.release_metadata["archive"]).read("meta.json")) for o in (cold, backfilled))
    assert old_meta["taxonomy_version"] != new_meta["taxonomy_version"]
    assert new_meta["taxonomy_version"].startswith("street-v1-")
    # The new release says what moved: bob's cars became road, so masks changed and road's share grew.
    diff = json.loads((Path(backfilled.release_metadata["release"]) / "diff.json").read_text())
    assert diff["previous_version"] == cold.release_metadata["version"]
    assert diff["counts"]["changed"] > 0 and diff["counts"]["added"] == 0
    shares = {row["class"]: row["change"] for row in diff["classes"]}
    assert shares["road"] > 0 > shares["car"]
    items = pl.read_parquet(Path(backfilled.release_metadata["release"]) / "diff.parquet")
    changed = items.filter(pl.col("change") == "changed")
    assert set(changed["what"]) <= {"mask", "split", "split, mask"} and changed.height == diff["counts"]["changed"]
    # The demo's model still says car where bob's cars became road: the images of bob's it pre-labelled leave the
    # release for review, disputed on car or road; nothing else is removed.
    removed = set(items.filter(pl.col("change") == "removed")["image_id"])
    newly_disputed = {image for image, classes in disputed_after.items()
                      if image not in disputed_before and {"car", "road"} & set(classes)}
    assert removed == newly_disputed and len(removed) == diff["counts"]["removed"]
    first = json.loads((Path(cold.release_metadata["release"]) / "diff.json").read_text())
    assert first["previous_version"] is None and first["counts"]["added"] == cold.release_metadata["images_released"]
    assert set(masks["rendered_by"]) == {"lookup"}
    assert masks["taxonomy_version"].unique().to_list() == [new_meta["taxonomy_version"]]
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "store" / "label-masks").rglob("*.png")} == label_masks_before
    # One run remapped every batch; masks the edit does not change (vendor_a has no `automobile`) kept
    # their names and files, and only vendor_b's got new ones.
    assert remapped == set(cold.batches)
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "store" / "masks").rglob("*.png")}
    assert {p: after[p] for p in class_masks_before} == class_masks_before
    assert all((tmp_path / "store" / key) in class_masks_before for key in others["mask_key"])
    assert not any((tmp_path / "store" / key) in class_masks_before for key in masks["mask_key"])


def test_instance_masks_are_released_beside_the_class_masks_when_enabled(tiny_demo, tmp_path):
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(tiny_demo_pipeline().replace("instance_masks: false", "instance_masks: true"))
    build = build_in(tmp_path, Path(tiny_demo.landing_root), pipeline=pipeline)  # the demo numbers persons and cars
    assert build.outcome.success, build.outcome.failed_checks
    release = Path(build.outcome.release_metadata["release"])
    manifest = pl.read_parquet(release / "manifest.parquet")
    assert manifest.filter(pl.col("mask_source") == "fused")["instance_path"].null_count() == manifest.filter(
        pl.col("mask_source") == "fused").height
    with_instances = manifest.filter(pl.col("instance_path").is_not_null())
    assert with_instances.height == manifest.filter(pl.col("mask_source") != "fused").height > 0
    most_cars = 0
    with zipfile.ZipFile(build.outcome.release_metadata["archive"]) as archive:
        meta = json.loads(archive.read("meta.json"))
        assert meta["instance_masks"] == with_instances.height
        for mask_path, instance_path in with_instances.select("mask_path", "instance_path").iter_rows():
            classes = decode_mask_png(archive.read(mask_path))
            with Image.open(io.BytesIO(archive.read(instance_path))) as image:
                assert image.mode in ("I;16", "I")
                instances = np.asarray(image).astype(np.int64)
            # Below 1000 a value is a class id; from 1000 up, class_id * 1000 + k: either way it names the class.
            assert np.array_equal(np.where(instances >= 1000, instances // 1000, instances), classes)
            assert not ((instances >= 1000) & ~np.isin(instances // 1000, [7, 8])).any()
            most_cars = max(most_cars, len({v for v in np.unique(instances).tolist() if v // 1000 == 8}))
    assert most_cars >= 2  # cars in one street are numbered apart


def test_the_careless_annotator_ranks_last_on_honeypots(demo_build, ground_truth):
    tables = demo_build.store / "tables"
    name_of = {}
    for batch in ground_truth["batches"]:
        images = pl.read_parquet(tables / "batch_images" / f"{batch['batch_id']}.parquet")
        name_of.update(dict.fromkeys(images["annotator"].unique().to_list(), batch["annotator"]))
    board = pl.read_parquet(tables / "annotator_scores.parquet").with_columns(
        pl.col("annotator").replace_strict(name_of).alias("name"))
    assert board["name"].to_list()[-1] == "carol"  # sorted by mean IoU, best first
    by_name = {row["name"]: row for row in board.iter_rows(named=True)}
    assert set(by_name) == {"alice", "bob", "carol", "segnet"}
    assert [name for name, row in by_name.items() if row["is_model"]] == ["segnet"]  # the demo's model, beside people
    assert by_name["carol"]["boundary_f1"] < min(by_name["alice"]["boundary_f1"], by_name["bob"]["boundary_f1"])
    assert all(row["n_honeypots"] > 0 for row in by_name.values())


def test_honeypot_images_are_released_only_under_their_gold_labels(demo_build, ground_truth):
    manifest = pl.read_parquet(Path(demo_build.outcome.release_metadata["release"]) / "manifest.parquet")
    honeypots = manifest.filter(pl.col("original_file_name").str.split("/").list.last().is_in(ground_truth["honeypots"]))
    assert honeypots.height > 0
    assert set(honeypots["mask_source"]) == {"gold"}


def test_qa_failures_ship_with_thumbnails_that_show_the_problem(demo_build, ground_truth):
    crossed = next(d for d in ground_truth["defects"] if d["kind"] == "self_intersecting_polygon")
    with zipfile.ZipFile(demo_build.outcome.release_metadata["archive"]) as archive:
        qa = pl.read_csv(io.BytesIO(archive.read("qa/report.csv")))
        meta = json.loads(archive.read("meta.json"))
        [row] = qa.filter((pl.col("check_id") == "polygon_self_intersection")
                          & (pl.col("file_name") == f"images/{crossed['file_name']}")).iter_rows(named=True)
        with Image.open(io.BytesIO(archive.read(row["thumbnail_path"]))) as thumbnail:
            pixels = np.asarray(thumbnail.convert("RGB"))
    assert meta["qa_failures"] == dict(qa.group_by("check_id").len().sort("check_id").iter_rows())
    assert pixels.shape[1] == 2 * PANEL_WIDTH + PANEL_GAP  # the image beside its mask
    problem = problem_colour(load_taxonomy(DEMO_CONFIG / "taxonomy.yaml"))
    outlined = (pixels == problem).all(axis=-1)
    assert outlined[:, :PANEL_WIDTH].sum() > 50 and outlined[:, PANEL_WIDTH + PANEL_GAP:].sum() > 50  # the crossed outline
    assert set(qa["check_id"]) >= {"labels_mapped", "entry_not_superseded", "polygon_self_intersection"}


def test_a_honeypot_threshold_leaves_the_careless_annotator_out_and_the_counts_still_add_up(tiny_demo, tmp_path):
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(tiny_demo_pipeline().replace(
        "  # min_honeypot_iou: 0.8\n", "  min_honeypot_iou: 0.8\n"))
    build = build_in(tmp_path, Path(tiny_demo.landing_root), pipeline=pipeline)
    assert build.outcome.success
    counts = build.outcome.release_metadata["entries"]
    ledger = pl.read_parquet(Path(build.outcome.release_metadata["release"]) / "ledger.parquet")
    assert counts["input"] == counts["released"] + counts["filtered"] + counts["quarantined"] == ledger.height
    board = pl.read_parquet(build.store / "tables" / "annotator_scores.parquet")
    [low] = board.filter((pl.col("mean_iou") < 0.8) & ~pl.col("is_model"))["annotator"].to_list()  # carol, the careless
    left_out = ledger.filter(pl.col("reason").str.starts_with(f"{low} scored below"))
    assert left_out.height > 0 and set(left_out["outcome"]) == {"filtered"}
    consensus = pl.read_parquet(build.store / "tables" / "consensus_masks.parquet")
    released_from_annotators = consensus.filter((pl.col("status") == "accepted") & (pl.col("mask_source") != "gold"))
    assert not released_from_annotators["annotators"].list.contains(low).any()  # on gold images they are only scored


def test_no_clean_entry_fails_an_error_check_and_every_failure_is_a_planted_one_or_a_warning(demo_build, ground_truth):
    """Precision of the blocking checks on the demo: its ERROR-class defects are stopped at ingest, so
    nothing reaching QA fails an ERROR rule, while the WARN findings include every planted QA defect."""
    report = demo_build.qa_report
    assert report.filter((pl.col("severity") == "ERROR") & ~pl.col("passed")).is_empty()
    planted = {(d["batch_id"], f"images/{d['file_name']}") for d in ground_truth["defects"]
               if d["kind"] in ("unmapped_label", "duplicate_image", "self_intersecting_polygon", "oversized_instance")}
    warned = set(report.filter(~pl.col("passed")).select("batch_id", "file_name").iter_rows())
    assert planted <= warned


def test_taxonomy_constraints_run_in_qa_and_warn_on_the_masks_that_break_them(tiny_demo, tmp_path):
    taxonomy = tmp_path / "taxonomy.yaml"
    taxonomy.write_text((DEMO_CONFIG / "taxonomy.yaml").read_text() + (
        "constraints:\n  - {class: sky, max_area_share: 0.01}\n  - {class: road, touches: bottom}\n"))
    build = build_in(tmp_path, Path(tiny_demo.landing_root), taxonomy=taxonomy)
    assert build.outcome.success  # WARN: the release is still built
    flagged = build.qa_report.filter((pl.col("check_id") == "class_constraints") & ~pl.col("passed"))
    assert flagged.height > 0 and flagged["reason"].str.contains("sky covers").all()
    assert build.outcome.check_outcomes["qa_report:class_constraints"] is False


def _with_gps_exif(path: Path) -> str:
    """Re-save a landed JPEG with the EXIF a phone writes (GPS position, serial number, artist);
    the new bytes' SHA-256, the image's id."""
    from PIL.ExifTags import GPS, IFD, Base

    with Image.open(path) as image:
        pixels = image.copy()
    exif = Image.Exif()
    exif[Base.Artist] = "Alice Example"
    exif.get_ifd(IFD.Exif)[Base.BodySerialNumber] = "SN-4711"
    gps = exif.get_ifd(IFD.GPSInfo)
    gps[GPS.GPSLatitudeRef], gps[GPS.GPSLatitude] = "N", (48.0, 8.0, 14.0)
    gps[GPS.GPSLongitudeRef], gps[GPS.GPSLongitude] = "E", (11.0, 34.0, 31.0)
    pixels.save(path, format="JPEG", quality=95, exif=exif)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_nothing_in_a_release_names_the_annotator_the_build_machine_or_where_a_photo_was_taken(tiny_demo, tmp_path):
    """A batch named after its annotator, whose photos carry GPS EXIF, built on this machine: no
    member of the release, nor the ledger and manifest beside it, holds the name, the landing path
    or the EXIF."""
    landing = tmp_path / "delivered"
    shutil.copytree(tiny_demo.landing_root, landing)
    batch = landing / "b001_vendor_a_alice"
    assert json.loads((batch / "batch.json").read_text())["annotator"] == "alice"
    tagged = set()
    for path in sorted((batch / "images").glob("*.jpg")):
        try:
            tagged.add(_with_gps_exif(path))
        except OSError:  # the planted truncated image stays as it is
            continue
    build = build_in(tmp_path, landing)
    assert build.outcome.success, build.outcome.failed_checks
    folder = Path(build.outcome.release_metadata["release"])
    ledger = pl.read_parquet(folder / "ledger.parquet")
    assert ledger.filter(pl.col("outcome") == "quarantined").height > 0  # their messages named landing paths

    contents: dict[str, bytes] = {}
    with zipfile.ZipFile(build.outcome.release_metadata["archive"]) as archive:
        contents |= {name: archive.read(name) for name in archive.namelist()}
        index = pl.read_csv(io.BytesIO(archive.read("index.csv")))
    contents |= {path.name: path.read_bytes() for path in folder.iterdir()}
    for name in [n for n in contents if n.endswith(".parquet")]:  # compressed columns, read as text too
        contents[f"{name}.csv"] = pl.read_parquet(io.BytesIO(contents[name])).write_csv().encode()
    assert tagged & set(index["image_id"])  # released images that were delivered with GPS EXIF
    for name, data in contents.items():
        assert b"alice" not in data.lower(), name
        assert str(tmp_path).encode() not in data, name
        assert b"Exif\x00\x00" not in data and b"SN-4711" not in data, name
    for path in index["image_path"]:
        with Image.open(io.BytesIO(contents[path])) as image:
            assert not image.getexif(), path


def test_the_demo_release_with_every_export_in_parts_loads_in_datumaro_datasets_and_cityscapes_as_its_masks(
        demo_build, tmp_path):
    """The demo build's release, built again with every trainer layout on and in small parts, fetched with
    the layouts assembled: Datumaro's VOC importer, `datasets` and the labelTrainIds files give each
    released mask's pixels and class names."""
    dm, datasets = pytest.importorskip("datumaro"), pytest.importorskip("datasets")
    exports = ("cityscapes", "voc", "hf")
    fs, root = fsspec.filesystem("file", auto_mkdir=True), str(tmp_path / "store")
    published = build_and_publish(fs, root, release_inputs(demo_build, BuildStamp.now("run-exports"), exports=exports,
                                                           part_bytes=1 << 16)).published
    assert published.marker["parts"]
    release = tmp_path / "release"
    assert fetch_release(fs, f"{root}/{published.prefix}", release, layouts=exports).verification.problems == []
    taxonomy = load_taxonomy(DEMO_CONFIG / "taxonomy.yaml")
    class_names = {c.id: c.name for c in taxonomy.classes} | {taxonomy.ignore_index: ""}
    voc = dm.Dataset.import_from(str(release / "voc"), "voc_segmentation")
    voc_names = [label.name for label in voc.categories()[dm.AnnotationType.label]]
    hf = datasets.load_dataset(str(release / "hf"), cache_dir=str(tmp_path / "cache"))
    hf_masks = {row["image_id"]: np.array(row["label"]) for split in hf for row in hf[split]}
    train_ids = {path.name.split("_")[-3]: path for path in (release / "cityscapes" / "gtFine").rglob("*_labelTrainIds.png")}
    manifest = pl.read_parquet(release / "index.parquet")
    assert len(hf_masks) == len(train_ids) == manifest.height
    for row in manifest.iter_rows(named=True):
        mask = decode_mask_png((release / row["mask_path"]).read_bytes())
        expected = np.vectorize(class_names.__getitem__)(mask)
        painted = np.full(mask.shape, "?", object)
        for annotation in voc.get(Path(row["mask_path"]).stem, row["split"]).annotations:
            painted[annotation.image] = voc_names[annotation.label]
        painted[painted == "void"] = ""
        assert np.array_equal(painted, expected), row["mask_path"]
        assert np.array_equal(hf_masks[row["image_id"]], mask)
        cityscapes = np.array(Image.open(train_ids[row["image_id"][:12]]))
        assert np.array_equal(cityscapes == 255, mask == taxonomy.ignore_index)
        assert np.array_equal(cityscapes[mask != taxonomy.ignore_index], mask[mask != taxonomy.ignore_index])
    names = hf["train"].features["classes"].feature.names
    assert all(names[c.id] == c.name for c in taxonomy.classes)
