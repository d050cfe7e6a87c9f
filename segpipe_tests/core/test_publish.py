import fsspec
import orjson
import pytest

from segpipe.core.publish import RELEASE_MARKER, ReleaseConflictError, publish_release


def test_a_version_is_published_once_and_never_overwritten(tmp_path):
    fs = fsspec.filesystem("file", auto_mkdir=True)
    root = str(tmp_path / "store")
    archive = tmp_path / "a.zip"
    archive.write_bytes(b"release one")
    first = publish_release(fs, root, "releases/d/v1", {"d.zip": archive}, {"version": "v1"})
    assert first.newly_published
    marker = fs.cat_file(f"{root}/releases/d/v1/{RELEASE_MARKER}")
    assert orjson.loads(marker)["files"]["d.zip"] == first.marker["files"]["d.zip"]

    again = publish_release(fs, root, "releases/d/v1", {"d.zip": archive}, {"version": "v1"})
    assert not again.newly_published
    assert fs.cat_file(f"{root}/releases/d/v1/{RELEASE_MARKER}") == marker

    archive.write_bytes(b"something else")
    with pytest.raises(ReleaseConflictError, match="never overwritten"):
        publish_release(fs, root, "releases/d/v1", {"d.zip": archive}, {"version": "v1"})
    assert fs.cat_file(f"{root}/releases/d/v1/d.zip") == b"release one"
