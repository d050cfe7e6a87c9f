from pathlib import Path

from segpipe.io.object_store import ObjectStore


def test_a_local_stores_url_is_the_absolute_path_the_object_is_written_to(tmp_path, monkeypatch):
    """Shown in the UI as where a picture's full-size object is: it must open from any working directory."""
    monkeypatch.chdir(tmp_path)
    store = ObjectStore(root="store/")
    store.write_bytes("qa-thumbnails/rule/e.png", b"png")
    url = store.url("qa-thumbnails/rule/e.png")
    assert url == str(tmp_path / "store" / "qa-thumbnails" / "rule" / "e.png")
    assert Path(url).is_absolute() and Path(url).read_bytes() == b"png"
