"""The object store and landing zone resources: every read and write goes through fsspec, local or S3."""

import dagster as dg
import fsspec

from segpipe.io.locations import open_location


class FsspecLocation(dg.ConfigurableResource):
    """A folder or `s3://bucket/prefix`, with an optional endpoint for S3-compatible servers."""

    root: str
    endpoint_url: str | None = None

    def location(self) -> tuple[fsspec.AbstractFileSystem, str]:
        return open_location(self.root, self.endpoint_url)

    def url(self, key: str) -> str:
        return f"{self.root.rstrip('/')}/{key}"


class ObjectStore(FsspecLocation):
    """Artefacts addressed by keys like `masks/<taxonomy>/<batch>/<entry>.png` or `releases/<dataset>/<version>/`."""

    def write_bytes(self, key: str, data: bytes) -> str:
        fs, root = self.location()
        fs.pipe_file(f"{root}/{key}", data)
        return key

    def read_bytes(self, key: str) -> bytes:
        fs, root = self.location()
        return fs.cat_file(f"{root}/{key}")


class LandingZone(FsspecLocation):
    """Where annotation batches arrive: one folder per batch, ready once its batch.json exists."""

    def read_bytes(self, uri: str) -> bytes:
        """Read a file by the full path ingestion recorded (`source_uri`)."""
        fs, _ = self.location()
        return fs.cat_file(uri)
