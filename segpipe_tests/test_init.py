"""`segpipe init`: an export becomes a project folder (taxonomy, pipeline.yaml, the export landed as one batch).

The build of such a project is in segpipe_tests/e2e/test_init_build.py."""

import json
import zipfile
from pathlib import Path

import fsspec
import orjson
import pytest
from PIL import Image

from segpipe.cli.main import main
from segpipe.core.ingest.landing import list_ready_batches
from segpipe.core.taxonomy.model import load_taxonomy
from segpipe.environment import PACKAGE_CONFIG
from segpipe_tests.labelme_export import LABELS, write_labelme_export


def cityscapes_export(folder: Path) -> Path:
    """Two Cityscapes frames with polygons of labels the cityscapes preset knows."""
    for stem, labels in (("a", ("road", "car")), ("b", ("sky", "ego vehicle"))):
        (folder / "leftImg8bit" / "val" / "city").mkdir(parents=True, exist_ok=True)
        (folder / "gtFine" / "val" / "city").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (16, 8), (40, 40, 40)).save(folder / "leftImg8bit" / "val" / "city" / f"{stem}_leftImg8bit.png")
        objects = [{"label": label, "polygon": [[0, 0], [15, 0], [15, 7]]} for label in labels]
        (folder / "gtFine" / "val" / "city" / f"{stem}_gtFine_polygons.json").write_text(
            json.dumps({"imgHeight": 8, "imgWidth": 16, "objects": objects}))
    return folder


def test_init_writes_a_draft_of_the_labels_the_generic_pipeline_and_the_export_as_a_ready_batch(tmp_path, capsys):
    export = write_labelme_export(tmp_path / "parts export", n_images=4)
    project = tmp_path / "project"
    assert main(["init", str(export), "--into", str(project), "--licence", "CC-BY-4.0"]) == 0
    printed = capsys.readouterr().out
    taxonomy = load_taxonomy(project / "taxonomy.yaml")
    assert {c.name for c in taxonomy.classes} == {"part", *LABELS} and set(taxonomy.mappings) == {"labelme"}
    pipeline = (project / "pipeline.yaml").read_text()
    assert pipeline == (PACKAGE_CONFIG / "pipeline.yaml").read_text().replace(
        "\ndataset_name: dataset\n", "\ndataset_name: parts-export\n")
    assert list_ready_batches(fsspec.filesystem("file"), str(project / "landing")) == ["parts-export"]
    landed = project / "landing" / "parts-export"
    assert sorted(p.name for p in landed.iterdir()) == sorted([p.name for p in export.iterdir()] + ["batch.json"])
    manifest = orjson.loads((landed / "batch.json").read_bytes())
    assert {k: manifest[k] for k in ("format", "source", "licence", "origin", "attribution")} == {
        "format": "labelme", "source": "labelme", "licence": "CC-BY-4.0", "origin": "", "attribution": ""}
    assert "Fill in licence" in manifest["comment"]
    assert "unmapped labels: 0" in printed and "origin and attribution left blank" in printed
    assert printed.rstrip().endswith(f"next: segpipe build --project {project}")


def test_an_export_of_a_presets_own_format_gets_the_preset_keyed_to_its_source_unless_a_draft_is_asked(tmp_path,
                                                                                                     capsys):
    export = cityscapes_export(tmp_path / "cs")
    assert main(["init", str(export), "--into", str(tmp_path / "preset")]) == 0
    assert "the cityscapes preset (19 classes)" in capsys.readouterr().out
    preset = load_taxonomy(tmp_path / "preset" / "taxonomy.yaml")
    assert set(preset.mappings) == {"cityscapes_polygons"}  # the batch's source: its format's name
    assert preset.resolve("cityscapes_polygons", "car", {})[1] == "mapped"
    assert preset.classes == load_taxonomy(PACKAGE_CONFIG / "presets" / "cityscapes.yaml").classes
    assert main(["init", str(export), "--into", str(tmp_path / "draft"), "--draft"]) == 0
    draft = load_taxonomy(tmp_path / "draft" / "taxonomy.yaml")
    assert {c.name for c in draft.classes} == {"road", "car", "sky", "ego vehicle"}


def test_an_exports_own_batch_json_is_kept_and_its_source_keys_the_taxonomy(tiny_demo, tmp_path, capsys):
    batch = tiny_demo.landing_root / "b001_vendor_a_alice"
    assert main(["init", str(batch), "--into", str(tmp_path / "p"), "--origin", "https://example.org/a",
                 "--attribution", "Vendor A"]) == 0
    own = orjson.loads((batch / "batch.json").read_bytes())
    written = orjson.loads((tmp_path / "p" / "landing" / "b001_vendor_a_alice" / "batch.json").read_bytes())
    assert {k: written[k] for k in own} == own
    assert (written["licence"], written["origin"], written["attribution"]) == ("", "https://example.org/a", "Vendor A")
    assert set(load_taxonomy(tmp_path / "p" / "taxonomy.yaml").mappings) == {"vendor_a"}
    assert "licence left blank" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "says"), [
    (["--origin", "example.org"], "origin must be a URL such as https://example.org/dataset, got 'example.org'"),
    (["--into", "{taken}"], "already holds pipeline.yaml: init starts a new project; choose another folder"),
])
def test_init_refuses_a_bad_option_or_a_taken_folder_and_writes_nothing(args, says, tmp_path, capsys):
    export = write_labelme_export(tmp_path / "x", n_images=1)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "pipeline.yaml").write_text("{}\n")
    argv = ["init", str(export), *[a.format(taken=taken) for a in args]]
    assert main(argv if "--into" in args else [*argv, "--into", str(tmp_path / "new")]) == 1
    assert says in capsys.readouterr().err
    assert not (tmp_path / "new").exists() and sorted(p.name for p in taken.iterdir()) == ["pipeline.yaml"]


def test_an_unsafe_export_says_why_and_writes_no_project(tmp_path, capsys):
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("../escape.json", b"{}")
    assert main(["init", str(archive), "--into", str(tmp_path / "p")]) == 1
    errors = capsys.readouterr().err
    assert errors.startswith(f"segpipe init: {archive}: entry '../escape.json' has an empty, '.' or '..' path component "
                             "(unsafe_archive_path: ")
    assert not (tmp_path / "p").exists()


def test_an_export_with_nothing_annotated_prints_what_was_found_and_writes_no_project(tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no annotations here")
    assert main(["init", str(tmp_path / "notes"), "--into", str(tmp_path / "p")]) == 1
    errors = capsys.readouterr().err
    assert "no annotated image could be read" in errors and "quarantined 1 x unknown_format" in errors
    assert not (tmp_path / "p").exists()


def test_init_drafts_the_labels_of_entries_whose_image_is_missing_and_says_so(tmp_path, capsys):
    """init reads the export as check-source does, without images: a label only an image-less entry
    carries gets its class, and the summary counts those entries; a build quarantines them."""
    export = write_labelme_export(tmp_path / "export", n_images=3)
    (export / "part_002.png").unlink()
    lone = orjson.loads((export / "part_002.json").read_bytes())
    lone["shapes"][-1]["label"] = "crack"
    (export / "part_002.json").write_bytes(orjson.dumps(lone))
    assert main(["init", str(export), "--into", str(tmp_path / "p"), "--draft"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert "crack" in {c.name for c in load_taxonomy(tmp_path / "p" / "taxonomy.yaml").classes}
    assert "items: 3 (2 accepted, 1 quarantined)" in printed
    assert f"image missing: 1 items, their {len(lone['shapes'])} shapes counted above" in printed
    assert "unmapped labels: 0" in printed


def test_an_export_without_any_of_its_images_writes_no_project(tmp_path, capsys):
    export = write_labelme_export(tmp_path / "export", n_images=2)
    for image in export.glob("*.png"):
        image.unlink()
    assert main(["init", str(export), "--into", str(tmp_path / "p")]) == 1
    errors = capsys.readouterr().err
    assert "no annotated image could be read" in errors and "image missing: 2 items" in errors
    assert not (tmp_path / "p").exists()
