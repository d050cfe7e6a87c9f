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
from segpipe.core.release.parallel_deflate import WINDOW_BYTES, ParallelDeflater


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
