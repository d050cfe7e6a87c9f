import argparse
import io
import os
import re
import struct
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from segpipe.cli.main import build_parser, main
from segpipe.core.shared.quarantine_rules import QUARANTINE_RULES
from segpipe.core.ingest.pseudonym import annotator_key, batch_pseudonym
from segpipe.core.rasterize.raster import decode_mask_png
from segpipe.core.release.layout import release_stem
from segpipe.demo import DEMO_CONFIG
from segpipe.store import keys
from segpipe.store.keys import RELEASE_MEMBERS, release_prefix
from segpipe.environment import PACKAGE_CONFIG
from segpipe_tests.bench.cityscapes_scenes import Dataset, write_dataset
from segpipe_tests.core.rasterize.test_raster_parity import assert_identical, json2label_masks

CITYSCAPES_PRESET = PACKAGE_CONFIG / "presets" / "cityscapes.yaml"
ROOT = Path(__file__).parents[1]
QUARANTINE_RULE_IDS = {rule.id for rule in QUARANTINE_RULES}


@pytest.fixture()
def pseudonym_key(monkeypatch, tmp_path):
    monkeypatch.setenv("SEGPIPE_PSEUDONYM_KEY_FILE", str(tmp_path / "key"))


def test_check_source_writes_tables_report_and_masks_named_as_in_a_release(tiny_demo, tmp_path, capsys, pseudonym_key):
    batch = tiny_demo.landing_root / "b001_vendor_a_alice"
    out = tmp_path / "out"
    code = main(["check-source", str(batch), "--taxonomy", str(DEMO_CONFIG / "taxonomy.yaml"), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    images, quarantine = pl.read_parquet(out / "images.parquet"), pl.read_parquet(out / "quarantine.parquet")
    shapes, files = pl.read_parquet(out / "shapes.parquet"), pl.read_parquet(out / "files.parquet")
    assert shapes.height > 0 and set(files["path"]) >= {"batch.json", "metadata.csv"}
    assert (out / "quarantine.csv").read_text().count("\n") == quarantine.height + 1
    masks = sorted(p.name for p in (out / "masks").iterdir())
    assert masks == sorted(f"{release_stem(f, i)}.png" for f, i in images.select("file_name", "image_id").iter_rows())
    first = images.row(0, named=True)
    mask = decode_mask_png((out / "masks" / f"{release_stem(first['file_name'], first['image_id'])}.png").read_bytes())
    assert mask.shape == (first["height"], first["width"])
    assert f"items: {images.height + quarantine.height} ({images.height} accepted, {quarantine.height} quarantined)" in printed
    assert "labels found:" in printed and "unmapped labels:" in printed
    for rule in quarantine["rule"].unique():
        assert f"x {rule}:" in printed


def test_check_source_on_a_coco_json_alone_lints_its_shapes_and_draws_masks_from_the_declared_size(
        tmp_path, capsys, pseudonym_key):
    import json

    import fsspec

    from segpipe.core.ingest.batch import ingest_batch
    from segpipe.core.ingest.sources import open_source

    export = tmp_path / "export"
    export.mkdir()
    polygon = [[10, 10, 60, 10, 60, 40, 10, 40]]
    (export / "instances_default.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
                   {"id": 2, "file_name": "b.jpg", "width": 32, "height": 16}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 26, "iscrowd": 0, "segmentation": polygon},
                        {"id": 2, "image_id": 1, "category_id": 7, "iscrowd": 0, "segmentation": [[0, 0, 9, 0, 9, 9]]},
                        {"id": 3, "image_id": 2, "category_id": 26, "iscrowd": 0, "bbox": [1, 1, 4, 4]}],
        "categories": [{"id": 7, "name": "road"}, {"id": 26, "name": "car"}]}))
    taxonomy = tmp_path / "taxonomy.yaml"
    taxonomy.write_text((DEMO_CONFIG / "taxonomy.yaml").read_text() + "  coco_instances:\n    road: road\n    car: car\n")
    out = tmp_path / "out"
    assert main(["check-source", str(export), "--taxonomy", str(taxonomy), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "items: 2 (0 accepted, 2 quarantined)" in printed and "quarantined 2 x image_missing" in printed
    assert "shapes: 3 (box 1, polygon 2)" in printed and "labels found: 2: 'car' 2, 'road' 1" in printed
    assert "image missing: 2 items, their 3 shapes counted above (flagged image_missing in shapes.parquet)" in printed
    assert f"masks written: 0 in {out / 'masks'}, and 2 drawn from the declared size, no image, in " \
        f"{out / 'masks' / 'no-image'}" in printed
    shapes = pl.read_parquet(out / "shapes.parquet")
    assert shapes.height == 3 and shapes["image_missing"].all()
    drawn = {path.name.split("_")[0]: decode_mask_png(path.read_bytes()) for path in (out / "masks" / "no-image").iterdir()}
    assert {name: mask.shape for name, mask in drawn.items()} == {"a": (48, 64), "b": (16, 32)}
    assert sorted(set(drawn["a"].ravel().tolist())) == [0, 8, 255]  # road and car painted over the unlabelled rest
    assert "unmapped labels: 0" in printed
    with open_source(fsspec.filesystem("file"), str(export)) as source:
        built = ingest_batch(source, "export", b"k" * 32)  # as a build reads it: the ledger is unchanged
    assert (built.shapes.height, built.images_missing.height, built.quarantine.height) == (0, 0, 2)


def test_check_source_without_images_applies_the_source_named_and_writes_no_mask_at_all_when_labels_are_unmapped(
        tmp_path, capsys, pseudonym_key):
    """The entries linted without their image take --source's rules too; under unmapped: error an
    unmapped label blocks every mask, those drawn from the declared size included."""
    import json

    export = tmp_path / "export"
    export.mkdir()
    (export / "instances_default.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 26, "iscrowd": 0, "segmentation": [[1, 1, 9, 1, 9, 9]]}],
        "categories": [{"id": 26, "name": "car"}]}))
    preset = str(CITYSCAPES_PRESET)
    out = tmp_path / "a"
    assert main(["check-source", str(export), "--taxonomy", preset, "--source", "cityscapes", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert f"source: cityscapes: the rules of mappings.cityscapes in {preset}" in printed
    assert "unmapped labels: 0" in printed
    assert f"masks written: 0 in {out / 'masks'}, and 1 drawn from the declared size, no image, in " \
        f"{out / 'masks' / 'no-image'}" in printed
    out = tmp_path / "b"
    assert main(["check-source", str(export), "--taxonomy", preset, "--out", str(out), "--source", "vendor_x"]) == 1
    printed = capsys.readouterr().out
    assert "source: vendor_x:" in printed and "unmapped labels: 1 (1 shapes; unmapped: error): 'car' 1" in printed
    assert "masks written: none: under unmapped: error" in printed and not (out / "masks").exists()
    assert "image missing: 1 items, their 1 shapes counted above (flagged image_missing in shapes.parquet)" in printed


def test_check_source_reads_a_zip_and_reports_unsafe_archives_without_failing(tmp_path, capsys, pseudonym_key):
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("/etc/passwd", b"root:x:0:0")
    assert main(["check-source", str(archive), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "format: unreadable" in printed and "unsafe_archive_path" in printed


@pytest.fixture(scope="module")
def cityscapes_export(tmp_path_factory) -> Dataset:
    """Two generated Cityscapes scenes (polygon files and photos, license plates included) as a
    vendor delivers them: no batch.json, so the batch's source is the reader's name."""
    return write_dataset(tmp_path_factory.mktemp("cityscapes"), 2, 512, 256, seed=7, images=True, license_plates=True)


def test_check_source_maps_a_cityscapes_export_with_the_preset_as_json2labelimg_does(
        cityscapes_export, tmp_path, capsys, pseudonym_key):
    out = tmp_path / "out"
    code = main(["check-source", str(cityscapes_export.cityscapes_root), "--taxonomy", str(CITYSCAPES_PRESET),
                 "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    reference = json2label_masks(cityscapes_export, tmp_path)
    stems = {scene.image_name: scene.stem for scene in cityscapes_export.scenes}
    images = pl.read_parquet(out / "images.parquet")
    assert sorted(stems[name] for name in images["file_name"]) == sorted(reference)
    assert_identical({stems[name]: decode_mask_png((out / "masks" / f"{release_stem(name, image_id)}.png").read_bytes())
                      for name, image_id in images.select("file_name", "image_id").iter_rows()}, reference)
    lines = printed.splitlines()
    assert f"source: cityscapes_polygons: the rules of mappings.cityscapes in {CITYSCAPES_PRESET}" in lines
    assert "unmapped labels: 0" in lines
    voided = next(line for line in lines if line.startswith("voided on purpose"))
    skipped = next(line for line in lines if line.startswith("skipped on purpose"))
    assert "'ego vehicle'" in voided and "'out of roi'" in voided and "'license plate'" in skipped


def test_check_source_applies_the_rules_of_the_source_named_and_refuses_masks_when_labels_are_unmapped(
        cityscapes_export, tmp_path, capsys, pseudonym_key):
    export, preset = str(cityscapes_export.cityscapes_root), str(CITYSCAPES_PRESET)
    assert main(["check-source", export, "--taxonomy", preset, "--source", "cityscapes", "--out", str(tmp_path / "a")]) == 0
    assert "unmapped labels: 0" in capsys.readouterr().out.splitlines()
    out = tmp_path / "b"
    code = main(["check-source", export, "--taxonomy", preset, "--source", "vendor_x", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 1 and not (out / "masks").exists()
    assert pl.read_parquet(out / "images.parquet")["source"].unique().to_list() == ["vendor_x"]
    labels = Counter(obj.label for scene in cityscapes_export.scenes for obj in scene.live())
    [unmapped] = [line for line in printed.splitlines() if line.startswith("unmapped labels:")]
    named = sorted(labels.items(), key=lambda pair: (-pair[1], pair[0]))[:12]  # most shapes first
    assert unmapped == (f"unmapped labels: {len(labels)} ({labels.total()} shapes; unmapped: error): "
                        + ", ".join(f"{label!r} {count}" for label, count in named) + f" +{len(labels) - 12} more")
    assert f"source: vendor_x: {preset} has no rules for it; its sources: cityscapes, cityscapes_polygons" in printed
    assert f"what to do: add a rule for each under mappings.vendor_x in {preset}" in printed
    assert "masks written: none: under unmapped: error" in printed


@pytest.mark.parametrize("args", [
    ["check-source", "/no/such/export", "--out", "x"],
    ["check-source", ".", "--format", "labelbox", "--out", "x"],
    ["check-source", ".", "--taxonomy", "/no/such.yaml", "--out", "x"],
])
def test_check_source_exits_2_for_usage_errors(args, capsys, pseudonym_key):
    with pytest.raises(SystemExit) as caught:
        main(args)
    assert caught.value.code == 2


@pytest.mark.parametrize("command", ["build", "backfill"])
def test_build_and_backfill_print_each_configuration_problem_on_a_line_and_exit_2(command, tmp_path, capsys, monkeypatch):
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text("dataset_name: demo\nqa:\n  max_error_failure: 1\n  near_duplicate_bits: 99\n")
    monkeypatch.setenv("SEGPIPE_PIPELINE_CONFIG", str(pipeline))
    assert main([command]) == 2
    printed = capsys.readouterr()
    assert printed.err.splitlines() == [
        "segpipe: configuration error:",
        f"{pipeline}:3: qa.max_error_failure: unknown key; did you mean 'max_error_failures'?",
        f"{pipeline}:4: qa.near_duplicate_bits: must be at most 64, got 99",
    ]
    assert printed.out == ""


def test_build_and_backfill_with_nothing_to_build_say_so_and_exit_1(tmp_path, capsys, monkeypatch):
    (tmp_path / "landing").mkdir()
    (tmp_path / "dagster").mkdir()
    monkeypatch.setenv("SEGPIPE_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    assert main(["build"]) == 1
    assert capsys.readouterr().err == (f"segpipe build: {tmp_path / 'landing'}: no ready batches (folders with a "
                                       "batch.json, or .zip archives); start a project from your export with "
                                       "`segpipe init EXPORT`, or try `segpipe demo`\n")
    assert main(["backfill"]) == 1
    assert capsys.readouterr().err == "segpipe backfill: no batches have been ingested yet; run `segpipe build` first\n"


def test_review_export_before_any_build_says_so_exits_1_and_writes_nothing(tmp_path, capsys, monkeypatch):
    (tmp_path / "dagster").mkdir()
    monkeypatch.setenv("SEGPIPE_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    assert main(["review", "export", str(tmp_path / "queue.zip")]) == 1
    assert capsys.readouterr().err == (
        f"segpipe review export: no batch is ingested yet in the Dagster instance at {tmp_path / 'dagster'}: run "
        "`segpipe build` first, or set DAGSTER_HOME to the instance your builds use (without it, the project's "
        "dagster_home/)\n")
    assert not (tmp_path / "queue.zip").exists()


def test_batches_and_build_name_each_landed_entry_that_cannot_be_a_batch(tmp_path, capsys, monkeypatch):
    landing = tmp_path / "landing"
    (landing / "vendor a delivery").mkdir(parents=True)
    (landing / "vendor a delivery" / "batch.json").write_text("{}")
    (tmp_path / "dagster").mkdir()
    monkeypatch.setenv("SEGPIPE_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    assert main(["batches"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "no batches: none ready in the landing zone, none ingested, none removed",
        "NOT A BATCH: 1 entry of the landing zone, not read (not in any count above)",
        f"  {landing}/vendor a delivery: 'vendor a delivery' is not a batch id ({landing}/vendor a delivery/batch.json "
        "exists), so the folder is not read",
        "    what to do: Rename the folder to a batch id such as 'vendor_a_delivery': letters, digits, '.', '_' and "
        "'-', starting with a letter or digit, at most 128 characters.",
    ]
    assert main(["build"]) == 1
    assert capsys.readouterr().err.splitlines()[1:] == [
        f"not a batch: {landing}/vendor a delivery: 'vendor a delivery' is not a batch id ({landing}/vendor a delivery/"
        "batch.json exists), so the folder is not read. Rename the folder to a batch id such as 'vendor_a_delivery': "
        "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 128 characters."]


def test_pseudonym_prints_what_tables_use_for_a_name(tiny_demo, tmp_path, capsys, pseudonym_key):
    assert main(["pseudonym", "alice"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    name, pseudonym = line.split("\t")
    main(["check-source", str(tiny_demo.landing_root / "b001_vendor_a_alice"), "--out", str(tmp_path / "out")])
    assert name == "alice" and pl.read_parquet(tmp_path / "out" / "images.parquet")["annotator"].unique().to_list() == [pseudonym]


def test_pseudonym_with_batch_prints_the_name_releases_give_a_batch(capsys, pseudonym_key):
    assert main(["pseudonym", "--batch", "b001_vendor_a_alice"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    key = annotator_key(None, Path(os.environ["SEGPIPE_PSEUDONYM_KEY_FILE"]))
    assert line == f"b001_vendor_a_alice\t{batch_pseudonym('b001_vendor_a_alice', key)}"


def test_verify_and_inspect_read_a_release_zip_by_path_or_url(tmp_path, capsys):
    from segpipe_tests.core.release.release_fixture import build_release

    release = tmp_path / "demo-2026-12-01.1-tax-t-v1.zip"  # <dataset>-<version>.zip, as published
    built = build_release()
    release.write_bytes(built.data)
    listed = len(built.contents.packaged) - 1  # every member but SHA256SUMS itself
    assert main(["verify", release.as_uri()]) == 0
    assert capsys.readouterr().out == (f"{release.as_uri()}: OK ({listed} files match SHA256SUMS, 3 images in index.csv match "
                                       "the manifest schema and meta.json, all 3 masks decoded)\n")
    assert main(["inspect", str(release)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("demo release 2026-12-01.1-tax-t-v1\ncontent ")
    assert "images: 3 (test 1, train 1, val 1)" in printed and "QA failures: labels_mapped 1" in printed
    assert "    1 car         8.33%\n" in printed and "  255 (ignored)  26.39%\n" in printed


def test_verify_exits_non_zero_naming_the_corrupted_member(tmp_path, capsys):
    from segpipe_tests.core.release.release_fixture import build_release

    data = bytearray(build_release().data)
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("coco/coco.json")
    name_length, extra_length = struct.unpack_from("<HH", data, info.header_offset + 26)  # the local header's own
    data[info.header_offset + 30 + name_length + extra_length + 5] ^= 0x01
    release = tmp_path / "demo.zip"
    release.write_bytes(bytes(data))
    assert main(["verify", str(release)]) == 1
    errors = capsys.readouterr().err
    assert errors.startswith("segpipe verify: coco/coco.json: unreadable: ")
    assert errors.endswith(f"{release}: FAILED, 1 problems\n")
    assert main(["verify", str(tmp_path / "missing.zip")]) == 1
    assert capsys.readouterr().err == (f"segpipe verify: {tmp_path / 'missing.zip'}: no such release ZIP or release "
                                       f"folder\n{tmp_path / 'missing.zip'}: FAILED, 1 problems\n")


def test_verify_reports_a_damaged_sha256sums_and_a_changed_tail_one_line_each(tmp_path, capsys):
    """A flipped byte in the deflated SHA256SUMS used to escape as a zlib.error traceback; a flipped last
    byte (the end record's comment length) used to pass, since zipfile still opens the archive."""
    from segpipe_tests.core.release.release_fixture import build_release

    data = build_release().data
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo("SHA256SUMS")
    assert info.compress_type == zipfile.ZIP_DEFLATED
    name_length, extra_length = struct.unpack_from("<HH", data, info.header_offset + 26)
    sums = bytearray(data)
    sums[info.header_offset + 30 + name_length + extra_length + 5] ^= 0x01
    (tmp_path / "sums.zip").write_bytes(bytes(sums))
    assert main(["verify", str(tmp_path / "sums.zip")]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert errors[0].startswith("segpipe verify: SHA256SUMS: unreadable: Error -3 while decompressing data")
    assert errors[1:] == [f"{tmp_path / 'sums.zip'}: FAILED, 1 problems"]

    (tmp_path / "tail.zip").write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    assert main(["verify", str(tmp_path / "tail.zip")]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "segpipe verify: (end of central directory): declares a 65280-byte comment but 0 bytes follow it: the end of "
        "the archive was altered, cut or appended to", f"{tmp_path / 'tail.zip'}: FAILED, 1 problems"]


def test_verify_checks_every_object_of_a_release_folder_against_its_marker(tmp_path, capsys):
    import hashlib

    import fsspec

    from segpipe_tests.store.published_release import publish_constructed_release

    published = publish_constructed_release(fsspec.filesystem("file", auto_mkdir=True), str(tmp_path / "store"))
    folder = tmp_path / "store" / published.prefix
    with zipfile.ZipFile(folder / f"demo-{published.version}.zip") as archive:
        listed = len(archive.namelist()) - 1  # every member but SHA256SUMS itself
    assert main(["verify", str(folder)]) == 0
    assert capsys.readouterr().out == (
        f"{folder}: OK (2 objects match _RELEASE.json; its ZIP: {listed} files match SHA256SUMS, 3 images in index.csv "
        "match the manifest schema and meta.json, all 3 masks decoded)\n")

    archive, manifest = folder / f"demo-{published.version}.zip", folder / "manifest.parquet"
    for path in (archive, manifest):
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF  # the ZIP's end record, the Parquet file's magic: one byte each
        path.write_bytes(bytes(data))
    (folder / "notes.txt").write_text("left here by hand")
    assert main(["verify", folder.as_uri()]) == 1
    files = published.marker["files"]
    found = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in files}
    changed = "the object changed after it was published; restore it from a copy that matches"
    assert capsys.readouterr().err.splitlines() == [
        f"segpipe verify: {archive.name}: SHA-256 is {found[archive.name]}, _RELEASE.json says {files[archive.name]}: "
        f"{changed}",
        f"segpipe verify: manifest.parquet: SHA-256 is {found['manifest.parquet']}, _RELEASE.json says "
        f"{files['manifest.parquet']}: {changed}",
        "segpipe verify: notes.txt: not listed in _RELEASE.json: not part of the release",
        f"segpipe verify: {archive.name}: (end of central directory): declares a 65280-byte comment but 0 bytes follow "
        "it: the end of the archive was altered, cut or appended to",
        f"{folder.as_uri()}: FAILED, 4 problems"]

    assert main(["verify", str(folder.parent)]) == 1  # the dataset's folder, not a release's
    assert capsys.readouterr().err.splitlines() == [
        "segpipe verify: _RELEASE.json: missing: not a committed release folder (expected "
        ".../releases/<dataset>/<version>/ holding it)", f"{folder.parent}: FAILED, 1 problems"]


def test_verify_reports_a_file_it_may_not_read_as_an_access_problem(tmp_path):
    """Run as a process that file permissions bind: as root, one without the capabilities that override them."""
    import shutil
    import subprocess
    import sys

    from segpipe_tests.core.release.release_fixture import build_release

    release = tmp_path / "demo.zip"
    release.write_bytes(build_release().data)
    release.chmod(0)
    bound = [] if os.geteuid() != 0 else [shutil.which("setpriv") or pytest.skip("root, and no setpriv to drop "
                                                                                   "CAP_DAC_OVERRIDE"),
                                          "--bounding-set=-dac_override,-dac_read_search"]
    done = subprocess.run([*bound, sys.executable, "-m", "segpipe.cli.main", "verify", str(release)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": ":".join(sys.path)})
    assert done.returncode == 1, done.stderr
    [problem, failed] = done.stderr.splitlines()
    assert problem.startswith(f"segpipe verify: {release}: permission denied (")
    assert problem.endswith("): check that the user running segpipe may read it")
    assert failed == f"{release}: FAILED, 1 problems"


def _every_option_and_subcommand(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, str | None]]:
    """(where, its help text) for every option, argument and subcommand under `parser`, and each
    subcommand's own description (what its --help starts with)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, command in action.choices.items():
                yield f"{path} {name}", helps.get(name)
                yield f"{path} {name} (description)", command.description
                yield from _every_option_and_subcommand(command, f"{path} {name}")
        else:
            yield f"{path} {'/'.join(action.option_strings) or action.dest}", action.help


def test_every_subcommand_and_option_has_help_text():
    found = list(_every_option_and_subcommand(build_parser(), "segpipe"))
    assert len(found) > 60 and "segpipe batch retry --verbose" in dict(found)
    assert [where for where, text in found if not text] == []


def test_a_run_under_the_projects_dagster_yaml_prints_no_debug_line(tmp_path, monkeypatch, capfd):
    """`make dev` launches runs with no logger configuration: Dagster's console logger then takes its
    level from dagster.yaml's python_logs, where DEBUG would print a line per event to the terminal."""
    import shutil

    import dagster as dg

    (tmp_path / "dagster").mkdir()
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster" / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))

    @dg.asset
    def greeting(context: dg.AssetExecutionContext) -> None:
        context.log.info("hello from the step")

    with dg.DagsterInstance.get() as instance:
        assert dg.materialize([greeting], instance=instance).success
    printed = capfd.readouterr().err
    assert "hello from the step" in printed and " - DEBUG - " not in printed


@pytest.fixture()
def cli_project(tiny_demo, tmp_path, monkeypatch) -> Path:
    """A project folder as `segpipe init` leaves one, on a copy of the tiny demo (the demo's taxonomy, the
    tiny demo's pipeline.yaml), its run history in a DAGSTER_HOME holding the project's dagster.yaml."""
    import shutil

    from segpipe_tests.conftest import tiny_demo_pipeline

    shutil.copytree(tiny_demo.landing_root, tmp_path / "landing")
    shutil.copy(DEMO_CONFIG / "taxonomy.yaml", tmp_path / "taxonomy.yaml")
    (tmp_path / "pipeline.yaml").write_text(tiny_demo_pipeline())
    (tmp_path / "dagster").mkdir()
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster" / "dagster.yaml")
    monkeypatch.setenv("SEGPIPE_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    return tmp_path


STEP_LINE = re.compile(r"^(taxonomy|batch \d+/\d+ \S+|release): \w+ (done|FAILED|skipped) \(\d+/\d+ steps, \d+\.\d s\)$")


@pytest.mark.slow
def test_build_prints_a_line_per_step_and_the_quarantined_entries_and_debug_lines_only_when_verbose(
        cli_project, tiny_demo, capfd, monkeypatch):
    from segpipe.cli import build_summary

    monkeypatch.setattr(build_summary, "SHOWN_QUARANTINED", 1)
    assert main(["build"]) == 0
    printed = capfd.readouterr()
    assert "DEBUG" not in printed.out + printed.err
    steps = printed.err.splitlines()  # not a terminal: a plain line per finished step, no bar
    assert [line for line in steps if not STEP_LINE.match(line)] == []
    assert steps[0].startswith("taxonomy: taxonomy_spec done (1/1 steps, ")
    for n, batch in enumerate(tiny_demo.batch_ids, 1):
        assert [line.split(": ")[1].split()[0] for line in steps
                if line.startswith(f"batch {n}/{len(tiny_demo.batch_ids)} {batch}: ")] == [
            "ingest_annotation_batch", "label_masks", "mapped_shapes", "annotation_masks"]
    assert steps[-1].startswith("release: dataset_release done (5/5 steps, ")

    lines = printed.out.splitlines()
    [entries] = [line for line in lines if line.startswith("entries: ")]
    quarantined = int(re.search(r"\+ (\d+) quarantined$", entries)[1])
    assert quarantined >= 2, "the tiny demo plants several quarantined entries"
    at = lines.index(f"quarantined: {quarantined} entries (each in the release's ledger.parquet)")
    rule, message = lines[at + 1].strip().split(": ", 1)
    assert lines[at + 1].startswith("  ") and rule in QUARANTINE_RULE_IDS and str(cli_project) not in message
    assert lines[at + 2] == f"  +{quarantined - 1} more"

    assert main(["build", "--verbose"]) == 0  # nothing new to draw: the release runs again, logging as it goes
    printed = capfd.readouterr()
    assert " - DEBUG - " in printed.err and "release: dataset_release done (5/5 steps, " in printed.err
    assert "DEBUG" not in printed.out


@pytest.mark.parametrize("bars", [False, True])
def test_step_progress_follows_each_run_from_its_event_stream(bars):
    """A line per finished step with how many of the run's steps are done; with bars (a terminal) the
    same events move a bar that is cleared when the run ends, so the run's outcome is unchanged."""
    import dagster as dg

    from segpipe.cli.progress import StepProgress

    @dg.asset
    def first() -> int:
        return 1

    @dg.asset
    def second(first: int) -> int:
        return first + 1

    job = dg.Definitions(assets=[first, second], jobs=[dg.define_asset_job("both")]).resolve_job_def("both")
    out = io.StringIO()
    with dg.instance_for_test() as instance:
        with StepProgress(out, bars=bars).run(instance, "demo run") as run_id:
            result = job.execute_in_process(instance=instance, run_id=run_id)
    assert result.success and result.run_id == run_id
    lines = out.getvalue().splitlines()
    if bars:
        assert all("done (" not in line for line in lines)
    else:
        assert [re.sub(r", \d+\.\d s\)$", ")", line) for line in lines] == [
            "demo run: first done (1/2 steps)", "demo run: second done (2/2 steps)"]


def test_fetch_assembles_the_layouts_asked_for_which_verify_then_checks(tmp_path, capsys, monkeypatch):
    import fsspec

    from segpipe_tests.store.parted_releases import publish_constructed

    root = tmp_path / "store"
    published = publish_constructed(fsspec.filesystem("file", auto_mkdir=True), str(root), exports=("voc", "hf"))
    (tmp_path / "pipeline.yaml").write_text("dataset_name: demo\n")
    monkeypatch.setenv("SEGPIPE_STORAGE_ROOT", str(root))
    monkeypatch.setenv("SEGPIPE_PIPELINE_CONFIG", str(tmp_path / "pipeline.yaml"))
    version, into = published.published.version, tmp_path / "dataset"
    assert main(["fetch", version, str(into), "--layout", "voc", "--layout", "hf"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[1:] == [f"  {into / 'voc'}: the voc layout, 3 files assembled and checked",
                           f"  {into / 'hf'}: the hf layout, 3 files assembled and checked"]
    assert sorted(p.name for p in (into / "voc" / "JPEGImages").iterdir()) == [
        f"{split}_000000000000.png" for split in ("test", "train", "val")]
    assert main(["verify", str(into)]) == 0
    capsys.readouterr()
    assert main(["fetch", version, str(tmp_path / "other"), "--layout", "cityscapes"]) == 1
    assert "carries no cityscapes layout" in capsys.readouterr().err


def test_store_commands_read_the_project_given_and_refuse_to_guess_a_dataset_where_there_is_none(
        tmp_path, capsys, monkeypatch):
    """A project `segpipe init --into DIR` wrote is built with `--project DIR`, and so are its releases
    listed, fetched, packed and collected; in a folder holding no project, a store command without
    --project or --dataset names those options instead of reporting the packaged default's dataset
    as having no releases."""
    import fsspec

    from segpipe_tests.store.parted_releases import publish_constructed

    project = tmp_path / "project"
    version = publish_constructed(fsspec.filesystem("file", auto_mkdir=True), str(project / "store")).published.version
    (project / "pipeline.yaml").write_text("dataset_name: demo\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for variable in ("SEGPIPE_HOME", "SEGPIPE_STORAGE_ROOT", "SEGPIPE_PIPELINE_CONFIG"):
        monkeypatch.delenv(variable, raising=False)

    for command in (["releases"], ["fetch", "latest", "out"], ["pack", "latest"], ["gc", "--dry-run"]):
        with pytest.raises(SystemExit) as refused:
            main(command)
        assert refused.value.code == 2
        assert (f"{elsewhere / '.segpipe'} holds no project (no pipeline.yaml), so there is no dataset to look for: "
                "pass --project DIR") in capsys.readouterr().err
    assert not (elsewhere / "out").exists() and not (elsewhere / ".segpipe").exists()

    assert main(["releases", "--project", str(project)]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].startswith("demo: 1 release") and listed[2].split()[:2] == ["*", version]
    assert main(["fetch", "latest", str(elsewhere / "out"), "--project", str(project)]) == 0
    assert capsys.readouterr().out.startswith(f"{elsewhere / 'out'}: ")
    assert main(["verify", str(elsewhere / "out")]) == 0
    assert main(["pack", "latest", "--project", str(project), "--out", str(elsewhere / "one.zip")]) == 0
    assert (elsewhere / "one.zip").is_file()
    capsys.readouterr()
    assert main(["gc", "--dry-run", "--project", str(project)]) == 0
    assert capsys.readouterr().out.startswith("demo: keeps every version")
    assert main(["releases", "--dataset", "other"]) == 0  # named: looked for, wherever the store is
    assert capsys.readouterr().out.startswith("other: no releases published")
    with pytest.raises(SystemExit):
        main(["releases", "--project", str(tmp_path / "nowhere")])
    assert f"--project {tmp_path / 'nowhere'}: no such folder" in capsys.readouterr().err


def test_releases_fetch_pack_and_gc_work_on_the_configured_store(tmp_path, capsys, monkeypatch):
    """Three versions in parts in SEGPIPE_STORAGE_ROOT: listed with their parts, fetched and packed by
    name, pruned by gc (a dry run first); a version that does not exist is refused in one line."""
    import fsspec

    from segpipe_tests.store.parted_releases import (
        edited_val_mask,
        new_batch_with_the_test_image,
        publish_constructed,
        without_test,
    )

    root = tmp_path / "store"
    fs = fsspec.filesystem("file", auto_mkdir=True)
    versions = [publish_constructed(fs, str(root), change, run_id=f"run-{n}").published.version
                for n, change in enumerate((without_test, new_batch_with_the_test_image, edited_val_mask))]
    (tmp_path / "pipeline.yaml").write_text("dataset_name: demo\nrelease:\n  keep_last: 2\n  gc_grace_hours: 1\n")
    monkeypatch.setenv("SEGPIPE_STORAGE_ROOT", str(root))
    monkeypatch.setenv("SEGPIPE_PIPELINE_CONFIG", str(tmp_path / "pipeline.yaml"))

    assert main(["releases"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split()[-1] == "parts" and [line.split()[-1] for line in table[2:]] == ["4", "6", "6"]
    files = [pl.read_parquet(root / release_prefix("demo", version) / RELEASE_MEMBERS).height for version in versions]
    assert main(["fetch", versions[1], str(tmp_path / "second")]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'second'}: {files[1]} files of {versions[1]} (7 ZIPs match ")
    assert sum(1 for p in (tmp_path / "second").rglob("*") if p.is_file()) == files[1]
    assert main(["pack", "latest", "--out", str(tmp_path / "latest.zip")]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'latest.zip'}: {files[2]} files of {versions[2]} in one ZIP")
    assert main(["verify", str(tmp_path / "latest.zip")]) == 0 and main(["verify", str(tmp_path / "second")]) == 0
    capsys.readouterr()
    assert main(["fetch", "2026-01-01.9-tax-nothing", str(tmp_path / "none")]) == 1
    assert capsys.readouterr().err.startswith("segpipe fetch: 2026-01-01.9-tax-nothing: ")
    assert not (tmp_path / "none").exists()

    retired = root / "yolo-outlines" / "masks" / "b001"  # YOLO outlines as an older segpipe remembered them
    retired.mkdir(parents=True)
    for n in range(3):
        (retired / f"e{n}-255.json").write_bytes(b"[]" * 2**19)
    current = root / keys.yolo_outlines_memo("masks/b001/e0.png", 255)
    current.parent.mkdir(parents=True)
    current.write_text("[]")
    assert main(["gc", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["demo: keeps the 2 newest, latest.json's: 2 versions", f"  would delete 1 versions: {versions[0]}"]
    assert lines[-1] == "  would delete 3 files of memo folders no segpipe reads any more (yolo-outlines/: 3.0 MiB)"
    assert len(list(retired.iterdir())) == 3
    assert main(["gc", "--keep-last", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == f"  deleted 2 versions: {versions[0]}, {versions[1]}"
    assert lines[2] == "  deleted 0 unused parts (0.0 MiB)"
    assert lines[3] == ("  kept 1 unused parts younger than 1 h (release.gc_grace_hours): a publisher may be about "
                        "to use them; a later gc deletes them")
    assert lines[4] == "  no build's tables in the store: no mask deleted"
    assert lines[5] == "  deleted 3 files of memo folders no segpipe reads any more (yolo-outlines/: 3.0 MiB)"
    assert not (root / "yolo-outlines").exists() and current.is_file()
    assert main(["gc"]) == 0 and "memo folders" not in capsys.readouterr().out
    assert main(["releases"]) == 0 and versions[2] in capsys.readouterr().out
    with pytest.raises(SystemExit, match="2"):
        main(["gc", "--keep-last", "0"])
    assert "--keep-last must be at least 1" in capsys.readouterr().err
