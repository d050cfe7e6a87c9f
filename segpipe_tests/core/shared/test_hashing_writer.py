import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from segpipe.core.shared import hashing_writer
from segpipe.core.shared.hashing_writer import BackgroundSha256


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(0, 3000), max_size=12), large_bytes=st.integers(1, 2048), seed=st.integers(0, 255))
def test_pieces_small_and_large_in_any_mix_hash_as_one_sha256(sizes, large_bytes, seed):
    data = bytes((seed + n * 7) % 256 for n in range(sum(sizes)))
    hashing_writer.LARGE_BYTES, kept = large_bytes, hashing_writer.LARGE_BYTES
    try:
        digest, at = BackgroundSha256(), 0
        buffer = bytearray()
        for size in sizes:
            buffer[:] = data[at:at + size]
            digest.update(memoryview(buffer))  # a buffer the caller reuses: hashed as it was when passed
            at += size
        assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    finally:
        hashing_writer.LARGE_BYTES = kept
