"""Stored artefacts are checked before they are trusted: a partly written one is rewritten by
write_once, and a read of a damaged mask names its key."""

import numpy as np
import pytest

from segpipe.core.shared.artefacts import ArtefactStore, DamagedArtefact, content_digest
from segpipe.core.shared.png import encode_mask_png, png_damage
from segpipe.io.object_store import ObjectStore
from segpipe.store import keys

PNG = encode_mask_png(np.arange(64, dtype=np.uint8).reshape(8, 8))
KEY = keys.class_mask("b001", "e1", content_digest(PNG))


@pytest.mark.parametrize("left", [b"", PNG[:40], PNG[:-1]], ids=["empty", "truncated", "last-byte-missing"])
def test_write_once_rewrites_a_partly_written_object_under_its_content_name(tmp_path, left):
    path = tmp_path / KEY
    path.parent.mkdir(parents=True)
    path.write_bytes(left)
    ObjectStore(root=str(tmp_path)).artefacts().write_once(KEY, PNG)
    assert path.read_bytes() == PNG


def test_write_once_leaves_an_object_that_holds_these_bytes(tmp_path):
    store = ObjectStore(root=str(tmp_path)).artefacts()
    store.write_once(KEY, PNG)
    before = (tmp_path / KEY).stat().st_mtime_ns
    store.write_once(KEY, PNG)
    assert (tmp_path / KEY).stat().st_mtime_ns == before


@pytest.mark.parametrize("left", [b"", PNG[:40], PNG[:30] + bytes([PNG[30] ^ 0xFF]) + PNG[31:]], ids=["empty", "truncated", "bit-flip"])
def test_reading_a_damaged_mask_names_its_key_and_what_to_do(left):
    store = ArtefactStore.in_memory({KEY: left})
    with pytest.raises(DamagedArtefact) as raised:
        store.read_png(KEY)
    assert KEY in str(raised.value)
    assert "segpipe batch retry b001" in str(raised.value)
    assert not store.holds_png(KEY)


def test_a_whole_png_reads_and_counts_as_held():
    store = ArtefactStore.in_memory({KEY: PNG})
    assert png_damage(PNG) is None
    assert store.read_png(KEY) == PNG and store.holds_png(KEY)


def test_a_partly_written_memo_is_computed_again():
    assert ArtefactStore.in_memory({"consensus/x.json": b'{"a": [1, 2'}).recall("consensus/x.json") is None


def test_a_memo_pruned_between_lookup_and_read_is_recalled_as_none():
    class Pruned(dict):
        def __getitem__(self, key: str) -> bytes:
            del self[key]  # a build beside this one prunes it now (store/memo_prune.py)
            return super().__getitem__(key)

    assert ArtefactStore.in_memory(Pruned({"consensus/x.json": b"[1]"})).recall("consensus/x.json") is None


def test_a_recording_store_notes_every_key_looked_up_read_or_written():
    objects = {"qa-judged/b1/a.json": b"[1]", "masks/b1/e-1.png": b"png"}
    store, used = ArtefactStore.in_memory(objects).recording()
    assert store.recall("qa-judged/b1/a.json") == [1] and store.recall("qa-judged/b1/gone.json") is None
    store.remember("qa-batch/b1/c.json", {"x": 1})
    assert used == {"qa-judged/b1/a.json", "qa-judged/b1/gone.json", "qa-batch/b1/c.json"}
    assert objects["qa-batch/b1/c.json"] == b'{"x":1}'
