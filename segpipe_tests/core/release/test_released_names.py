import polars as pl
import pytest

from segpipe.core.ingest.pseudonym import batch_pseudonym
from segpipe.core.release.released_names import ReleasedNames

KEY = b"k" * 32
LANDING = "/home/builder/segpipe/landing"
NAMES = ReleasedNames.of(["b1", "b1.v2", "b002_alice"], LANDING + "/", KEY)


def named(batch: str) -> str:
    return batch_pseudonym(batch, KEY)


@pytest.mark.parametrize(("message", "released"), [
    (f"image_undecodable: {LANDING}/b1/images/a.jpg: cannot decode image", "image_undecodable: images/a.jpg: cannot decode image"),
    (f"{LANDING}/b1.v2.zip!/images/a.jpg: image is 922x461", "images/a.jpg: image is 922x461"),
    (f"{LANDING}/b002_alice.zip: entry 'x.zip' is an archive", f"{named('b002_alice')}.zip: entry 'x.zip' is an archive"),
    (f"{LANDING}/b1: no ready batch with this id", f"{named('b1')}: no ready batch with this id"),
    ("looks like b1.v2/images/x.jpg (3 of 64 hash bits differ)", f"looks like {named('b1.v2')}/images/x.jpg (3 of 64 hash bits differ)"),
    ("looks like b1/images/b1/x.jpg", f"looks like {named('b1')}/images/b1/x.jpg"),
    (f"{LANDING}/elsewhere/x.jpg: gone", "elsewhere/x.jpg: gone"),
    ("no path at all, b1 as a word", "no path at all, b1 as a word"),
])
def test_messages_name_files_in_their_batch_and_batches_by_pseudonym(message: str, released: str) -> None:
    assert NAMES.text(message) == released


def test_tables_and_batch_lists_carry_pseudonyms_only() -> None:
    table = pl.DataFrame({"batch_id": ["b1", "b002_alice"], "reason": [f"{LANDING}/b1/a.jpg: bad", None]})
    assert NAMES.table(table, "reason").rows() == [(named("b1"), "a.jpg: bad"), (named("b002_alice"), None)]
    assert NAMES.batch_list("b1;b002_alice") == ";".join(sorted([named("b1"), named("b002_alice")]))
    with pytest.raises(pl.exceptions.InvalidOperationError):
        NAMES.table(pl.DataFrame({"batch_id": ["unknown"], "reason": [None]}), "reason")
