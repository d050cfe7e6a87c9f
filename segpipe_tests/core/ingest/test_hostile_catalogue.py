"""Every case of the hostile-input catalogue (segpipe_tests/hostile_inputs.py), landed and ingested as
the ingest asset reads a batch: nothing raises, every image is released or quarantined with a message
naming the file and the problem, every file of the batch is listed with its outcome, and every
released image is in the store. Then the whole catalogue again, in a process under the
address-space limit segpipe_tests/bench/hostile.py measures each case under."""

import json
import os
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from segpipe.core.ingest.image_lookup import IMAGE_SUFFIXES
from segpipe.core.ingest.sources.folder import printable_name
from segpipe_tests.bench.hostile import address_space_limit, limited_env
from segpipe_tests.hostile_inputs import CASES, HostileCase
from segpipe_tests.landed_batch import ingest_landed

KEY = b"hostile-test-key-0123"
OUTCOMES = {"read", "unused", "rejected"}


def test_the_catalogue_holds_at_least_40_cases_across_12_categories():
    counted = Counter(case.category for case in CASES)
    assert sum(counted.values()) >= 40 and len(counted) >= 12, counted
    assert len({case.id for case in CASES}) == len(CASES)


def batch_files(landing: Path, case: HostileCase) -> set[str]:
    """Every file of a landed folder batch as the files table names it (undecodable bytes escaped)."""
    root = landing / case.id
    found = set()
    for folder, _, names in os.walk(os.fsencode(root)):
        for name in names:
            relative = os.path.relpath(os.path.join(folder, name), os.fsencode(root))
            found.add(printable_name(os.fsdecode(relative)))
    return found


def archive_listing(archive: Path) -> set[str]:
    """The entries of an archive as zipfile lists them; the archive itself when it cannot be listed."""
    try:
        with zipfile.ZipFile(archive) as listed:
            return set(listed.namelist())
    except zipfile.BadZipFile:
        return {archive.name}


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_a_hostile_batch_is_ingested_with_every_item_accounted_for(case: HostileCase, tmp_path: Path):
    landing = tmp_path / "landing"
    case.build(landing, case.id)
    stored: dict[str, bytes] = {}
    result = ingest_landed(landing, case.id, KEY, stored.__setitem__)

    assert sorted(result.images["file_name"]) == sorted(case.released)
    assert sorted(result.quarantine.select("file_name", "rule").rows()) == sorted(case.quarantined.items())
    for file_name in case.quarantined:
        said = " | ".join(result.quarantine.filter(result.quarantine["file_name"] == file_name)["message"])
        assert case.names in said and case.detail in said, said
    assert set(result.images["image_key"]) <= set(stored), "every released image is in the store"

    files = dict(result.files.select("path", "outcome").rows())
    if case.whole_batch:
        assert result.images.is_empty() and set(files.values()) == {"rejected"}
        assert set(files) == archive_listing(landing / f"{case.id}.zip")
        return
    assert set(files.values()) <= OUTCOMES
    if (landing / case.id).is_dir():
        assert set(files) == batch_files(landing, case)
    images = {path for path, role in result.files.select("path", "role").rows() if role == "image"}
    accounted = set(case.released) | set(case.quarantined)
    assert {p for p in images if p.lower().endswith(IMAGE_SUFFIXES)} <= accounted
    rejected = {path: reason.split(":")[0] for path, outcome, reason in result.files.select("path", "outcome", "reason").rows()
                if outcome == "rejected"}
    assert {path: rejected.get(path) for path in case.rejected_files} == dict(case.rejected_files)


def test_every_case_is_ingested_within_the_address_space_limit(tmp_path: Path):
    """One process for the whole catalogue, so the bound holds for every case and for them all in turn;
    the bench's docstring says why the limit is 1.5 GiB (about 140 MiB of it resident)."""
    cases = list(CASES)
    for case in cases:
        case.build(tmp_path, case.id)
    done = subprocess.run(
        [sys.executable, "-m", "segpipe_tests.bench.hostile", "--ingest", str(tmp_path), *[case.id for case in cases]],
        capture_output=True, text=True, timeout=600, preexec_fn=address_space_limit(), env=limited_env())
    assert done.returncode == 0, done.stderr[-3000:]
    reports = [json.loads(line) for line in done.stdout.splitlines()]
    assert [report["case"] for report in reports] == [case.id for case in cases]
    for case, report in zip(cases, reports, strict=True):
        assert (report["released"], sorted(map(tuple, report["quarantined"]))) == (
            len(case.released), sorted(case.quarantined.items())), case.id
