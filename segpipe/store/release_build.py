"""Building a release straight into the store and publishing it: what `dataset_release` does, with no Dagster.

The archive is built into this run's staging dir (core's build_release), beside it the manifest
and the ledger; then the publishing protocol (publish.py) verifies the staged files, claims the
next sequence and hands back the release before it, whose manifest (checked against its marker)
the diff is against, and commits the lot as the next version, unless the newest release already
holds this content.
"""

import io
from dataclasses import dataclass

import fsspec
import polars as pl

from segpipe.core.release.build import ReleaseContents, ReleaseInputs, build_release
from segpipe.core.release.diff import ReleaseDiff, diff_against, diff_files
from segpipe.core.release.verify import archive_problems
from segpipe.store.publish import PublishedRelease, open_staging, publish_release
from segpipe.store.release_read import read_release_file
from segpipe.store.staging import ReleaseStaging
from segpipe.store import keys

STAGED_ARCHIVE = "dataset.zip"


@dataclass(frozen=True)
class PublishedBuild:
    contents: ReleaseContents
    published: PublishedRelease
    previous_version: str | None  # the release the diff is against; None before the first
    diff: ReleaseDiff


def build_and_publish(fs: fsspec.AbstractFileSystem, root: str, inputs: ReleaseInputs) -> PublishedBuild:
    """Build the release of `inputs` in staging and publish it under `<root>/releases/<dataset>/`."""
    compared: list[tuple[str | None, ReleaseDiff]] = []
    with open_staging(fs, root, inputs.dataset_name) as staging:
        with staging.open(STAGED_ARCHIVE) as out:
            contents = build_release(inputs, out)
        staging.put_bytes(keys.RELEASE_MANIFEST, _parquet(contents.manifest))
        staging.put_bytes(keys.RELEASE_LEDGER, _parquet(contents.ledger))
        published = publish_release(
            fs, root, inputs.dataset_name, staging, STAGED_ARCHIVE,
            {"counts": contents.counts, "run_id": inputs.stamp.run_id}, content_digest=contents.version,
            taxonomy_version=inputs.taxonomy.taxonomy_version, check_archive=archive_problems,
            compare_with=lambda previous: compared.append(_stage_diff(fs, root, staging, contents.manifest, previous)))
    [(previous_version, diff)] = compared
    return PublishedBuild(contents, published, previous_version, diff)


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
