"""Local writes are whole or absent under their final name, with real failures: a writer that
raises mid-write and a folder the process may not write."""

import os
import subprocess
import sys
import textwrap

import fsspec
import polars as pl
import pytest

from segpipe.io.object_store import ObjectStore
from segpipe.store.atomic import write_atomically


class DiskFull(OSError):
    pass


def _half_then_full(f) -> None:
    f.write(b"\x89PNG\r\n\x1a\n" + b"x" * 1000)
    raise DiskFull(28, "No space left on device")


def test_a_write_that_fails_midway_leaves_no_file_at_the_final_name_and_no_temporary(tmp_path):
    fs = fsspec.filesystem("file")
    target = tmp_path / "masks" / "b1" / "e1-abc.png"
    with pytest.raises(DiskFull):
        write_atomically(fs, str(target), _half_then_full)
    assert not target.exists()
    assert os.listdir(target.parent) == []


def test_a_failed_rewrite_keeps_the_previous_whole_object(tmp_path):
    fs = fsspec.filesystem("file")
    target = tmp_path / "t.parquet"
    pl.DataFrame({"a": [1, 2]}).write_parquet(target)
    before = target.read_bytes()
    with pytest.raises(DiskFull):
        write_atomically(fs, str(target), _half_then_full)
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["t.parquet"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_the_object_store_into_a_read_only_folder_raises_and_leaves_nothing(tmp_path):
    folder = tmp_path / "store" / "masks" / "b1"
    folder.mkdir(parents=True)
    folder.chmod(0o555)
    try:
        with pytest.raises(PermissionError):
            ObjectStore(root=str(tmp_path / "store")).write_bytes("masks/b1/e1-abc.png", b"data")
        assert os.listdir(folder) == []
    finally:
        folder.chmod(0o755)


def test_a_store_write_cut_off_by_a_file_size_limit_leaves_no_partial_object(tmp_path):
    """RLIMIT_FSIZE makes the kernel refuse bytes past 100 (EFBIG), as a full disk refuses them (ENOSPC)."""
    script = textwrap.dedent(f"""
        import resource, signal
        from segpipe.io.object_store import ObjectStore
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))
        try:
            ObjectStore(root={str(tmp_path)!r}).write_bytes("masks/b1/e1-abc.png", bytes(1000))
        except OSError as exc:
            print("refused", exc.errno)
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert run.stdout.startswith("refused")
    assert os.listdir(tmp_path / "masks" / "b1") == []


def test_the_object_store_writes_whole_objects(tmp_path):
    store = ObjectStore(root=str(tmp_path))
    store.write_bytes("masks/b1/e1-abc.png", b"first")
    store.write_bytes("masks/b1/e1-abc.png", b"second")
    assert (tmp_path / "masks" / "b1" / "e1-abc.png").read_bytes() == b"second"
    assert os.listdir(tmp_path / "masks" / "b1") == ["e1-abc.png"]
