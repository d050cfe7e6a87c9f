"""Releases in parts on a local store: what a nightly, a taxonomy edit and a re-split write under
parts/, how a version's ZIPs verify, fetch and pack, what `segpipe gc` deletes, and releases published
before parts existed (segpipe_tests/fixtures/releases/format1)."""

import datetime as dt
import hashlib
import io
import shutil
import zipfile
from pathlib import Path

import fsspec
import fsspec.implementations.local
import orjson
import polars as pl
import pytest

from segpipe.store import keys
from segpipe.store.keys import CLAIMS_DIR
from segpipe.store.release_check import verify_release_folder
from segpipe.store.release_fetch import FetchRefused, fetch_release, pack_release
from segpipe.store.release_gc import Retention, collect_garbage
from segpipe.store.release_parts import EarlierArchive, PartCorrupt, PartMissing
from segpipe.store.release_read import list_releases, read_release_file
from segpipe_tests.store.gated_stores import Gate, GatedLocalFileSystem
from segpipe_tests.store.parted_releases import (
    ONE_ZIP,
    edited_val_mask,
    publish_constructed,
    new_batch_with_the_test_image,
    val_moved_to_train,
    without_test,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "releases" / "format1"
LEGACY = "2026-12-04.1-tax-street-v1-ae730456"
NO_GRACE = Retention(keep_last=1, keep=(), grace=dt.timedelta(0))


def _local() -> fsspec.AbstractFileSystem:
    return fsspec.filesystem("file", auto_mkdir=True)


def parts_stored(root: str, dataset: str = "demo") -> dict[str, bytes]:
    folder = Path(root) / keys.parts_dir(dataset)
    return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.exists() else {}


def names_in(part: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(part)) as archive:
        return archive.namelist()


def folder_of(root: str, published) -> str:
    return f"{root}/{published.prefix}"


def test_a_nightly_writes_only_the_new_batchs_parts_and_a_taxonomy_edit_no_image(tmp_path):
    fs, root = _local(), str(tmp_path / "store")
    first = publish_constructed(fs, root, without_test)
    before = parts_stored(root)
    assert len(before) == 4 and set(first.published.marker["parts"]) == set(before)

    nightly = publish_constructed(fs, root, new_batch_with_the_test_image, run_id="run-2")
    after = parts_stored(root)
    new = {name: data for name, data in after.items() if name not in before}
    assert sorted(nightly.parts_written) == sorted(new) and len(new) == 2
    assert sorted(n for data in new.values() for n in names_in(data)) == [
        "images/test/test_000000000000.png", "labels/test/test_000000000000.txt", "masks/test/test_000000000000.png"]
    assert {name: after[name] for name in before} == before, "the first version's parts are untouched"
    assert sum(len(data) for data in new.values()) < sum(len(data) for data in after.values()) / 2
    assert set(nightly.published.marker["parts"]) == set(after)

    edited = publish_constructed(fs, root, edited_val_mask, run_id="run-3")
    [written] = edited.parts_written
    assert sorted(names_in(parts_stored(root)[written])) == ["labels/val/val_000000000000.txt",
                                                             "masks/val/val_000000000000.png"]
    assert [m["version"] for m in list_releases(fs, root, "demo")] == [
        first.published.version, nightly.published.version, edited.published.version]
    for build in (first, nightly, edited):
        checked = verify_release_folder(fs, folder_of(root, build.published))
        assert checked.problems == [] and checked.parts == len(build.published.marker["parts"])
    assert orjson.loads(read_release_file(fs, root, edited.published.marker, "diff.json"))["counts"] == {
        "added": 0, "removed": 0, "changed": 1}


class CountingLocalFileSystem(fsspec.implementations.local.LocalFileSystem):
    """The local filesystem, counting what it is asked of the parts folder: metadata of one object
    (`info`, as a HEAD on S3) and listings of the folder itself (`find`, as a LIST on S3)."""

    cachable = False

    def __init__(self, parts: str, **kwargs) -> None:
        super().__init__(auto_mkdir=True, **kwargs)
        self.parts, self.infos, self.listings = parts, [], 0

    def info(self, path, **kwargs):
        if str(path).startswith(self.parts + "/"):
            self.infos.append(str(path))
        return super().info(path, **kwargs)

    def find(self, path, *args, **kwargs):
        self.listings += str(path).rstrip("/") == self.parts
        return super().find(path, *args, **kwargs)


def test_a_nightly_learns_which_parts_are_stored_from_listings_not_a_request_a_part(tmp_path):
    """On S3 a request is a round trip, and a version uses hundreds of parts: the build's check of which
    parts are stored, and the commit's check that they still are, each list the parts folder once."""
    root = str(tmp_path / "store")
    publish_constructed(_local(), root, without_test)
    counting = CountingLocalFileSystem(f"{root}/{keys.parts_dir('demo')}")
    nightly = publish_constructed(counting, root, new_batch_with_the_test_image, run_id="run-2")
    reused = set(nightly.published.marker["parts"]) - set(nightly.parts_written)
    assert len(reused) == 4 and counting.listings == 2
    assert not [path for path in counting.infos if path.rsplit("/", 1)[-1] in reused]


def test_a_version_fetched_or_packed_is_the_release_built_as_one_zip(tmp_path):
    fs = _local()
    parted = publish_constructed(fs, str(tmp_path / "parted"))
    single = publish_constructed(fs, str(tmp_path / "single"), part_bytes=ONE_ZIP)
    assert single.published.marker["parts"] == {} and len(parted.published.marker["parts"]) == 6
    assert parted.contents.version == single.contents.version
    one_zip = Path(tmp_path / "single" / single.published.prefix / keys.archive_name("demo", single.published.version))

    packed = pack_release(fs, folder_of(str(tmp_path / "parted"), parted.published), tmp_path / "packed.zip")
    assert packed.verification.problems == [] and packed.archives == 7
    with zipfile.ZipFile(one_zip) as whole, zipfile.ZipFile(tmp_path / "packed.zip") as repacked:
        assert repacked.namelist() == whole.namelist()
        assert all(repacked.read(name) == whole.read(name) for name in whole.namelist())
        assert [i.compress_type for i in repacked.infolist()] == [i.compress_type for i in whole.infolist()]

    fetched = fetch_release(fs, folder_of(str(tmp_path / "parted"), parted.published), tmp_path / "dataset")
    assert fetched.verification.problems == [] and fetched.files == len(zipfile.ZipFile(one_zip).namelist())
    with zipfile.ZipFile(one_zip) as whole:
        unzipped = {p.relative_to(tmp_path / "dataset").as_posix(): p.read_bytes()
                    for p in (tmp_path / "dataset").rglob("*") if p.is_file()}
        assert unzipped == {name: whole.read(name) for name in whole.namelist()}
    with pytest.raises(FetchRefused, match="exists and is not an empty folder"):
        fetch_release(fs, folder_of(str(tmp_path / "parted"), parted.published), tmp_path / "dataset")


def test_verify_and_fetch_name_a_damaged_or_missing_part(tmp_path):
    fs, root = _local(), str(tmp_path / "store")
    published = publish_constructed(fs, root).published
    image_part, other = sorted(name for name, data in parts_stored(root).items() if names_in(data)[0].startswith("images/"))[:2]
    damaged = Path(root) / keys.release_part("demo", image_part)
    data = bytearray(damaged.read_bytes())
    data[40] ^= 0x01  # inside the image's bytes: the ZIP still opens
    damaged.write_bytes(bytes(data))
    (Path(root) / keys.release_part("demo", other)).unlink()
    problems = [f"{p.member}: {p.problem}" for p in verify_release_folder(fs, folder_of(root, published)).problems]
    assert f"parts/{image_part}: SHA-256 is {hashlib.sha256(data).hexdigest()}, _RELEASE.json says " \
           f"{published.marker['parts'][image_part]['sha256']}: the object changed after it was published; restore " \
           f"it from a copy that matches" in problems
    assert f"parts/{other}: listed in _RELEASE.json but missing" in problems
    with pytest.raises(FetchRefused, match=f"parts/{image_part}: SHA-256 is "):
        fetch_release(fs, folder_of(root, published), tmp_path / "dataset")
    assert not (tmp_path / "dataset").exists() and [p.name for p in tmp_path.iterdir()] == ["store"]


def test_an_object_under_a_parts_name_that_holds_other_files_is_refused_not_overwritten(tmp_path):
    fs, root = _local(), str(tmp_path / "store")
    publish_constructed(fs, str(tmp_path / "elsewhere"))
    stolen = parts_stored(str(tmp_path / "elsewhere"))
    name, wrong = sorted(stolen)[0], stolen[sorted(stolen)[1]]
    planted = Path(root) / keys.release_part("demo", name)
    planted.parent.mkdir(parents=True)
    planted.write_bytes(wrong)
    with pytest.raises(PartCorrupt, match=f"{name}: holds other files than its name promises"):
        publish_constructed(fs, root)
    assert planted.read_bytes() == wrong and list_releases(fs, root, "demo") == []


def test_a_part_deleted_between_the_build_and_the_commit_stops_the_commit(tmp_path):
    """A part the new version reuses goes after the build found it (retired by gc, or by hand): the check
    after the claim sees it, the claim is given up and no version lacks a part."""
    root = str(tmp_path / "store")
    first = publish_constructed(_local(), root, without_test)
    reused = sorted(first.published.marker["parts"])[0]

    def delete_the_part() -> None:
        (Path(root) / keys.release_part("demo", reused)).unlink()

    gated = GatedLocalFileSystem(Gate(lambda key: f"/{CLAIMS_DIR}/" in key, delete_the_part))
    with pytest.raises(PartMissing, match=f"{reused}: the new version uses this part, but it is gone"):
        publish_constructed(gated, root, new_batch_with_the_test_image, run_id="run-2")
    assert [m["version"] for m in list_releases(_local(), root, "demo")] == [first.published.version]
    assert (Path(root) / "releases/demo/_claims/2.abandoned.json").exists()
    again = publish_constructed(_local(), root, new_batch_with_the_test_image, run_id="run-3")
    assert reused in again.parts_written and verify_release_folder(_local(), folder_of(root, again.published)).problems == []


def test_gc_keeps_the_rule_deletes_the_rest_and_spares_young_parts(tmp_path):
    fs, root = _local(), str(tmp_path / "store")
    first = publish_constructed(fs, root)
    resplit = publish_constructed(fs, root, val_moved_to_train, run_id="run-2")
    orphan = Path(root) / keys.release_part("demo", "0" * 64 + ".zip")  # a failed publish's part
    orphan.write_bytes(b"PK\x05\x06" + bytes(18))
    only_first = set(first.published.marker["parts"]) - set(resplit.published.marker["parts"])
    assert len(only_first) == 2  # the val image's parts

    dry = collect_garbage(fs, root, "demo", NO_GRACE, dry_run=True)
    assert (dry.retired, sorted(dry.parts_deleted)) == ([first.published.version], sorted({*only_first, orphan.name}))
    assert len(list_releases(fs, root, "demo")) == 2

    young = collect_garbage(fs, root, "demo", Retention(1, (), dt.timedelta(hours=1)))
    assert young.retired == [first.published.version] and young.parts_deleted == []
    assert sorted(young.parts_spared) == sorted({*only_first, orphan.name})
    assert not (Path(root) / first.published.prefix).exists()

    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    done = collect_garbage(fs, root, "demo", Retention(1, (), dt.timedelta(hours=1)), now=later)
    assert sorted(done.parts_deleted) == sorted({*only_first, orphan.name}) and done.retired == []
    assert set(parts_stored(root)) == set(resplit.published.marker["parts"])
    assert verify_release_folder(fs, folder_of(root, resplit.published)).problems == []
    assert [m["version"] for m in list_releases(fs, root, "demo")] == [resplit.published.version]
    claims = sorted(p.name for p in (Path(root) / "releases/demo/_claims").iterdir())
    assert claims == ["1.json", "2.json", "3.abandoned.json", "3.json", "4.abandoned.json", "4.json"]
    after = publish_constructed(fs, root, new_batch_with_the_test_image, run_id="run-3")
    assert after.published.marker["sequence"] == 5 and after.previous_version == resplit.published.version


def test_gc_keeps_latest_and_pinned_versions_whatever_keep_last_says(tmp_path):
    fs, root = _local(), str(tmp_path / "store")
    first = publish_constructed(fs, root, without_test)
    second = publish_constructed(fs, root, new_batch_with_the_test_image, run_id="run-2")
    third = publish_constructed(fs, root, edited_val_mask, run_id="run-3")
    done = collect_garbage(fs, root, "demo", Retention(1, (first.published.version,), dt.timedelta(0)))
    assert (done.kept, done.retired) == ([first.published.version, third.published.version], [second.published.version])
    for kept in (first, third):
        assert verify_release_folder(fs, folder_of(root, kept.published)).problems == []


def legacy_store(tmp_path: Path) -> str:
    shutil.copytree(FIXTURE, tmp_path / "store")
    return str(tmp_path / "store")


def test_a_release_published_as_one_zip_before_parts_still_verifies_fetches_and_packs(tmp_path):
    fs, root = _local(), legacy_store(tmp_path)
    folder = f"{root}/releases/legacy/{LEGACY}"
    marker = orjson.loads(Path(folder, keys.RELEASE_MARKER).read_bytes())
    assert "release_format" not in marker and "parts" not in marker
    checked = verify_release_folder(fs, folder)
    assert checked.problems == [] and checked.parts == 0 and checked.archive.images == 13

    fetched = fetch_release(fs, folder, tmp_path / "dataset")
    archive = Path(folder) / keys.archive_name("legacy", LEGACY)
    with zipfile.ZipFile(archive) as whole:
        assert fetched.files == len(whole.namelist()) and fetched.verification.problems == []
        assert (tmp_path / "dataset" / "meta.json").read_bytes() == whole.read("meta.json")
    packed = pack_release(fs, folder, tmp_path / "legacy.zip")
    assert (tmp_path / "legacy.zip").read_bytes() != b"" and packed.verification.problems == []
    with zipfile.ZipFile(archive) as whole, zipfile.ZipFile(tmp_path / "legacy.zip") as repacked:
        assert {n: repacked.read(n) for n in repacked.namelist()} == {n: whole.read(n) for n in whole.namelist()}


def test_a_release_in_parts_published_after_one_of_format_1_diffs_against_it(tmp_path):
    fs, root = _local(), legacy_store(tmp_path)
    legacy_manifest = pl.read_parquet(Path(root) / f"releases/legacy/{LEGACY}/manifest.parquet")
    published = publish_constructed(fs, root, dataset="legacy")
    assert published.previous_version == LEGACY and published.published.marker["sequence"] == 2
    assert published.diff.counts() == {"added": 3, "removed": legacy_manifest.height, "changed": 0}
    diff = orjson.loads(read_release_file(fs, root, published.published.marker, "diff.json"))
    assert diff["previous_version"] == LEGACY
    assert [m["version"] for m in list_releases(fs, root, "legacy")] == [LEGACY, published.published.version]
    assert verify_release_folder(fs, folder_of(root, published.published)).problems == []
    assert verify_release_folder(fs, f"{root}/releases/legacy/{LEGACY}").problems == []


def item_files(build) -> pl.DataFrame:
    return build.contents.members.filter(pl.col("source").is_not_null())


def test_a_one_zip_nightly_copies_from_the_previous_zip_and_a_damaged_zip_is_not_trusted(tmp_path):
    fs = _local()
    fresh = publish_constructed(fs, str(tmp_path / "fresh"), new_batch_with_the_test_image, part_bytes=ONE_ZIP)
    root = str(tmp_path / "store")
    first = publish_constructed(fs, root, without_test, part_bytes=ONE_ZIP)
    archive = f"{folder_of(root, first.published)}/{keys.archive_name('demo', first.published.version)}"
    earlier = EarlierArchive(fs, root, first.published.marker)
    with zipfile.ZipFile(archive) as stored:
        assert all(earlier.read(name)[0] == stored.read(name) for name in stored.namelist())
    assert earlier.read("images/none.png") is None
    earlier.close()

    nightly = publish_constructed(fs, root, new_batch_with_the_test_image, part_bytes=ONE_ZIP, run_id="run-2")
    assert nightly.contents.version == fresh.contents.version
    assert item_files(nightly).equals(item_files(fresh)), "the same files, as a build making them all"
    assert verify_release_folder(fs, folder_of(root, nightly.published)).problems == []

    second = f"{folder_of(root, nightly.published)}/{keys.archive_name('demo', nightly.published.version)}"
    Path(second).write_bytes(Path(second).read_bytes()[:-100])  # its central directory cut off
    assert EarlierArchive(fs, root, nightly.published.marker).read("images/test/test_000000000000.png") is None
    again = publish_constructed(fs, root, new_batch_with_the_test_image, part_bytes=ONE_ZIP, run_id="run-3")
    assert item_files(again).equals(item_files(fresh))
