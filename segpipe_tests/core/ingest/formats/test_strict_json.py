"""load_json's one-pass parse decides nothing the scan would decide otherwise: a document it
returns is one the scan accepts, parsed alike; any other goes to the scan, whose refusal names the
file and the problem as before."""

import json

import pytest

from segpipe.core.ingest.formats import strict_json
from segpipe.core.ingest.formats.strict_json import MAX_DEPTH, MAX_KEY_CHARS, UTF8_BOM, load_json
from segpipe.core.shared.errors import InputError
from segpipe_tests.hostile_inputs import nested_json

ACCEPTED = [
    b'{"imgHeight": 1024, "imgWidth": 2048, "objects": [{"label": "road", "polygon": [[0, 0], [5, 1], [3, 7]]}]}',
    UTF8_BOM + b'{"label": "caf\xc3\xa9 [not a bracket] {", "n": -12.5, "ok": true, "none": null}',
    b'"just a string"',
    b"123456789012345678",  # 18 digits: fits yajl's integers
    nested_json(MAX_DEPTH - 1),
    b'[' * MAX_DEPTH + b']' * MAX_DEPTH,
    b'{"' + b"k" * MAX_KEY_CHARS + b'": 1}',
    b'{"a": {"a": 1}, "b": [{"a": 2}, {"a": 3}]}',  # the same key in different objects
]
REFUSED = [
    b'{"a": 1, "a": 2}',
    b'{"objects": [{"label": "x", "label": "y"}]}',
    b'[' * (MAX_DEPTH + 1) + b']' * (MAX_DEPTH + 1),
    nested_json(10_000),
    b'{"' + b"k" * (MAX_KEY_CHARS + 1) + b'": 1}',
    b"[NaN]", b"[Infinity]", b"[-Infinity]",
    b"[12345678901234567890]", b"[1e400]",
    b'{"a": 1} {"b": 2}', b'{"a": 1,}', b"",
    b'["\xff\xfe"]',
]
DECLINED = [b'{"a": "\\ud800"}', b'{"a": "tab\\t"}', b"[1.5e3]", b'{"id": "3e7a"}']  # left to the scan, which accepts them


def scanned(data: bytes) -> object:
    """What load_json did before the one-pass parse: scan, then parse."""
    try:
        return ("parsed", _scan_then_parse(data))
    except InputError as exc:
        return ("refused", exc.rule, str(exc))


def _scan_then_parse(data: bytes) -> object:
    original = strict_json.FAST_PATH_BYTES
    strict_json.FAST_PATH_BYTES = -1
    try:
        return load_json(data, "f.json")
    finally:
        strict_json.FAST_PATH_BYTES = original


def loaded(data: bytes) -> object:
    try:
        return ("parsed", load_json(data, "f.json"))
    except InputError as exc:
        return ("refused", exc.rule, str(exc))


@pytest.mark.parametrize("data", ACCEPTED, ids=range(len(ACCEPTED)))
def test_a_document_the_scan_accepts_is_parsed_in_one_pass_to_the_same_value(data):
    assert scanned(data)[0] == "parsed"
    assert strict_json._parsed_within_bounds(data.removeprefix(UTF8_BOM)) == json.loads(data.removeprefix(UTF8_BOM))
    assert loaded(data) == scanned(data)


@pytest.mark.parametrize("data", REFUSED, ids=range(len(REFUSED)))
def test_a_document_the_scan_refuses_is_declined_by_the_one_pass_parse_and_refused_as_before(data):
    with pytest.raises(strict_json._Declined):
        strict_json._parsed_within_bounds(data.removeprefix(UTF8_BOM))
    outcome = scanned(data)
    assert outcome[0] == "refused" and "f.json" in outcome[2]
    assert loaded(data) == outcome


@pytest.mark.parametrize("data", DECLINED, ids=range(len(DECLINED)))
def test_a_document_the_one_pass_parse_cannot_vouch_for_is_the_scan_s_to_accept(data):
    with pytest.raises(strict_json._Declined):
        strict_json._parsed_within_bounds(data)
    assert loaded(data) == scanned(data) == ("parsed", json.loads(data))


def test_a_document_over_the_one_pass_size_is_scanned_first(monkeypatch):
    def not_here(data: bytes) -> object:
        raise AssertionError("parsed in one pass")

    monkeypatch.setattr(strict_json, "_parsed_within_bounds", not_here)
    monkeypatch.setattr(strict_json, "FAST_PATH_BYTES", 8)
    assert load_json(b'{"a": [1, 2, 3]}', "f.json") == {"a": [1, 2, 3]}
    with pytest.raises(InputError, match="f.json"):
        load_json(b'{"a": [1, 2], "a": 3}', "f.json")
