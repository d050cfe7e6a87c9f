import hashlib
import io
import random
import zipfile
import zlib

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from segpipe.core.release.packaging import ZipPackager
from segpipe.core.release.writers.writer import Member
from segpipe.core.release import parallel_deflate
from segpipe.core.release.parallel_deflate import (
    REMEMBERED_BYTES,
    WINDOW_BYTES,
    DeflatedSegments,
    ParallelDeflater,
)
from segpipe.core.shared.artefacts import ArtefactStore


def _deflated(data: bytes, writes: list[int], threads: int, chunk_bytes: int) -> bytes:
    deflater, out, at = ParallelDeflater(threads=threads, chunk_bytes=chunk_bytes), [], 0
    for size in writes:
        out.append(deflater.compress(data[at:at + size]))
        at += size
    out.append(deflater.compress(data[at:]))
    return b"".join(out) + deflater.flush()


def _json_like(count: int, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    return orjson.dumps([{"id": n, "segmentation": [[rng.randint(0, 2047) for _ in range(rng.randint(6, 40))]],
                          "area": rng.randint(1, 10 ** 6), "bbox": [rng.randint(0, 2047) for _ in range(4)]}
                         for n in range(count)])


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=3000), writes=st.lists(st.integers(0, 700), max_size=8),
       threads=st.integers(1, 3), chunk_bytes=st.integers(1, 1200))
def test_any_input_inflates_back_to_itself_whatever_the_writes_and_threads(data, writes, threads, chunk_bytes):
    deflated = _deflated(data, writes, threads, chunk_bytes)
    assert zlib.decompress(deflated, -zlib.MAX_WBITS) == data
    assert deflated == _deflated(data, [], 1, chunk_bytes)  # cut at fixed offsets: the same bytes


def test_chunks_refer_back_across_their_boundary_so_the_stream_is_as_small_as_a_serial_one():
    data = _json_like(20_000)
    chunk = 64 << 10
    assert len(data) > 20 * chunk
    parallel = _deflated(data, [], 2, chunk)
    serial = zlib.compress(data, 2)
    assert zlib.decompress(parallel, -zlib.MAX_WBITS) == data
    assert len(parallel) < 1.05 * len(serial)
    without_window = b"".join(zlib.compress(data[at:at + chunk], 2) for at in range(0, len(data), chunk))
    assert WINDOW_BYTES <= chunk and len(parallel) < len(without_window)


def test_a_streamed_zip_member_is_deflated_in_parallel_and_reads_back_with_its_crc():
    data = _json_like(60_000, seed=1)
    buffer = io.BytesIO()
    with ZipPackager(buffer) as packager:
        digest = packager.add(Member("coco/coco.json", lambda out: [out.write(data[at:at + 99_991])
                                                                   for at in range(0, len(data), 99_991)]))
        packager.add(Member("images/a.png", lambda out: out.write(b"stored as it is"), compress=False))
    with zipfile.ZipFile(buffer) as archive:
        info = archive.getinfo("coco/coco.json")
        assert info.compress_type == zipfile.ZIP_DEFLATED and info.compress_size < len(data) // 2
        assert archive.read("coco/coco.json") == data  # zipfile checks the CRC as it reads
        assert archive.getinfo("images/a.png").compress_type == zipfile.ZIP_STORED
        assert archive.read("images/a.png") == b"stored as it is"
        assert archive.testzip() is None
    assert digest == hashlib.sha256(data).hexdigest()


def _member_with_segments(data: bytes, cuts: list[int], remembered: DeflatedSegments | None) -> bytes:
    """A ZIP member of `data`, the runs between `cuts` written as segments, the rest plainly."""
    def content(out):
        out.write(data[:cuts[0]])
        for start, end in zip(cuts, cuts[1:]):
            out.segment(data[start:end])
        out.write(data[cuts[-1]:])

    buffer = io.BytesIO()
    with ZipPackager(buffer, remembered) as packager:
        assert packager.add(Member("coco/coco.json", content)) == hashlib.sha256(data).hexdigest()
    with zipfile.ZipFile(buffer) as archive:
        assert archive.read("coco/coco.json") == data
    return buffer.getvalue()


def test_segments_are_remembered_and_copied_into_the_next_build_byte_for_byte(monkeypatch):
    data = _json_like(8_000, seed=2)
    cuts = [1_000, 1_000 + REMEMBERED_BYTES, 1_000 + 3 * REMEMBERED_BYTES, len(data) - 10]
    objects: dict[str, bytes] = {}
    used: set[str] = set()
    first = _member_with_segments(data, cuts, DeflatedSegments(ArtefactStore.in_memory(objects), "demo", used))
    assert len(objects) == 3 and all(key.startswith("deflated-segments/demo/") for key in objects)
    assert used == set(objects)
    assert _member_with_segments(data, cuts, None) == first  # what the store holds never changes the bytes

    deflated = []
    real = parallel_deflate._deflate_chunk
    monkeypatch.setattr(parallel_deflate, "_deflate_chunk", lambda chunk, *rest: deflated.append(len(chunk)) or
                        real(chunk, *rest))
    assert _member_with_segments(data, cuts, DeflatedSegments(ArtefactStore.in_memory(objects), "demo", set())) == first
    assert sorted(deflated) == [10, 1_000]  # only the plain writes, the segments copied


def test_a_damaged_remembered_segment_is_deflated_again_and_rewritten():
    data = _json_like(4_000, seed=3)
    cuts = [0, len(data)]
    objects: dict[str, bytes] = {}
    first = _member_with_segments(data, cuts, DeflatedSegments(ArtefactStore.in_memory(objects), "demo", set()))
    [key] = objects
    whole = objects[key]
    objects[key] = whole[:len(whole) // 2]  # partly written
    assert _member_with_segments(data, cuts, DeflatedSegments(ArtefactStore.in_memory(objects), "demo", set())) == first
    assert objects[key] == whole
    header, _, piece = whole.partition(b"\n")
    objects[key] = header + b"\n" + piece[:-1] + bytes([piece[-1] ^ 1])  # a flipped byte
    assert _member_with_segments(data, cuts, DeflatedSegments(ArtefactStore.in_memory(objects), "demo", set())) == first
    assert objects[key] == whole


def test_a_remembered_segment_gone_between_looking_and_reading_is_deflated_again():
    data = _json_like(4_000, seed=4)
    objects: dict[str, bytes] = {}
    first = _member_with_segments(data, [0, len(data)], DeflatedSegments(ArtefactStore.in_memory(objects), "d", set()))
    pruned = ArtefactStore(lambda key: objects.pop(key) and objects[key], objects.__setitem__, objects.__contains__)
    assert _member_with_segments(data, [0, len(data)], DeflatedSegments(pruned, "d", set())) == first
    assert len(objects) == 1  # and remembered again
