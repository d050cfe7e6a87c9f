import polars as pl

from segpipe.core.ingest.batch import FILE_SCHEMA, IMAGE_SCHEMA, QUARANTINE_SCHEMA, IngestedBatch, \
    quarantine_unreadable_batch
from segpipe.core.ingest.batch_report import NO_ENTRY_ACTION, quarantine_reasons, unusable_batch
from segpipe.core.ingest.shape_table import ShapeTableBuilder
from segpipe.core.shared.errors import InputError
from segpipe.core.shared.quarantine_rules import CORRUPT_ARCHIVE, IMAGE_MISSING, IMAGE_UNDECODABLE, quarantine_rule


def _quarantine(*rows: tuple[str, str]) -> pl.DataFrame:
    return pl.DataFrame([{"batch_id": "b", "file_name": f, "stage": "ingest", "rule": r, "message": f"{f}: {r}"}
                         for f, r in rows], schema=QUARANTINE_SCHEMA)


def _batch(quarantine: pl.DataFrame, source_format: str | None, accepted: int = 0) -> IngestedBatch:
    """A batch with `accepted` image rows (only their count matters here) and the quarantine given."""
    images = pl.DataFrame([{"entry_id": f"e{i}"} for i in range(accepted)], schema=IMAGE_SCHEMA)
    return IngestedBatch(images, ShapeTableBuilder().frame(), quarantine, pl.DataFrame(schema=FILE_SCHEMA), source_format)


def test_reasons_count_each_rule_list_its_first_files_and_say_what_to_do():
    quarantine = _quarantine(*((f"img{i}.jpg", IMAGE_UNDECODABLE) for i in range(5)), ("a.jpg", IMAGE_MISSING))
    reasons = quarantine_reasons(quarantine)
    assert reasons.rows() == [
        (IMAGE_UNDECODABLE, 5, "img0.jpg, img1.jpg, img2.jpg +2 more", f"img0.jpg: {IMAGE_UNDECODABLE}",
         quarantine_rule(IMAGE_UNDECODABLE).action),
        (IMAGE_MISSING, 1, "a.jpg", f"a.jpg: {IMAGE_MISSING}", quarantine_rule(IMAGE_MISSING).action),
    ]
    assert quarantine_reasons(_quarantine()).is_empty()


def test_a_batch_with_an_accepted_entry_is_usable():
    assert unusable_batch(_batch(_quarantine(("a.jpg", IMAGE_MISSING)), "coco_instances", accepted=1)) is None


def test_a_batch_read_but_wholly_quarantined_names_its_rules_and_the_first_file_of_the_most_frequent():
    quarantine = _quarantine(("b.jpg", IMAGE_UNDECODABLE), ("a.jpg", IMAGE_UNDECODABLE), ("c.jpg", IMAGE_MISSING))
    problem = unusable_batch(_batch(quarantine, "labelme"))
    assert problem.problem == (f"it was read as labelme, but all 3 of its items are quarantined "
                               f"({IMAGE_UNDECODABLE} 2, {IMAGE_MISSING} 1)")
    assert (problem.rule, problem.file, problem.message) == (IMAGE_UNDECODABLE, "a.jpg", f"a.jpg: {IMAGE_UNDECODABLE}")
    assert problem.what_to_do == quarantine_rule(IMAGE_UNDECODABLE).action


def test_a_batch_whose_source_cannot_be_read_says_so():
    batch = quarantine_unreadable_batch("b", InputError(CORRUPT_ARCHIVE, "landing/b.zip: no central directory"))
    problem = unusable_batch(batch)
    assert problem.problem == f"its format could not be read ({CORRUPT_ARCHIVE}), so its one item is quarantined"
    assert (problem.rule, problem.file, problem.message) == (CORRUPT_ARCHIVE, "", "landing/b.zip: no central directory")


def test_a_batch_with_nothing_in_it_is_unusable_without_a_rule():
    problem = unusable_batch(_batch(_quarantine(), "coco_instances"))
    assert (problem.rule, problem.file, problem.what_to_do) == ("", "", NO_ENTRY_ACTION)
