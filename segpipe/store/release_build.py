"""Building a release straight into the store and publishing it: what `dataset_release` does, with no Dagster.

The version's archive is built into this run's staging dir (core's build_release), beside it the
manifest, the ledger and the member index; the shared parts the release needs and the store lacks
are written into a staging dir of their own (release_parts.py), and the files the newest release's
member index knows are not made again (in a release of one ZIP, copied from the newest release's
ZIP when they hash as its index says: EarlierArchive). Every staged file is read back; the release is then checked
as `segpipe verify` checks one (its version's ZIP and all its parts read together, the files this
run wrote hashed against SHA256SUMS, a sample of masks decoded), the new parts are created under
their names, and the publishing protocol (publish.py) claims the next sequence, hands back the
release before it, whose manifest (checked against its marker) the diff is against, and commits the
lot as the next version, unless the newest release already holds this content.
"""

import contextlib
import datetime as dt
import io
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

import fsspec
import polars as pl

from segpipe.core.release import layout
from segpipe.core.release.build import ReleaseContents, ReleaseInputs, build_release
from segpipe.core.release.diff import ReleaseDiff, diff_against, diff_files
from segpipe.core.release.parts import PartPlanner
from segpipe.core.release.verify import PartedFiles, verify_release
from segpipe.store import keys
from segpipe.store.publish import PublishedRelease, open_staging, publish_release
from segpipe.store.memo_prune import prune_unused_memos
from segpipe.store.release_parts import EarlierArchive, StoreShelf, previous_members
from segpipe.store.release_read import read_release_file
from segpipe.store.staging import ReleaseStaging, StagedReleaseCorrupt

STAGED_ARCHIVE = "dataset.zip"
STAGED_MASK_SAMPLE = 16
PART_READERS = 8  # ZIP directories read at once by the staged check


@dataclass(frozen=True)
class PublishedBuild:
    contents: ReleaseContents
    published: PublishedRelease
    previous_version: str | None  # the release the diff is against; None before the first
    diff: ReleaseDiff
    parts_written: list[str]  # the shared parts this build created (none when they all existed)
    memos_pruned: list[str]  # the deflated segments and COCO fragments it did not use, deleted (memo_prune.py)


def build_and_publish(fs: fsspec.AbstractFileSystem, root: str, inputs: ReleaseInputs) -> PublishedBuild:
    """Build the release of `inputs` in staging and publish it under `<root>/releases/<dataset>/`."""
    return publish_built(fs, root, inputs.dataset_name, inputs.stamp.run_id, inputs.taxonomy.taxonomy_version,
                         inputs.part_bytes, lambda out, parts: build_release(inputs, out, parts))


def publish_built(fs: fsspec.AbstractFileSystem, root: str, dataset: str, run_id: str, taxonomy_version: str,
                  part_bytes: int, build: Callable[[BinaryIO, PartPlanner], ReleaseContents]) -> PublishedBuild:
    """Publish the release `build` writes (its version's ZIP into the stream, its items' files as the
    planner places them) as the next version of `dataset`, parts of `part_bytes`."""
    compared: list[tuple[str | None, ReleaseDiff]] = []
    with open_staging(fs, root, dataset) as staging, \
            ReleaseStaging(fs, f"{root}/{keys.releases_dir(dataset)}", dt.datetime.now(dt.UTC)) as part_staging:
        newest, known = previous_members(fs, root, dataset)
        shelf = StoreShelf(fs, root, dataset, part_staging, (newest or {}).get("parts", {}))
        with staging.open(STAGED_ARCHIVE) as out, contextlib.closing(EarlierArchive(fs, root, newest)) as earlier:
            contents = build(out, PartPlanner(part_bytes, known, shelf, earlier.read))
        staging.put_bytes(keys.RELEASE_MANIFEST, _parquet(contents.manifest))
        staging.put_bytes(keys.RELEASE_LEDGER, _parquet(contents.ledger))
        staging.put_bytes(keys.RELEASE_MEMBERS, _parquet(contents.members))
        staging.verify(_checked_below)
        part_staging.verify(_checked_below)
        _check_staged_release(fs, staging, shelf, contents)
        written = shelf.place()
        used = contents.parts.parts if contents.parts is not None else []
        published = publish_release(
            fs, root, dataset, staging, STAGED_ARCHIVE,
            {"counts": contents.counts, "run_id": run_id, "release_format": layout.RELEASE_FORMAT},
            content_digest=contents.version, taxonomy_version=taxonomy_version,
            compare_with=lambda previous: compared.append(_stage_diff(fs, root, staging, contents.manifest, previous)),
            parts={name: shelf.used[name] for name in used})
    [(previous_version, diff)] = compared
    now = dt.datetime.now(dt.UTC)
    pruned = [*prune_unused_memos(fs, root, keys.deflated_segments_dir(dataset), contents.deflated_segments, now),
              *prune_unused_memos(fs, root, keys.COCO_FRAGMENTS_DIR, contents.coco_fragments, now)]
    return PublishedBuild(contents, published, previous_version, diff, written, pruned)


def _check_staged_release(fs: fsspec.AbstractFileSystem, staging: ReleaseStaging, shelf: StoreShelf,
                          contents: ReleaseContents) -> None:
    """The release as `segpipe verify` checks it, read from the staged version's ZIP and its parts
    (the staged new ones, the stored others): every file this run wrote against SHA256SUMS, the
    rest for being there, the manifest and meta.json, a sample of masks decoded."""
    used = contents.parts.parts if contents.parts is not None else []
    fresh = {STAGED_ARCHIVE, *(name for name in used if name in shelf.staging.sha256)}
    paths = {STAGED_ARCHIVE: f"{staging.path}/{STAGED_ARCHIVE}",
             **{name: f"{shelf.staging.path}/{name}" if name in fresh else shelf.key(name) for name in used}}
    with contextlib.ExitStack() as opened:
        files = PartedFiles(_open_archives(fs, paths, opened))
        result = verify_release(files, STAGED_MASK_SAMPLE, hashed=lambda member: files.holder(member) in fresh)
    problems = [f"{p.member}: {p.problem}" for p in result.problems]
    problems += [f"{member}: in two parts" for member in files.duplicates]
    if problems:
        raise StagedReleaseCorrupt(f"{staging.path}/{STAGED_ARCHIVE}: " + "; ".join(problems[:5]))


def _open_archives(fs: fsspec.AbstractFileSystem, paths: dict[str, str],
                   opened: contextlib.ExitStack) -> list[tuple[str, zipfile.ZipFile]]:
    """Each ZIP of `paths` (label -> path) opened, its directory read, and closed with `opened`. The
    directories are read PART_READERS at a time: on S3 each is a few round trips, and a version has
    hundreds of parts, so one after the other they would be most of a nightly's publish."""
    def open_zip(path: str) -> tuple[BinaryIO, zipfile.ZipFile]:
        stream = fs.open(path, "rb")
        try:
            return stream, zipfile.ZipFile(stream)
        except BaseException:
            stream.close()
            raise

    with ThreadPoolExecutor(PART_READERS, thread_name_prefix="segpipe-staged-check") as pool:
        pending = {label: pool.submit(open_zip, path) for label, path in paths.items()}
    found, failures = [], []
    for label, future in pending.items():
        if future.exception() is not None:
            failures.append(future.exception())
            continue
        stream, archive = future.result()
        opened.enter_context(stream)
        opened.enter_context(archive)
        found.append((label, archive))
    if failures:
        raise failures[0]
    return found


def _checked_below(_archive: zipfile.ZipFile) -> list[str]:
    """A staged ZIP's members are hashed by _check_staged_release, which reads each once (and with it
    its CRC): nothing to check on the ZIP alone."""
    return []


def _stage_diff(fs: fsspec.AbstractFileSystem, root: str, staging: ReleaseStaging, manifest: pl.DataFrame,
                previous: dict | None) -> tuple[str | None, ReleaseDiff]:
    """The diff against `previous`'s manifest, read back only if it still holds the bytes its marker recorded."""
    before = None if previous is None else pl.read_parquet(io.BytesIO(
        read_release_file(fs, root, previous, keys.RELEASE_MANIFEST)))
    previous_version = None if previous is None else previous["version"]
    diff = diff_against(before, manifest)
    for name, data in diff_files(diff, previous_version).items():
        staging.put_bytes(name, data)
    return previous_version, diff


def _parquet(table: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    table.write_parquet(buffer)
    return buffer.getvalue()
