import io
import os
import struct
import zipfile

import polars as pl
import pytest

from segpipe.cli.main import main
from segpipe.core.rasterize.raster import decode_mask_png
from segpipe.core.release.layout import release_stem
from segpipe.environment import PACKAGE_CONFIG


@pytest.fixture()
def pseudonym_key(monkeypatch, tmp_path):
    monkeypatch.setenv("SEGPIPE_PSEUDONYM_KEY_FILE", str(tmp_path / "key"))


def test_check_source_writes_tables_report_and_masks_named_as_in_a_release(tiny_demo, tmp_path, capsys, pseudonym_key):
    batch = tiny_demo.landing_root / "b001_vendor_a_alice"
    out = tmp_path / "out"
    code = main(["check-source", str(batch), "--taxonomy", str(PACKAGE_CONFIG / "taxonomy.yaml"), "--out", str(out)])
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


def test_check_source_reads_a_zip_and_reports_unsafe_archives_without_failing(tmp_path, capsys, pseudonym_key):
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("/etc/passwd", b"root:x:0:0")
    assert main(["check-source", str(archive), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "format: unreadable" in printed and "unsafe_archive_path" in printed


@pytest.mark.parametrize("args", [
    ["check-source", "/no/such/export", "--out", "x"],
    ["check-source", ".", "--format", "labelbox", "--out", "x"],
    ["check-source", ".", "--taxonomy", "/no/such.yaml", "--out", "x"],
])
def test_check_source_exits_non_zero_only_for_usage_errors(args, capsys, pseudonym_key):
    with pytest.raises(SystemExit) as caught:
        main(args)
    assert caught.value.code == 2


def test_pseudonym_prints_what_tables_use_for_a_name(tiny_demo, tmp_path, capsys, pseudonym_key):
    assert main(["pseudonym", "alice"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    name, pseudonym = line.split("\t")
    main(["check-source", str(tiny_demo.landing_root / "b001_vendor_a_alice"), "--out", str(tmp_path / "out")])
    assert name == "alice" and pl.read_parquet(tmp_path / "out" / "images.parquet")["annotator"].unique().to_list() == [pseudonym]


def test_verify_and_inspect_read_a_release_zip_by_path_or_url(tmp_path, capsys):
    from segpipe_tests.core.release.release_fixture import build_release

    release = tmp_path / "demo.zip"
    release.write_bytes(build_release().data)
    assert main(["verify", release.as_uri()]) == 0
    assert capsys.readouterr().out == (f"{release.as_uri()}: OK (18 files match SHA256SUMS, 3 images in index.csv match "
                                       "the manifest schema and meta.json, 3 masks decoded)\n")
    assert main(["inspect", str(release)]) == 0
    printed = capsys.readouterr().out
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
    assert main(["verify", str(folder)]) == 0
    assert capsys.readouterr().out == (
        f"{folder}: OK (2 objects match _RELEASE.json; its ZIP: 18 files match SHA256SUMS, 3 images in index.csv "
        "match the manifest schema and meta.json, 3 masks decoded)\n")

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
