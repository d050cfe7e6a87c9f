"""The publication protocol on a local filesystem (the same protocol runs on SeaweedFS in segpipe_tests/io)."""

import datetime as dt
import hashlib
import io
import os
import re
import shutil
import time
import zipfile
from pathlib import Path

import fsspec
import orjson
import pytest
from fsspec.implementations.local import LocalFileSystem

from segpipe.store import claims
from segpipe.store.claims import CLAIM_LAPSE, CLAIM_POLL_SECONDS, ClaimExpired
from segpipe.store.create_only import CreateOutcome, create_only, create_only_bytes
from segpipe.store.keys import PROBE_DIR
from segpipe.store.probe import StoreLacksCreateOnly, require_create_only
from segpipe.store.publish import (
    STALE_STAGING_AGE,
    ReleaseConflictError,
    open_staging,
    publish_release,
    publish_version,
)
from segpipe.store.release_read import ReleaseFileCorrupt, latest_version, list_releases, read_release_file
from segpipe.store.keys import CLAIMS_DIR, LATEST_POINTER, RELEASE_MARKER, STAGING_DIR, sequence_claim
from segpipe.store.pointer import advance_pointer, read_pointer
from segpipe.store.staging import ReleaseStaging, StagedReleaseCorrupt
from segpipe.core.release.verify import archive_problems
from segpipe.store.versions import version_name, version_sequence
from segpipe_tests.store.gated_stores import Gate, GatedLocalFileSystem
from segpipe_tests.store.publish_races import archive_of, overtaking_an_unfinished_publisher, race_at_the_claim
from segpipe_tests.store.publish_races import publish as race_publish
from segpipe_tests.store.publish_races import version as race_version

DAY_ONE = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)
TAXONOMY = "street-v1-ab12cd34"
V1 = "2026-12-01.1-tax-street-v1-ab12cd34"


def _archive(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "dataset.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("meta.json", text)
    (folder / "manifest.parquet").write_bytes(f"manifest of {text}".encode())
    return path


def staged(fs, root: str, files: dict[str, Path], now: dt.datetime = DAY_ONE) -> ReleaseStaging:
    """A staging dir holding local `files` (name -> path), as the release asset streams them in."""
    staging = open_staging(fs, root, "demo", now)
    for name, path in files.items():
        staging.put_file(name, path)
    return staging


def _publish(fs, root: str, folder: Path, text: str, now: dt.datetime = DAY_ONE, run_id: str = "run-1"):
    archive = _archive(folder, text)
    staging = staged(fs, root, {"dataset.zip": archive, "manifest.parquet": folder / "manifest.parquet"}, now)
    return publish_release(fs, root, "demo", staging, "dataset.zip", {"run_id": run_id},
                           content_digest=f"digest-{text}", taxonomy_version=TAXONOMY, now=now)


def _local() -> LocalFileSystem:
    return fsspec.filesystem("file", auto_mkdir=True)


class RaisingReader(io.RawIOBase):
    """A source that fails after `limit` bytes, as a crashing producer would."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.left <= 0:
            raise RuntimeError("producer crashed")
        n = min(len(buffer), self.left)
        buffer[:n] = b"x" * n
        self.left -= n
        return n


class OverwritingFileSystem(LocalFileSystem):
    """A store that accepts create-only writes and silently overwrites (as some S3 servers do)."""

    def link(self, src, dst, **kwargs):
        shutil.copyfile(self._strip_protocol(src), self._strip_protocol(dst))


class BitFlippingFileSystem(LocalFileSystem):
    """A store that hands back staged objects with their first byte flipped (corruption in transit or at rest)."""

    def _open(self, path, mode="rb", **kwargs):
        f = super()._open(path, mode, **kwargs)
        if mode != "rb" or f"/{STAGING_DIR}/" not in path:
            return f
        with f:
            data = f.read()
        return io.BytesIO(bytes([data[0] ^ 0xFF]) + data[1:])


def test_a_release_is_staged_committed_by_its_marker_and_pointed_at(tmp_path):
    fs, root = _local(), str(tmp_path / "store")
    published = _publish(fs, root, tmp_path / "a", "one")

    assert (published.version, published.prefix, published.newly_published, published.latest) == (
        V1, f"releases/demo/{V1}", True, V1)
    release = Path(root) / published.prefix
    assert sorted(p.name for p in release.iterdir()) == [RELEASE_MARKER, f"demo-{V1}.zip", "manifest.parquet"]
    marker = orjson.loads((release / RELEASE_MARKER).read_bytes())
    assert marker == published.marker
    assert {k: marker[k] for k in ("dataset", "version", "sequence", "content_digest", "taxonomy_version", "run_id",
                                   "created")} == {
        "dataset": "demo", "version": V1, "sequence": 1, "content_digest": "digest-one", "taxonomy_version": TAXONOMY,
        "run_id": "run-1", "created": "2026-12-01T09:30:00+00:00"}
    assert marker["files"] == {
        f"demo-{V1}.zip": hashlib.sha256((tmp_path / "a" / "dataset.zip").read_bytes()).hexdigest(),
        "manifest.parquet": hashlib.sha256(b"manifest of one").hexdigest()}
    assert orjson.loads((Path(root) / "releases/demo" / LATEST_POINTER).read_bytes()) == {
        "version": V1, "sequence": 1, "content_digest": "digest-one"}
    assert list((Path(root) / "releases/demo" / STAGING_DIR).iterdir()) == []
    assert [p.name for p in (Path(root) / "releases/demo").iterdir() if p.name.endswith(".partial")] == []


def test_the_same_content_returns_the_newest_release_and_new_content_the_next_sequence(tmp_path):
    fs, root = _local(), str(tmp_path / "store")
    first = _publish(fs, root, tmp_path / "a", "one")
    again = _publish(fs, root, tmp_path / "b", "one", now=DAY_ONE + dt.timedelta(days=1), run_id="run-2")
    assert (again.version, again.newly_published, again.marker) == (V1, False, first.marker)

    changed = _publish(fs, root, tmp_path / "c", "two", now=DAY_ONE + dt.timedelta(days=1), run_id="run-3")
    assert (changed.version, changed.newly_published, changed.latest) == (
        "2026-12-02.2-tax-street-v1-ab12cd34", True, "2026-12-02.2-tax-street-v1-ab12cd34")
    # the clock stepping back does not reorder versions: the sequence does
    back = _publish(fs, root, tmp_path / "d", "three", now=DAY_ONE, run_id="run-4")
    assert back.version == "2026-12-01.3-tax-street-v1-ab12cd34"
    assert [m["version"] for m in list_releases(fs, root, "demo")] == [V1, changed.version, back.version]
    assert latest_version(fs, root, "demo") == back.version


def test_a_second_publish_of_a_version_with_other_content_is_refused_and_touches_nothing(tmp_path):
    fs, root = _local(), str(tmp_path / "store")
    first = _publish(fs, root, tmp_path / "a", "one")
    before = {p: p.read_bytes() for p in (Path(root) / first.prefix).iterdir()}
    other = _archive(tmp_path / "b", "other")

    with pytest.raises(ReleaseConflictError, match="never overwritten"):
        publish_version(fs, root, "demo", V1, staged(fs, root, {f"demo-{V1}.zip": other}), {"run_id": "run-2"})
    assert {p: p.read_bytes() for p in (Path(root) / first.prefix).iterdir()} == before
    # the same files under the same version (a rerun of the committing run) are a no-op
    same = publish_version(fs, root, "demo", V1, staged(fs, root, {f"demo-{V1}.zip": tmp_path / "a" / "dataset.zip",
                                                                  "manifest.parquet": tmp_path / "a" / "manifest.parquet"}),
                           {"run_id": "run-3"})
    assert (same.newly_published, same.marker["run_id"]) == (False, "run-1")


def test_an_uncommitted_attempt_is_skipped_not_overwritten(tmp_path):
    fs, root = _local(), str(tmp_path / "store")
    orphan = Path(root) / f"releases/demo/{V1}"
    orphan.mkdir(parents=True)
    (orphan / f"demo-{V1}.zip").write_bytes(b"half of an interrupted attempt")

    published = _publish(fs, root, tmp_path / "a", "one")
    assert published.version == "2026-12-01.2-tax-street-v1-ab12cd34"
    assert (orphan / f"demo-{V1}.zip").read_bytes() == b"half of an interrupted attempt"
    assert [m["version"] for m in list_releases(fs, root, "demo")] == [published.version]


def test_corruption_seen_in_staging_stops_the_publish_before_any_final_key(tmp_path):
    fs, root = BitFlippingFileSystem(auto_mkdir=True), str(tmp_path / "store")
    with pytest.raises(StagedReleaseCorrupt, match="dataset.zip: sha256 "):
        _publish(fs, root, tmp_path / "a", "one")
    assert sorted(p.name for p in (Path(root) / "releases/demo").iterdir()) == [STAGING_DIR]
    assert list((Path(root) / "releases/demo" / STAGING_DIR).iterdir()) == []


def test_stale_staging_is_removed_and_fresh_staging_kept(tmp_path):
    fs, root = _local(), str(tmp_path / "store")
    staging = Path(root) / "releases/demo" / STAGING_DIR
    (staging / "20261130T200000Z-crashedrun01").mkdir(parents=True)
    (staging / "20261130T200000Z-crashedrun01" / "dataset.zip").write_bytes(b"left by a crash")
    (staging / "20261201T090000Z-runningnow01").mkdir()
    _publish(fs, root, tmp_path / "a", "one")
    assert [p.name for p in staging.iterdir()] == ["20261201T090000Z-runningnow01"]


def test_an_exception_while_writing_leaves_nothing_at_the_key(tmp_path):
    fs = _local()
    target = tmp_path / "store" / "final.zip"
    with pytest.raises(RuntimeError, match="producer crashed"):
        create_only(fs, str(target), io.BufferedReader(RaisingReader(3 << 20)))
    assert list((tmp_path / "store").iterdir()) == []


def test_create_only_refuses_a_taken_key_and_tells_same_from_other_bytes(tmp_path):
    fs, path = _local(), str(tmp_path / "marker.json")
    assert create_only_bytes(fs, path, b"first") is CreateOutcome.CREATED
    assert create_only_bytes(fs, path, b"first") is CreateOutcome.ALREADY_SAME
    assert create_only_bytes(fs, path, b"second") is CreateOutcome.ALREADY_OTHER
    assert Path(path).read_bytes() == b"first"
    assert sorted(os.listdir(tmp_path)) == ["marker.json"]


def test_the_probe_refuses_a_store_that_overwrites_and_nothing_is_published(tmp_path):
    fs, root = OverwritingFileSystem(auto_mkdir=True), str(tmp_path / "bad-store")
    with pytest.raises(StoreLacksCreateOnly, match=f"OverwritingFileSystem:file://{root}"):
        require_create_only(fs, root)
    with pytest.raises(StoreLacksCreateOnly):
        _publish(fs, root, tmp_path / "a", "one")
    assert not (Path(root) / "releases").exists()
    require_create_only(_local(), str(tmp_path / "good-store"))  # a real local filesystem passes


def test_the_latest_pointer_never_moves_backwards(tmp_path):
    fs, path = _local(), str(tmp_path / LATEST_POINTER)
    assert advance_pointer(fs, path, {"version": "b", "sequence": 2}) == {"version": "b", "sequence": 2}
    assert advance_pointer(fs, path, {"version": "a", "sequence": 1}) == {"version": "b", "sequence": 2}
    assert advance_pointer(fs, path, {"version": "c", "sequence": 3}) == {"version": "c", "sequence": 3}
    assert read_pointer(fs, path) == {"version": "c", "sequence": 3}
    assert sorted(os.listdir(tmp_path)) == [LATEST_POINTER]


def test_version_names_carry_date_sequence_and_taxonomy():
    assert version_name(dt.date(2026, 12, 1), 3, "street v1/ab12") == "2026-12-01.3-tax-street_v1_ab12"
    assert version_sequence("2026-12-01.12-tax-street-v1-ab12cd34") == 12
    assert version_sequence("_staging") is None and version_sequence("latest.json") is None


def test_an_exception_while_streaming_the_archive_leaves_no_release_and_no_staging(tmp_path):
    fs, root = _local(), str(tmp_path / "store")
    with pytest.raises(RuntimeError, match="release writer crashed"), open_staging(fs, root, "demo", DAY_ONE) as staging:
        with staging.open("dataset.zip") as out:
            out.write(b"PK half an archive")
            raise RuntimeError("release writer crashed")
    assert [p.name for p in (Path(root) / "releases/demo").iterdir()] == [STAGING_DIR]
    assert list((Path(root) / "releases/demo" / STAGING_DIR).iterdir()) == []
    assert not (Path(root) / PROBE_DIR).exists(), "the probe cleans up after itself"


def test_a_staged_archive_failing_the_release_check_is_not_published(tmp_path):
    """The asset passes verify_release as the check: a member that does not match SHA256SUMS stops the commit."""
    fs, root = _local(), str(tmp_path / "store")
    with open_staging(fs, root, "demo", DAY_ONE) as staging:
        with staging.open("dataset.zip") as out, zipfile.ZipFile(out, "w") as archive:
            archive.writestr("meta.json", b"{}")
            archive.writestr("SHA256SUMS", f"{'0' * 64}  meta.json\n")
        with pytest.raises(StagedReleaseCorrupt, match="dataset.zip: meta.json: SHA-256 is "):
            publish_release(fs, root, "demo", staging, "dataset.zip", {"run_id": "run-1"}, content_digest="d",
                            taxonomy_version=TAXONOMY, now=DAY_ONE, check_archive=archive_problems)
    assert list_releases(fs, root, "demo") == [] and latest_version(fs, root, "demo") is None
    assert sorted(p.name for p in (Path(root) / "releases/demo").iterdir()) == [STAGING_DIR]


def test_a_published_file_is_the_staged_file_linked_not_copied(tmp_path):
    """Locally the commit hard-links each staged file into place, so a large archive is not written twice."""
    fs, root = _local(), str(tmp_path / "store")
    staging = staged(fs, root, {"dataset.zip": _archive(tmp_path / "a", "one")})
    staged_inode = os.stat(f"{staging.path}/dataset.zip").st_ino
    published = publish_release(fs, root, "demo", staging, "dataset.zip", {"run_id": "run-1"}, content_digest="d",
                                taxonomy_version=TAXONOMY, now=DAY_ONE)
    assert os.stat(Path(root) / published.prefix / f"demo-{V1}.zip").st_ino == staged_inode


def _gated_local(gate: Gate) -> GatedLocalFileSystem:
    return GatedLocalFileSystem(gate)


@pytest.mark.parametrize("same_content", [False, True], ids=["other-content", "same-content"])
def test_publishers_racing_for_one_sequence_commit_each_content_once(tmp_path, same_content):
    race_at_the_claim(_gated_local, str(tmp_path / "store"), same_content)


@pytest.mark.parametrize("same_content", [False, True], ids=["other-content", "same-content"])
def test_a_publisher_does_not_overtake_one_that_has_not_committed_yet(tmp_path, same_content):
    overtaking_an_unfinished_publisher(_gated_local, str(tmp_path / "store"), same_content)


def test_a_release_committed_while_the_claims_are_read_is_seen_and_not_published_again(tmp_path):
    """Between reading the newest release and listing the claims, another publisher commits the same
    content: the claim listing shows it committed, so the store is read again instead of a duplicate."""
    fs, root = _local(), str(tmp_path / "store")
    race_publish(fs, root, "one", "run-1", [])

    def another_publisher_commits() -> None:
        race_publish(_local(), root, "two", "run-2", [])

    gated = GatedLocalFileSystem(Gate(lambda key: key.endswith(f"/{CLAIMS_DIR}"), another_publisher_commits))
    compared: list = []
    published = race_publish(gated, root, "two", "run-3", compared)
    assert (published.version, published.newly_published, published.marker["run_id"]) == (
        race_version(2), False, "run-2")
    assert compared == [race_version(2)]
    assert [m["version"] for m in list_releases(fs, root, "demo")] == [V1, race_version(2)]


def _claim(root: str, sequence: int, run_id: str, claimed: dt.datetime) -> None:
    """A claim as another publisher's would read: it claimed `sequence` at `claimed`, and never committed."""
    path = Path(root) / "releases/demo" / sequence_claim("demo", sequence).split("/", 2)[2]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps({"sequence": sequence, "version": race_version(sequence), "content_digest": "x",
                                   "run_id": run_id, "claimed": claimed.isoformat()}))


def test_a_claim_given_up_or_lapsed_is_skipped_and_one_of_this_run_taken_over(tmp_path):
    """A failed claimant records that it gave up; a dead one's claim lapses after CLAIM_LAPSE; a retried
    run takes over its own earlier claim. None of them is waited for, and none is reused."""
    fs, root = _local(), str(tmp_path / "store")
    race_publish(fs, root, "one", "run-1", [])

    def failing_diff(previous: dict | None) -> None:
        raise RuntimeError("the diff could not be written")

    staging = open_staging(fs, root, "demo", DAY_ONE)
    staging.put_bytes("dataset.zip", archive_of("two"))
    with pytest.raises(RuntimeError, match="the diff could not be written"):
        publish_release(fs, root, "demo", staging, "dataset.zip", {"run_id": "run-2"}, content_digest="digest-two",
                        taxonomy_version=TAXONOMY, now=DAY_ONE, compare_with=failing_diff)
    given_up = orjson.loads((Path(root) / "releases/demo/_claims/2.abandoned.json").read_bytes())
    assert (given_up["run_id"], given_up["reason"]) == ("run-2", "RuntimeError: the diff could not be written")

    _claim(root, 3, "run-dead", dt.datetime.now(dt.UTC) - CLAIM_LAPSE - dt.timedelta(minutes=1))
    compared: list = []
    started = time.monotonic()
    published = race_publish(fs, root, "two", "run-3", compared)
    assert time.monotonic() - started < CLAIM_POLL_SECONDS, "nothing was waited for"
    assert (published.version, compared) == (race_version(4), [V1])

    _claim(root, 5, "run-4", dt.datetime.now(dt.UTC))  # run-4's first attempt died after its claim
    retried = race_publish(fs, root, "three", "run-4", compared)
    assert (retried.version, compared[-1]) == (race_version(6), race_version(4))
    assert [m["version"] for m in list_releases(fs, root, "demo")] == [V1, race_version(4), race_version(6)]
    assert sorted(p.name for p in (Path(root) / "releases/demo/_claims").iterdir()) == [
        "1.json", "2.abandoned.json", "2.json", "3.json", "4.json", "5.abandoned.json", "5.json", "6.json"]


def test_a_claimant_past_its_deadline_gives_up_rather_than_commit_late(tmp_path, monkeypatch):
    fs, root = _local(), str(tmp_path / "store")
    monkeypatch.setattr(claims, "COMMIT_DEADLINE", dt.timedelta(0))
    with pytest.raises(ClaimExpired, match=f"releases/demo/{V1}/_RELEASE.json: not committed"):
        race_publish(fs, root, "one", "run-1", [])
    assert list_releases(fs, root, "demo") == []
    assert (Path(root) / "releases/demo/_claims/1.abandoned.json").exists()
    monkeypatch.undo()
    assert race_publish(fs, root, "one", "run-2", []).version == race_version(2)


def test_a_version_left_without_its_marker_is_removed_once_no_publisher_may_still_commit_it(tmp_path, monkeypatch):
    """A claimant that gave up after creating its files leaves a full version folder without a marker. The
    janitor of a later publish deletes it once its claim and its newest object are older than the staging
    age (beyond CLAIM_LAPSE), never sooner: a folder whose claimant may still commit, or whose objects a
    late writer still touches, stays. Its claim stays too, so its sequence is never reused."""
    fs, root = _local(), str(tmp_path / "store")
    assert race_publish(fs, root, "one", "run-1", []).version == V1
    monkeypatch.setattr(claims, "COMMIT_DEADLINE", dt.timedelta(0))
    with pytest.raises(ClaimExpired):
        race_publish(fs, root, "two", "run-2", [])
    monkeypatch.undo()
    releases = Path(root) / "releases/demo"
    gave_up = releases / race_version(2)
    assert sorted(p.name for p in gave_up.iterdir()) == [f"demo-{race_version(2)}.zip", "diff.json", "manifest.parquet"]
    now = dt.datetime.now(dt.UTC)
    _claim(root, 3, "run-zombie", now - STALE_STAGING_AGE - dt.timedelta(hours=1))  # lapsed long ago, but ...
    still_written = releases / race_version(3)
    still_written.mkdir()
    (still_written / f"demo-{race_version(3)}.zip").write_bytes(b"... its writer is still at it")
    unclaimed = releases / race_version(4)  # left by an older segpipe, before claims
    unclaimed.mkdir()
    (unclaimed / "manifest.parquet").write_bytes(b"half of an interrupted attempt")
    hours_ago = (now - STALE_STAGING_AGE - dt.timedelta(hours=2)).timestamp()
    os.utime(unclaimed / "manifest.parquet", (hours_ago, hours_ago))

    open_staging(fs, root, "demo", now + dt.timedelta(hours=1)).remove()
    assert sorted(p.name for p in releases.iterdir() if version_sequence(p.name)) == [
        V1, race_version(2), race_version(3)]

    open_staging(fs, root, "demo", now + STALE_STAGING_AGE + dt.timedelta(minutes=1)).remove()
    assert sorted(p.name for p in releases.iterdir() if version_sequence(p.name)) == [V1]
    assert [m["version"] for m in list_releases(fs, root, "demo")] == [V1]
    assert {p.name for p in (releases / CLAIMS_DIR).iterdir()} == {
        "1.json", "2.json", "2.abandoned.json", "3.json", "4.json", "4.abandoned.json"}
    assert race_publish(fs, root, "two", "run-3", []).version == race_version(5)


def test_a_release_file_that_changed_after_publishing_is_refused_naming_both_digests(tmp_path):
    fs, root = _local(), str(tmp_path / "store")
    first = _publish(fs, root, tmp_path / "a", "one")
    manifest = Path(root) / first.prefix / "manifest.parquet"
    assert read_release_file(fs, root, first.marker, "manifest.parquet") == manifest.read_bytes()
    damaged = bytearray(manifest.read_bytes())
    damaged[3] ^= 0x01
    manifest.write_bytes(bytes(damaged))
    expected = first.marker["files"]["manifest.parquet"]
    found = hashlib.sha256(bytes(damaged)).hexdigest()
    with pytest.raises(ReleaseFileCorrupt, match=(
            f"^{re.escape(str(manifest))}: SHA-256 is {found}, _RELEASE.json recorded {expected}: the object changed "
            "after it was published, so it is not used. Restore it")):
        read_release_file(fs, root, first.marker, "manifest.parquet")

    compared: list = []
    with pytest.raises(ReleaseFileCorrupt, match="manifest.parquet: SHA-256 is "):
        race_publish(fs, root, "two", "run-2", compared,
                     read_previous=lambda previous: read_release_file(fs, root, previous, "manifest.parquet"))
    assert compared == [V1] and [m["version"] for m in list_releases(fs, root, "demo")] == [V1]
    with pytest.raises(ReleaseFileCorrupt, match=f"{first.prefix}/notes.txt: not listed in _RELEASE.json"):
        read_release_file(fs, root, first.marker, "notes.txt")
