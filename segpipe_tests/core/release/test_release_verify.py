import hashlib
import io
import struct
import zipfile

import numpy as np
import pytest
import polars as pl

from segpipe.core.shared.png import encode_mask_png
from segpipe.core.release.verify import ReleaseProblem, member_sha256, verify_release
from segpipe_tests.core.release.release_fixture import build_release


def rewritten(data: bytes, changes: dict[str, bytes], refresh_sums: bool = True) -> zipfile.ZipFile:
    """The release with some members replaced or added (valid ZIP, valid CRCs); SHA256SUMS
    recomputed over the result when refresh_sums, so only the changed content is wrong."""
    source = zipfile.ZipFile(io.BytesIO(data))
    members = {n: source.read(n) for n in source.namelist()} | changes
    if refresh_sums:
        members["SHA256SUMS"] = "".join(f"{hashlib.sha256(b).hexdigest()}  {n}\n"
                                        for n, b in sorted(members.items()) if n != "SHA256SUMS").encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return zipfile.ZipFile(io.BytesIO(out.getvalue()))


def test_an_untouched_release_verifies():
    built = build_release()
    with built.archive() as archive:
        result = verify_release(archive)
        assert result.files_checked == len(archive.namelist()) - 1
    assert (result.problems, result.images, result.masks_decoded) == ([], 3, 3)


def test_a_flipped_byte_in_a_member_is_found_and_named():
    built = build_release()
    with built.archive() as archive:
        info = archive.getinfo("masks/val/val_000000000000.png")
    header_end = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    corrupted = bytearray(built.data)
    corrupted[header_end + 40] ^= 0xFF
    with zipfile.ZipFile(io.BytesIO(bytes(corrupted))) as archive:
        problems = verify_release(archive).problems
    assert problems[0].member == "masks/val/val_000000000000.png" and "unreadable" in problems[0].problem
    assert {p.member for p in problems} == {"masks/val/val_000000000000.png"}


def test_content_that_differs_from_sha256sums_is_named_with_both_hashes():
    built = build_release()
    with built.archive() as original:
        readme = original.read("README.md")
        listed = next(line.split()[0] for line in original.read("SHA256SUMS").decode().splitlines()
                      if line.endswith("  README.md"))
    edited = readme.replace(b"# demo", b"# edited")
    with rewritten(built.data, {"README.md": edited}, refresh_sums=False) as archive:
        problems = verify_release(archive).problems
    assert problems == [ReleaseProblem("README.md", f"SHA-256 is {hashlib.sha256(edited).hexdigest()}, "
                                                    f"SHA256SUMS says {listed}")]


def test_an_unlisted_member_and_a_missing_sha256sums_are_problems():
    built = build_release()
    with rewritten(built.data, {"extra.txt": b"x"}, refresh_sums=False) as archive:
        assert verify_release(archive).problems == [ReleaseProblem("extra.txt", "not listed in SHA256SUMS")]
    with zipfile.ZipFile(io.BytesIO(built.data)) as source:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            for name in source.namelist()[:-1]:
                archive.writestr(name, source.read(name))
    with zipfile.ZipFile(out) as archive:
        assert verify_release(archive).problems == [ReleaseProblem("SHA256SUMS", "missing: the release cannot be checked")]


def test_a_picture_the_datasheet_shows_but_the_archive_lacks_is_named():
    built = build_release(every_output=True)
    with built.archive() as original:
        members = {name: original.read(name) for name in original.namelist()}
    without = {name: data for name, data in members.items() if name != "qa/thumbnails/labels_mapped/e1.png"}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in without.items():
            archive.writestr(name, data if name != "SHA256SUMS" else b"".join(
                line + b"\n" for line in data.splitlines() if not line.endswith(b"e1.png")))
    with zipfile.ZipFile(out) as archive:
        assert verify_release(archive).problems == [ReleaseProblem(
            "README.md", "shows the picture qa/thumbnails/labels_mapped/e1.png, which the archive does not hold")]


def test_a_manifest_that_breaks_the_schema_is_named():
    built = build_release()
    with built.archive() as original:
        index = original.read("index.csv").replace(b",val,", b",holdout,")
    with rewritten(built.data, {"index.csv": index}) as archive:
        [problem] = verify_release(archive).problems
    assert problem.member == "index.csv"
    assert problem.problem.startswith("breaks the manifest schema: split: isin(") and "'holdout'" in problem.problem


def test_an_index_parquet_that_differs_from_index_csv_is_named():
    built = build_release()
    edited = io.BytesIO()
    built.contents.manifest.with_columns(qa_status=pl.lit("passed")).write_parquet(edited)
    with rewritten(built.data, {"index.parquet": edited.getvalue()}) as archive:
        assert verify_release(archive).problems == [ReleaseProblem("index.parquet", "rows differ from index.csv")]


def test_meta_counts_that_disagree_with_the_manifest_are_named():
    built = build_release()
    with built.archive() as original:
        meta = original.read("meta.json").replace(b'"val": 1', b'"val": 2')
    with rewritten(built.data, {"meta.json": meta}) as archive:
        problems = verify_release(archive).problems
    assert problems == [ReleaseProblem("meta.json", "splits {'test': 1, 'train': 1, 'val': 2}, "
                                                    "index.csv has {'test': 1, 'train': 1, 'val': 1}")]


def test_ledger_counts_that_do_not_add_up_are_named():
    built = build_release()
    with built.archive() as original:
        meta = original.read("meta.json").replace(b'"input": 3', b'"input": 4')
    with rewritten(built.data, {"meta.json": meta}) as archive:
        problems = verify_release(archive).problems
    assert problems == [ReleaseProblem("meta.json", "counts do not add up: input 4, released + filtered + quarantined 3")]


def test_a_mask_value_outside_the_class_list_is_named_with_the_value():
    built = build_release()
    mask = built.masks["train"].copy()
    mask[3, 5] = 7
    path = "masks/train/train_000000000000.png"
    with rewritten(built.data, {path: encode_mask_png(mask)}) as archive:
        problems = verify_release(archive).problems
    assert [p.member for p in problems] == [path] * 3
    assert problems[0].problem == "SHA-256 differs from index.csv's mask_sha256"
    assert problems[1].problem == "values [7] are neither a class of meta.json nor its ignore_index 255"
    assert problems[2].problem.startswith("pixel counts {'road': 11, 'car': 0, 'sky': 11} (ignored 1) differ")


def test_a_mask_of_the_wrong_size_is_named():
    built = build_release()
    path = "masks/test/test_000000000000.png"
    with rewritten(built.data, {path: encode_mask_png(np.zeros((4, 5), np.uint8))}) as archive:
        problems = verify_release(archive).problems
    assert problems[-1] == ReleaseProblem(path, "is 5x4, index.csv says 6x4")


def test_deflated_members_hash_as_zipfile_reads_them_and_a_damaged_stream_is_named():
    built = build_release()
    with built.archive() as archive:
        deflated = [i for i in archive.infolist() if i.compress_type == zipfile.ZIP_DEFLATED]
        assert len(deflated) > 5  # coco.json, index.csv, meta.json, the labels ... go through zlib-ng
        for info in archive.infolist():
            assert member_sha256(archive, info.filename) == hashlib.sha256(archive.read(info.filename)).hexdigest()
        coco = archive.getinfo("coco/coco.json")
    name_length, extra_length = struct.unpack("<HH", built.data[coco.header_offset + 26:coco.header_offset + 30])
    data_start = coco.header_offset + 30 + name_length + extra_length
    for at in (0, coco.compress_size // 2, coco.compress_size - 1):  # a header, a body, a last byte flipped
        corrupted = bytearray(built.data)
        corrupted[data_start + at] ^= 0x55
        with zipfile.ZipFile(io.BytesIO(bytes(corrupted))) as archive:
            problems = verify_release(archive).problems
        assert "coco/coco.json" in {p.member for p in problems}, at
        assert all("SHA-256" in p.problem or "unreadable" in p.problem for p in problems if p.member == "coco/coco.json")


def test_a_deflated_member_longer_than_its_directory_says_is_unreadable_not_hashed_whole():
    built = build_release()
    with built.archive() as archive:
        coco = archive.getinfo("coco/coco.json")
    with zipfile.ZipFile(io.BytesIO(built.data)) as archive:
        archive.getinfo("coco/coco.json").file_size = coco.file_size - 10  # a forged central directory
        with pytest.raises(zipfile.BadZipFile, match=f"{coco.file_size - 10:,}"):
            member_sha256(archive, "coco/coco.json")
