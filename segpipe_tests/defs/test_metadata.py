"""The formatting layer every metadata table and value goes through (defs/readable.py, defs/metadata.py)."""

import dagster as dg
import polars as pl

from segpipe.defs.metadata import markdown_table, metadata_table, readable, table_rows, with_file_names
from segpipe.defs.readable import cell_text, number_text, percent_text

HASH_A, HASH_B = "a" * 64, "0123456789ab" + "c" * 52


def test_numbers_read_to_four_significant_digits_and_never_in_scientific_notation():
    assert [number_text(x) for x in (0.9582374270742443, 2.72e-05, 265.7307439104674, 12345.678, 1000.0, 0.0)] == [
        "0.9582", "0.0000272", "265.7", "12350", "1000", "0"]
    assert [percent_text(x) for x in (0.28319687667783366, 0.7, 0.0032053, 0.0)] == ["28.32%", "70%", "0.3205%", "0%"]


def test_cells_show_no_python_literal_and_hashes_cut_to_twelve_characters():
    assert [cell_text(v) for v in (None, True, False, float("nan"), [128, 64, 128], {"a": 0.123456})] == [
        "-", "yes", "no", "-", "128, 64, 128", "a: 0.1235"]
    assert cell_text(HASH_B) == "0123456789ab"
    link = f"[map](/store/agreement-maps/{HASH_A}-1.png)"
    assert cell_text(link) == link  # a hash inside a link stays whole, so the link still leads to its object
    assert cell_text("a | b\nc") == "a / b c"


def test_a_cut_markdown_table_says_how_many_rows_it_leaves_out():
    frame = pl.DataFrame({"image_id": [HASH_A] * 31, "share": [0.123456] * 31, "ok": [True] * 31})
    text = markdown_table(frame, max_rows=20, percent=("share",))
    lines = text.splitlines()
    assert lines[0] == "| image_id | share | ok |" and lines[2] == "| aaaaaaaaaaaa | 12.35% | yes |"
    assert len([line for line in lines if line.startswith("| aaa")]) == 20 and lines[-1] == "+11 more"
    assert "more" not in markdown_table(frame, max_rows=31) and markdown_table(frame.clear()) == "none"


def test_a_cut_value_table_ends_with_a_more_row_that_its_readers_leave_out():
    frame = pl.DataFrame({"file_name": ["a.jpg", "b.jpg", "c.jpg"], "shapes": [1, 2, 3], "area": [0.123456, None, 1.0],
                          "crowd": [True, False, True]})
    table = metadata_table(frame, max_rows=2)
    assert [(c.name, c.type) for c in table.schema.columns] == [
        ("file_name", "string"), ("shapes", "int"), ("area", "string"), ("crowd", "string")]
    assert [r.data for r in table.records] == [
        {"file_name": "a.jpg", "shapes": 1, "area": "0.1235", "crowd": "yes"},
        {"file_name": "b.jpg", "shapes": 2, "area": "-", "crowd": "no"},
        {"file_name": "+1 more", "shapes": "", "area": "", "crowd": ""}]
    assert table_rows(table) == [r.data for r in table.records[:2]]
    first_two = metadata_table(frame.head(2), total=31)  # a frame core already cut to its first rows
    assert first_two.records[-1].data["file_name"] == "+29 more" and len(table_rows(first_two)) == 2


def test_a_hash_gets_the_file_name_of_its_first_entry_beside_it():
    entries = pl.DataFrame({"image_id": [HASH_A, HASH_A, HASH_B], "batch_id": ["b2", "b1", "b1"],
                            "file_name": ["x.jpg", "y.jpg", "z.jpg"]})
    pairs = pl.DataFrame({"image_a": [HASH_A], "image_b": [HASH_B], "bits": [3]})
    named = with_file_names(with_file_names(pairs, entries, "image_a"), entries, "image_b")
    assert named.columns == ["image_a", "file_a", "image_b", "file_b", "bits"]
    assert named.row(0) == (HASH_A, "b1/y.jpg", HASH_B, "b1/z.jpg", 3)


def test_plain_float_and_json_values_are_rounded():
    rounded = readable({"imbalance": 265.7307439104674, "agreement": dg.MetadataValue.float(0.9582374270742443),
                        "shares": dg.MetadataValue.json({"train": [0.7222222222222222]}), "n": 3, "ok": True})
    assert rounded["imbalance"] == 265.7 and rounded["agreement"] == dg.MetadataValue.float(0.9582)
    assert rounded["shares"] == dg.MetadataValue.json({"train": [0.7222]}) and rounded["n"] == 3 and rounded["ok"] is True
