"""Building a release straight into the store and publishing it: what `dataset_release` does, with no Dagster.

The archive is built into this run's staging dir (core's build_release), beside it the manifest,
the ledger and the diff against the latest release; then the publishing protocol (publish.py)
verifies the staged files and commits them as the next version, unless the newest release
already holds this content.
"""

import io
from dataclasses import dataclass

import fsspec
import polars as pl

from segpipe.core.release.build import ReleaseContents, ReleaseInputs, build_release
from segpipe.core.release.diff import ReleaseDiff, diff_against, diff_files
from segpipe.core.release.verify import archive_problems
from segpipe.store.publish import PublishedRelease, latest_release_file, open_staging, publish_release

STAGED_ARCHIVE = "dataset.zip"


@dataclass(frozen=True)
class PublishedBuild:
    contents: ReleaseContents
    published: PublishedRelease
    previous_version: str | None  # the release the diff is against; None before the first
    diff: ReleaseDiff


def build_and_publish(fs: fsspec.AbstractFileSystem, root: str, inputs: ReleaseInputs) -> PublishedBuild:
    """Build the release of `inputs` in staging and publish it under `<root>/releases/<dataset>/`."""
    with open_staging(fs, root, inputs.dataset_name) as staging:
        with staging.open(STAGED_ARCHIVE) as out:
            contents = build_release(inputs, out)
        staging.put_bytes("manifest.parquet", _parquet(contents.manifest))
        staging.put_bytes("ledger.parquet", _parquet(contents.ledger))
        previous_version, previous_bytes = latest_release_file(fs, root, inputs.dataset_name, "manifest.parquet")
        previous = None if previous_bytes is None else pl.read_parquet(io.BytesIO(previous_bytes))
        diff = diff_against(previous, contents.manifest)
        for name, data in diff_files(diff, previous_version).items():
            staging.put_bytes(name, data)
        published = publish_release(
            fs, root, inputs.dataset_name, staging, STAGED_ARCHIVE,
            {"counts": contents.counts, "run_id": inputs.stamp.run_id}, content_digest=contents.version,
            taxonomy_version=inputs.taxonomy.taxonomy_version, check_archive=archive_problems)
    return PublishedBuild(contents, published, previous_version, diff)


def _parquet(table: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    table.write_parquet(buffer)
    return buffer.getvalue()
