"""Licence, origin and attribution of the source batches, in meta.json and the datasheet."""

import json

from segpipe.core.release.provenance import BatchProvenance
from segpipe_tests.core.release.release_fixture import build_release

OPEN = BatchProvenance("public", "CC-BY-4.0", "https://example.org/parts", "Example Lab | Parts team")
VENDOR = BatchProvenance("vendor_a", "proprietary: internal use only", None, "Vendor A")


def released(provenance: dict[str, BatchProvenance] | None) -> tuple[str, dict, str]:
    """(content version, meta.json, README.md) of the fixture's release of batch-0 and batch-1."""
    built = build_release(provenance=provenance)
    with built.archive() as archive:
        return built.contents.version, json.loads(archive.read("meta.json")), archive.read("README.md").decode()


def test_meta_lists_each_source_batch_with_its_terms_and_the_images_it_delivered():
    _, meta, _ = released({"batch-0": OPEN, "batch-1": VENDOR})
    assert meta["sources"] == [
        {"batch_id": "batch-0", "images": 2, "source": "public", "licence": "CC-BY-4.0",
         "origin": "https://example.org/parts", "attribution": "Example Lab | Parts team"},
        {"batch_id": "batch-1", "images": 1, "source": "vendor_a", "licence": "proprietary: internal use only",
         "origin": None, "attribution": "Vendor A"},
    ]


def test_a_release_that_mixes_licences_says_so_in_its_datasheet_naming_each_and_its_batches():
    _, _, datasheet = released({"batch-0": OPEN, "batch-1": VENDOR})
    assert ("**Mixed licences.** The images of this release come under 2 licences: CC-BY-4.0 (batch-0); "
            "proprietary: internal use only (batch-1).") in datasheet
    assert "| public | CC-BY-4.0 | https://example.org/parts | Example Lab \\| Parts team | batch-0 | 2 |" in datasheet
    assert "| vendor_a | proprietary: internal use only | not stated | Vendor A | batch-1 | 1 |" in datasheet


def test_one_licence_is_named_and_a_batch_without_one_makes_the_release_mixed():
    _, _, same = released({"batch-0": OPEN, "batch-1": OPEN})
    assert "Every source batch states the licence CC-BY-4.0." in same and "Mixed" not in same
    assert "| public | CC-BY-4.0 | https://example.org/parts | Example Lab \\| Parts team | batch-0, batch-1 | 3 |" in same
    _, _, partly = released({"batch-0": OPEN})
    assert "come under 2 licences: CC-BY-4.0 (batch-0); not stated (batch-1)." in partly


def test_stated_terms_are_part_of_the_content_version_and_unstated_ones_leave_it_as_it_was():
    without, meta, datasheet = released(None)
    assert [s["licence"] for s in meta["sources"]] == [None, None]
    assert "No source batch states a licence" in datasheet
    assert released({b: BatchProvenance("x", None, None, None) for b in ("batch-0", "batch-1")})[0] == without
    relicensed = BatchProvenance("public", "CC-BY-SA-4.0", OPEN.origin, OPEN.attribution)
    versions = {without, released({"batch-0": OPEN})[0], released({"batch-0": relicensed})[0]}
    assert len(versions) == 3
