import os

import fsspec
import pytest

from segpipe.core.shared.errors import InputError
from segpipe.core.ingest.sources.folder import FolderSource


def test_lists_regular_files_relative_and_sorted_and_reads_them(tmp_path):
    (tmp_path / "images" / "sub").mkdir(parents=True)
    (tmp_path / "images" / "sub" / "b.png").write_bytes(b"b")
    (tmp_path / "a.json").write_bytes(b"{}")
    source = FolderSource(fsspec.filesystem("file"), str(tmp_path), "landing/x")
    assert source.names() == ["a.json", "images/sub/b.png"]
    assert source.read("images/sub/b.png") == b"b"
    with source.open("a.json") as stream:
        assert stream.read() == b"{}"
    assert source.origin("a.json") == "landing/x/a.json"


def test_symlinks_are_refused_never_followed(tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("password")
    batch = tmp_path / "batch"
    (batch / "images").mkdir(parents=True)
    os.symlink(outside, batch / "images" / "leak.png")
    os.symlink("/etc", batch / "etc")
    source = FolderSource(fsspec.filesystem("file"), str(batch), str(batch))
    assert source.names() == []
    rejected = {r.name: r.error for r in source.rejected()}
    assert set(rejected) == {"images/leak.png", "etc"}
    assert rejected["images/leak.png"].rule == "symlink"
    with pytest.raises(InputError, match="no such file"):
        source.read("images/leak.png")


def test_undecodable_file_names_are_refused_with_an_escaped_name(tmp_path):
    os.makedirs(tmp_path, exist_ok=True)
    with open(os.path.join(os.fsencode(tmp_path), b"img_\xff.png"), "wb") as handle:
        handle.write(b"x")
    source = FolderSource(fsspec.filesystem("file"), str(tmp_path), "b")
    [rejected] = source.rejected()
    assert rejected.error.rule == "undecodable_name"
    assert rejected.name.encode("utf-8")  # printable, storable in Parquet
    assert "\\udcff" in rejected.name and source.names() == []
