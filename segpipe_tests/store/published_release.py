"""A real release (the constructed release's ZIP and its manifest) published through the protocol, for
tests that read a release folder back: `segpipe verify` on a folder, locally and on SeaweedFS."""

import datetime as dt

import fsspec

from segpipe.core.release.verify import archive_problems
from segpipe.store.keys import RELEASE_MANIFEST
from segpipe.store.publish import PublishedRelease, open_staging, publish_release
from segpipe_tests.core.release.release_fixture import build_release

PUBLISHED = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)


def publish_constructed_release(fs: fsspec.AbstractFileSystem, root: str) -> PublishedRelease:
    built = build_release()
    with built.archive() as archive:
        manifest = archive.read("index.parquet")
    staging = open_staging(fs, root, "demo", PUBLISHED)
    with staging.open("dataset.zip") as out:
        out.write(built.data)
    staging.put_bytes(RELEASE_MANIFEST, manifest)
    return publish_release(fs, root, "demo", staging, "dataset.zip", {"run_id": "run-1"}, content_digest="constructed",
                           taxonomy_version="street-v1-ab12cd34", now=PUBLISHED, check_archive=archive_problems)
