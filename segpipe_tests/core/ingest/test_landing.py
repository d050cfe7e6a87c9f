import os
import zipfile
from pathlib import Path

import fsspec
import pytest

from segpipe.core.shared.errors import InputError
from segpipe.core.ingest.landing import find_ready_batches, list_ready_batches, parse_batch_manifest, scan_landing


def test_ready_batches_are_marked_folders_and_zip_archives_only(tmp_path):
    (tmp_path / "b1_uploading").mkdir()
    (tmp_path / "b1_uploading" / "annotations.xml").write_text("<annotations/>")
    (tmp_path / "b2_folder").mkdir()
    (tmp_path / "b2_folder" / "batch.json").write_text("{}")
    with zipfile.ZipFile(tmp_path / "b3_archive.zip", "w") as archive:
        archive.writestr("annotations.xml", "<annotations/>")
    (tmp_path / "b4_copying.zip.part").write_bytes(b"PK")
    (tmp_path / "notes.txt").write_text("not a batch")
    found = find_ready_batches(fsspec.filesystem("file"), str(tmp_path))
    assert list(found) == ["b2_folder", "b3_archive"]
    assert found["b3_archive"].is_archive and not found["b2_folder"].is_archive
    assert found["b3_archive"].ready_at == pytest.approx(os.path.getmtime(tmp_path / "b3_archive.zip"))


def test_a_folder_and_an_archive_with_one_id_are_both_held_back(tmp_path):
    (tmp_path / "b1").mkdir()
    (tmp_path / "b1" / "batch.json").write_text("{}")
    (tmp_path / "b1.zip").write_bytes(b"PK")
    assert list_ready_batches(fsspec.filesystem("file"), str(tmp_path)) == []


def test_a_missing_landing_root_has_no_batches(tmp_path):
    assert list_ready_batches(fsspec.filesystem("file"), str(tmp_path / "absent")) == []


def test_every_manifest_key_is_optional_and_typed():
    manifest = parse_batch_manifest(b"{}", "b", "m")
    assert (manifest.format, manifest.images_dir, manifest.annotator, manifest.gold) == (None, "images", None, False)
    with pytest.raises(InputError, match="gold must be true or false"):
        parse_batch_manifest(b'{"gold": "yes"}', "b", "m")
    with pytest.raises(InputError, match="annotator must be a string"):
        parse_batch_manifest(b'{"annotator": 3}', "b", "m")
    with pytest.raises(InputError, match="unknown keys"):
        parse_batch_manifest(b'{"fromat": "coco_instances"}', "b", "m")


def test_licence_origin_and_attribution_are_read_and_blank_is_not_stated():
    manifest = parse_batch_manifest(
        b'{"licence": " CC-BY-4.0 ", "origin": "https://example.org/parts", "attribution": "Example Lab", '
        b'"comment": "notes for people"}', "b", "m")
    assert (manifest.licence, manifest.origin, manifest.attribution) == (
        "CC-BY-4.0", "https://example.org/parts", "Example Lab")
    blank = parse_batch_manifest(b'{"licence": "", "origin": " ", "attribution": ""}', "b", "m")
    assert (blank.licence, blank.origin, blank.attribution) == (None, None, None)


@pytest.mark.parametrize(("doc", "message"), [
    (b'{"origin": "example.org/parts"}', "m: origin must be a URL such as https://example.org/dataset, got "
                                         "'example.org/parts'"),
    (b'{"licence": ["MIT"]}', "m: licence must be a string, got ['MIT']"),
    (b'{"license": "MIT"}', "m: unknown keys ['license'] ('license': did you mean 'licence'?); allowed: "),
])
def test_bad_provenance_or_an_unknown_key_says_which_and_what_is_allowed(doc, message):
    with pytest.raises(InputError) as raised:
        parse_batch_manifest(doc, "b", "m")
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize("path", ["../x.json", "/etc/passwd", "a/../../x", "a\\..\\x"])
def test_manifest_paths_must_stay_inside_the_batch(path):
    doc = ('{"annotation_file": "%s"}' % path.replace("\\", "\\\\")).encode()
    with pytest.raises(InputError, match="relative path inside the batch"):
        parse_batch_manifest(doc, "b", "m")


def test_a_model_batch_names_its_model_and_version():
    manifest = parse_batch_manifest(b'{"kind": "model", "model": {"name": "mask-rcnn", "version": "r50 1x"}}', "b", "m")
    assert (manifest.kind, manifest.model.name, manifest.model.version) == ("model", "mask-rcnn", "r50 1x")
    assert manifest.model.annotator == "model:mask-rcnn"
    assert parse_batch_manifest(b"{}", "b", "m").kind == "annotation"


@pytest.mark.parametrize("doc, message", [
    (b'{"kind": "robot"}', "kind must be one of"),
    (b'{"kind": "model"}', "needs \"model\""),
    (b'{"kind": "model", "model": {"name": "m"}}', "needs \"model\""),
    (b'{"kind": "model", "model": {"name": "m", "version": ""}}', "needs \"model\""),
    (b'{"kind": "model", "model": {"name": "a b", "version": "1"}}', "model name 'a b'"),
    (b'{"kind": "model", "model": {"name": "m", "version": "1"}, "gold": true}', "neither gold nor"),
    (b'{"model": {"name": "m", "version": "1"}}', "add \"kind\": \"model\""),
])
def test_a_model_batch_manifest_is_checked(doc, message):
    with pytest.raises(InputError, match=message) as raised:
        parse_batch_manifest(doc, "b", "m")
    assert raised.value.rule == "invalid_batch_manifest" and str(raised.value).startswith("m: ")


def _marked_folder(root, name: str) -> None:
    (root / name).mkdir()
    (root / name / "batch.json").write_text("{}")


def test_entries_that_cannot_become_batches_are_reported_each_with_why_and_what_to_do(tmp_path):
    landing, elsewhere = tmp_path / "landing", tmp_path / "elsewhere"
    landing.mkdir()
    _marked_folder(elsewhere.parent, "elsewhere")
    (tmp_path / "outside.zip").write_bytes(b"PK")
    _marked_folder(landing, "b1_good")
    _marked_folder(landing, "vendor a (final)")  # marked, but not a batch id
    (landing / "übergabe.zip").write_bytes(b"PK")
    _marked_folder(landing, "b2_twice")
    (landing / "b2_twice.zip").write_bytes(b"PK")
    (landing / "b3_linked").symlink_to(elsewhere)
    (landing / "b4_linked.zip").symlink_to(tmp_path / "outside.zip")
    (landing / "b5_dangling").symlink_to(tmp_path / "gone")
    (landing / "not yet a batch").mkdir()  # no batch.json: still uploading, not a problem yet
    _marked_folder(landing, ".hidden")
    (landing / "notes.txt").write_text("not a batch")
    fs = fsspec.filesystem("file")

    scan = scan_landing(fs, str(landing))
    assert list(scan.ready) == list(find_ready_batches(fs, str(landing))) == ["b1_good"]
    problems = {Path(p.path).name: p for p in scan.problems}
    assert [Path(p.path).name for p in scan.problems] == sorted(problems) == [
        "b2_twice", "b2_twice.zip", "b3_linked", "b4_linked.zip", "b5_dangling", "vendor a (final)", "übergabe.zip"]
    assert problems["vendor a (final)"].reason == (
        f"'vendor a (final)' is not a batch id ({landing}/vendor a (final)/batch.json exists), so the folder is not read")
    assert problems["vendor a (final)"].what_to_do.startswith("Rename the folder to a batch id such as 'vendor_a_final'")
    assert problems["übergabe.zip"].what_to_do.startswith("Rename the archive to a batch id such as 'ubergabe.zip'")
    twice = f"a folder and an archive both claim batch id 'b2_twice' ({landing}/b2_twice and {landing}/b2_twice.zip)"
    assert problems["b2_twice"].reason.startswith(twice) and problems["b2_twice.zip"].reason.startswith(twice)
    for linked in ("b3_linked", "b4_linked.zip", "b5_dangling"):
        assert problems[linked].reason.startswith("is a symbolic link; links are never followed")
        assert "not a link" in problems[linked].what_to_do
    linked = problems["b3_linked"]
    assert str(linked) == f"{landing}/b3_linked: {linked.reason}. {linked.what_to_do}"


def test_a_batch_json_that_is_a_link_even_to_nothing_makes_the_folder_ready_so_ingest_can_refuse_it(tmp_path):
    (tmp_path / "settings.json").write_text('{"gold": true}')
    for name, target in (("b1_linked", tmp_path / "settings.json"), ("b2_dangling", tmp_path / "absent.json")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "batch.json").symlink_to(target)
    assert list(find_ready_batches(fsspec.filesystem("file"), str(tmp_path))) == ["b1_linked", "b2_dangling"]


def test_a_batch_kind_is_annotation_unless_it_says_review_and_a_review_is_neither_gold_nor_of_a_source():
    assert parse_batch_manifest(b"{}", "b", "m").kind == "annotation"
    assert parse_batch_manifest(b'{"kind": "review", "source": "review"}', "b", "m").kind == "review"
    for doc, message in ((b'{"kind": "reviewed"}', "kind must be one of"),
                         (b'{"kind": "review", "gold": true}', "neither gold nor of another source"),
                         (b'{"kind": "review", "source": "vendor_a"}', "neither gold nor of another source")):
        with pytest.raises(InputError, match=message):
            parse_batch_manifest(doc, "b", "m")
