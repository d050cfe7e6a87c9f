"""Hostile ZIP archives (reliability.md test plan rows 16-22), each built in the test itself."""

import io
import os
import stat
import struct
import unicodedata
import warnings
import zipfile
import zlib

import fsspec
import pytest

from segpipe.core.shared.errors import InputError
from segpipe.core.ingest.sources.zip_archive import ArchiveLimits, ZipArchiveSource

URI = "s3://landing/batch-7/export.zip"

# (offset, format) of header fields, in the local header and in the central directory record
LOCAL_FIELDS = {"flags": (6, "<H"), "crc": (14, "<L"), "compress_size": (18, "<L"), "file_size": (22, "<L")}
CENTRAL_FIELDS = {"flags": (8, "<H"), "crc": (16, "<L"), "compress_size": (20, "<L"), "file_size": (24, "<L")}


def build(*entries: tuple[str | zipfile.ZipInfo, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns on duplicate names, which some tests want
        with zipfile.ZipFile(out, "w", compression=method) as archive:
            for name, data in entries:
                archive.writestr(name, data)
    return out.getvalue()


def header_offsets(data: bytes) -> list[tuple[int, int]]:
    """(local header, central record) offsets of each entry, in directory order."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos, record = archive.infolist(), archive.start_dir
    offsets = []
    for info in infos:
        offsets.append((info.header_offset, record))
        name_length, extra_length, comment_length = struct.unpack_from("<3H", data, record + 28)
        record += 46 + name_length + extra_length + comment_length
    return offsets


def patch(data: bytes, index: int, central_only: bool = False, **fields: int) -> bytes:
    """Rewrite header fields of entry `index`, as an attacker or a bad writer would."""
    out = bytearray(data)
    local, central = header_offsets(data)[index]
    for field, value in fields.items():
        struct.pack_into(CENTRAL_FIELDS[field][1], out, central + CENTRAL_FIELDS[field][0], value)
        if not central_only:
            struct.pack_into(LOCAL_FIELDS[field][1], out, local + LOCAL_FIELDS[field][0], value)
    return bytes(out)


def source(data: bytes, limits: ArchiveLimits = ArchiveLimits()) -> ZipArchiveSource:
    return ZipArchiveSource(io.BytesIO(data), URI, limits)


def refused(data: bytes, limits: ArchiveLimits = ArchiveLimits()) -> InputError:
    with pytest.raises(InputError) as caught:
        source(data, limits)
    return caught.value


def assert_names(error: InputError, rule: str, *entries: str) -> None:
    assert error.rule == rule
    assert URI in str(error)
    for entry in entries:
        assert repr(entry) in str(error)


def local_header(name: bytes, crc: int, compress_size: int, file_size: int) -> bytes:
    return struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, compress_size, file_size, len(name), 0) + name


def central_directory(records: list[tuple[bytes, int, int, int, int]], start: int) -> bytes:
    """Central records for (name, crc, compress_size, file_size, header offset), then the end record."""
    directory = b"".join(
        struct.pack("<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 3, 20, 0, 0, 8, 0, 0, crc, compressed, size, len(name),
                    0, 0, 0, 0, 0o644 << 16, offset) + name
        for name, crc, compressed, size, offset in records)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(records), len(records), len(directory), start, 0)
    return directory + end


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


# --- normal archives -------------------------------------------------------------------------------

def test_a_normal_archive_lists_sorted_files_and_reads_them_back_exactly():
    image = os.urandom(70_000)
    coco = b'{"images": []}' * 5000
    stored = zipfile.ZipInfo("images/b.png")
    data = build(("images/", b""), (stored, image), ("ann/coco.json", coco), ("empty.txt", b""))
    batch = source(data)
    assert batch.names() == ["ann/coco.json", "empty.txt", "images/b.png"]
    assert batch.rejected() == []
    assert (batch.read("images/b.png"), batch.read("ann/coco.json"), batch.read("empty.txt")) == (image, coco, b"")
    assert batch.origin("ann/coco.json") == f"{URI}!/ann/coco.json"
    with batch.open("ann/coco.json") as stream:
        assert b"".join(iter(lambda: stream.read(7), b"")) == coco
        assert stream.read() == b""


def test_streams_of_two_entries_interleave_over_one_file():
    first, second = os.urandom(300_000), b"label;" * 60_000
    batch = source(build((zipfile.ZipInfo("a.png"), first), ("b.json", second)))
    with batch.open("a.png") as a, batch.open("b.json") as b:
        chunks = [(a.read(100_000), b.read(100_000)) for _ in range(4)]
    assert b"".join(x for x, _ in chunks) == first and b"".join(y for _, y in chunks) == second


def test_reads_through_an_fsspec_file_object(tmp_path):
    path = tmp_path / "export.zip"
    path.write_bytes(build(("a.json", b"[1, 2]"), ("b.png", b"\x89PNG")))
    with fsspec.open(str(path), "rb") as handle:
        batch = ZipArchiveSource(handle, str(path))
        assert {name: batch.read(name) for name in batch.names()} == {"a.json": b"[1, 2]", "b.png": b"\x89PNG"}


def test_small_entries_may_compress_beyond_the_ratio_cap():
    blank = bytes(512 * 1024)  # about 1000:1, but under the 1 MiB floor
    assert source(build(("blank.json", blank))).read("blank.json") == blank


def test_unknown_name_is_not_found():
    with pytest.raises(FileNotFoundError, match="export.zip!/missing.png"):
        source(build(("a.png", b"x"))).read("missing.png")


# --- names (rows 16, 17, 21) --------------------------------------------------------------------

@pytest.mark.parametrize("name", [
    "../evil.png", "images/../../evil.png", "/etc/evil.png", "..\\evil.png", "C:\\evil.png", "C:evil.png",
    "images//a.png", "./a.png", "a\nb.png",
])
def test_unsafe_names_refuse_the_whole_archive(name):
    error = refused(build(("ok.png", b"x"), (name, b"evil")))
    assert_names(error, "unsafe_archive_path", name)


def test_an_empty_name_refuses_the_archive():
    crc, body = zlib.crc32(b"evil"), raw_deflate(b"evil")  # zipfile refuses to write an empty name
    head = local_header(b"", crc, len(body), 4) + body
    data = head + central_directory([(b"", crc, len(body), 4, 0)], len(head))
    assert_names(refused(data), "unsafe_archive_path", "")


def test_a_nul_in_a_name_refuses_the_archive_though_zipfile_truncates_it():
    data = build(("ok.png", b"x"), ("aXb.png", b"evil")).replace(b"aXb.png", b"a\x00b.png")
    assert_names(refused(data), "unsafe_archive_path", "a\x00b.png")


@pytest.mark.parametrize("first,second", [
    ("A.png", "a.png"),
    (unicodedata.normalize("NFC", "café.png"), unicodedata.normalize("NFD", "café.png")),
    ("x.png", "x.png"),
    ("labels", "labels/a.png"),
    ("labels/a.png", "LABELS"),
])
def test_names_that_collide_once_normalized_refuse_the_archive(first, second):
    error = refused(build((first, b"1"), (second, b"2")))
    assert_names(error, "archive_name_collision", first, second)


def test_a_directory_entry_and_files_under_it_do_not_collide():
    assert source(build(("images/", b""), ("images/a.png", b"1"))).names() == ["images/a.png"]


def test_names_without_the_utf8_flag_are_read_as_cp437():
    data = build(("cafX.json", b"{}")).replace(b"cafX.json", b"caf\x82.json")
    batch = source(data)
    assert batch.names() == ["café.json"]
    assert batch.read("café.json") == b"{}"


def test_a_utf8_flagged_name_that_is_not_utf8_is_corrupt():
    data = build(("café.json", b"{}")).replace("café".encode(), b"caf\xff\xfe")
    assert_names(refused(data), "corrupt_archive")
    assert "utf-8" in str(refused(data))


def test_a_local_header_naming_another_file_is_corrupt():
    data = build(("good.png", b"x"))
    local = data.index(b"good.png")  # the local header comes first
    data = data[:local] + b"evil.png" + data[local + 8:]
    assert_names(refused(data), "corrupt_archive", "good.png")


# --- entry kinds (rows 19, 20, 22) -----------------------------------------------------------

def test_a_symlink_entry_refuses_the_archive():
    link = zipfile.ZipInfo("images/a.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    assert_names(refused(build((link, b"/etc/passwd"))), "archive_symlink", "images/a.png")


def test_an_encrypted_entry_refuses_the_archive():
    data = build(("a.png", b"x"), ("secret.json", b"{}"))
    assert_names(refused(patch(data, 1, flags=0x1)), "encrypted_archive_entry", "secret.json")


def test_compression_other_than_stored_or_deflate_refuses_the_archive():
    error = refused(build(("a.json", b"{}" * 100), method=zipfile.ZIP_BZIP2))
    assert_names(error, "unsupported_archive_compression", "a.json")


def test_a_nested_archive_is_rejected_alone_and_never_expanded():
    inner = build(("inner.png", b"x"))
    batch = source(build(("a.png", b"png"), ("more/Inner.ZIP", inner)))
    assert batch.names() == ["a.png"]
    [rejection] = batch.rejected()
    assert rejection.name == "more/Inner.ZIP"
    assert_names(rejection.error, "nested_archive", "more/Inner.ZIP")
    with pytest.raises(InputError) as caught:
        batch.read("more/Inner.ZIP")
    assert_names(caught.value, "nested_archive", "more/Inner.ZIP")
    assert batch.read("a.png") == b"png"


# --- size limits (rows 18, 19) -------------------------------------------------------------------

def test_a_ratio_bomb_refuses_the_archive_before_any_read():
    zeros = bytes(4 * 1024 * 1024)  # about 1000:1, over the 1 MiB floor
    assert_names(refused(build(("ok.png", b"x"), ("bomb.json", zeros))), "zip_bomb", "bomb.json")


def test_an_entry_over_the_per_entry_limit_refuses_the_archive():
    error = refused(build(("big.png", os.urandom(2000))), ArchiveLimits(max_entry_bytes=1000))
    assert_names(error, "archive_too_large", "big.png")


def test_a_declared_total_over_the_limit_refuses_the_archive_naming_the_entry_that_crosses_it():
    data = build(("a.png", os.urandom(1000)), ("b.png", os.urandom(1000)))
    assert_names(refused(data, ArchiveLimits(max_total_bytes=1500)), "archive_too_large", "b.png")


def test_too_many_entries_refuse_the_archive():
    error = refused(build(*[(f"{i}.png", b"x") for i in range(4)]), ArchiveLimits(max_entries=3))
    assert_names(error, "archive_too_large")
    assert "4 entries" in str(error)


def test_a_central_directory_over_its_limit_is_refused_before_it_is_parsed():
    error = refused(build(*[(f"{i}.png", b"x") for i in range(4)]), ArchiveLimits(max_directory_bytes=100))
    assert_names(error, "archive_too_large")


def test_reading_past_the_total_budget_is_refused():
    batch = source(build(("a.png", os.urandom(1000))), ArchiveLimits(max_total_bytes=1500))
    batch.read("a.png")
    with pytest.raises(InputError) as caught:
        batch.read("a.png")
    assert_names(caught.value, "archive_too_large", "a.png")


# --- lying headers and overlaps (row 18) ------------------------------------------------------

def test_an_entry_yielding_more_than_its_header_declares_is_stopped_while_streaming():
    text = b"0123456789abcdef" * 1000
    batch = source(patch(build(("a.json", text)), 0, file_size=100))
    with batch.open("a.json") as stream, pytest.raises(InputError) as caught:
        stream.read(10)  # the stream decompresses ahead, and refuses before handing out any byte
    assert_names(caught.value, "zip_bomb", "a.json")
    with pytest.raises(InputError, match="declares"):
        batch.read("a.json")


def test_an_entry_yielding_less_than_its_header_declares_is_corrupt():
    batch = source(patch(build(("a.json", b"x" * 1000)), 0, file_size=5000))
    with pytest.raises(InputError) as caught:
        batch.read("a.json")
    assert_names(caught.value, "corrupt_archive", "a.json")


def test_entries_sharing_one_data_range_refuse_the_archive():
    kernel = raw_deflate(bytes(100_000))
    crc = zlib.crc32(bytes(100_000))
    head = local_header(b"a.json", crc, len(kernel), 100_000) + kernel
    data = head + central_directory([(b"a.json", crc, len(kernel), 100_000, 0),
                                     (b"b.json", crc, len(kernel), 100_000, 0)], len(head))
    assert_names(refused(data), "zip_bomb", "b.json", "a.json")


def quoted_overlap_bomb(names: list[bytes], kernel_size: int) -> bytes:
    """Fifield's construction: each entry's data quotes the next local header in a stored deflate block,
    then continues into the next entry's data, so every entry decompresses the shared kernel again."""
    tail, content = raw_deflate(bytes(kernel_size)), bytes(kernel_size)
    headers: list[bytes] = []
    records = []
    for name in reversed(names):
        header = local_header(name, zlib.crc32(content), len(tail), len(content))
        records.insert(0, (name, zlib.crc32(content), len(tail), len(content)))
        headers.insert(0, header)
        tail = b"\x00" + struct.pack("<HH", len(header), len(header) ^ 0xFFFF) + header + tail
        content = header + content
    body = headers[0] + tail[5 + len(headers[0]):]
    offsets = [0]
    for header in headers[:-1]:
        offsets.append(offsets[-1] + len(header) + 5)
    return body + central_directory([(*record, offset) for record, offset in zip(records, offsets)], len(body))


def test_a_quoted_overlap_bomb_refuses_the_archive():
    data = quoted_overlap_bomb([b"0.json", b"1.json", b"2.json"], 100_000)
    assert_names(refused(data), "zip_bomb", "1.json", "0.json")


def test_an_entry_running_into_the_central_directory_refuses_the_archive():
    data = build(("a.png", b"x" * 100))
    assert_names(refused(patch(data, 0, central_only=True, compress_size=len(data))), "zip_bomb", "a.png")


# --- corrupt archives (row 22) ------------------------------------------------------------------

@pytest.mark.parametrize("cut", [0.5, 0.95])
def test_a_truncated_archive_is_corrupt(cut):
    data = build(("a.png", os.urandom(5000)), ("b.json", b"{}"))
    assert_names(refused(data[: int(len(data) * cut)]), "corrupt_archive")


def test_a_directory_pointing_before_the_archive_start_is_corrupt():
    data = bytearray(build(("a.png", b"x")))
    end = data.rindex(b"PK\x05\x06")
    struct.pack_into("<L", data, end + 16, struct.unpack_from("<L", data, end + 16)[0] + 100)
    assert_names(refused(bytes(data)), "corrupt_archive", "a.png")


def test_a_missing_local_header_is_corrupt():
    data = b"XXXX" + build(("a.png", b"x"))[4:]
    assert_names(refused(data), "corrupt_archive", "a.png")


def test_a_deflate_stream_longer_than_its_declared_compressed_size_is_corrupt():
    payload = b"".join(b"polygon %d;" % i for i in range(2000))
    data = build(("a.json", payload))
    compressed = zipfile.ZipFile(io.BytesIO(data)).getinfo("a.json").compress_size
    with pytest.raises(InputError, match="truncated deflate") as caught:
        source(patch(data, 0, compress_size=compressed // 2)).read("a.json")
    assert_names(caught.value, "corrupt_archive", "a.json")


def test_a_file_cut_after_it_was_listed_is_corrupt_when_read(tmp_path):
    path = tmp_path / "export.zip"
    path.write_bytes(build((zipfile.ZipInfo("a.png"), os.urandom(5000))))
    with open(path, "rb") as handle:
        batch = ZipArchiveSource(handle, URI)
        os.truncate(path, 1000)
        with pytest.raises(InputError, match="cut short") as caught:
            batch.read("a.png")
    assert_names(caught.value, "corrupt_archive", "a.png")


def test_a_multi_disk_archive_is_corrupt():
    data = build(("a.png", b"x"))
    end = data.rindex(b"PK\x05\x06")
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, 0, 2)  # ZIP64 locator claiming two disks
    assert_names(refused(data[:end] + locator + data[end:]), "corrupt_archive")


def test_bytes_that_are_not_a_zip_are_corrupt():
    assert_names(refused(b"not a zip archive at all" * 10), "corrupt_archive")


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_a_flipped_data_byte_is_corrupt(method):
    payload = b"".join(b"polygon %d,%d;" % (i, i * i % 997) for i in range(2000))
    data = bytearray(build(("a.png", payload), method=method))
    compressed = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("a.png").compress_size
    data[30 + len("a.png") + compressed // 2] ^= 0x01
    with pytest.raises(InputError) as caught:
        source(bytes(data)).read("a.png")
    assert_names(caught.value, "corrupt_archive", "a.png")


def test_a_wrong_crc_is_corrupt():
    data = build(("a.png", b"payload"))
    with pytest.raises(InputError, match="CRC") as caught:
        source(patch(data, 0, crc=zlib.crc32(b"other"))).read("a.png")
    assert_names(caught.value, "corrupt_archive", "a.png")
