"""The object store resource: every mask, fused mask and release goes through it, local or S3."""

import dagster as dg
import fsspec

from segpipe.io.locations import open_location


class ObjectStore(dg.ConfigurableResource):
    """A folder or bucket prefix for artefacts, addressed by keys like `masks/<taxonomy>/<batch>/<entry>.png`."""

    root: str
    endpoint_url: str | None = None

    def location(self) -> tuple[fsspec.AbstractFileSystem, str]:
        return open_location(self.root, self.endpoint_url)

    def url(self, key: str) -> str:
        return f"{self.root.rstrip('/')}/{key}"

    def write_bytes(self, key: str, data: bytes) -> str:
        fs, root = self.location()
        fs.pipe_file(f"{root}/{key}", data)
        return key

    def read_bytes(self, key: str) -> bytes:
        fs, root = self.location()
        return fs.cat_file(f"{root}/{key}")


class LandingZone(dg.ConfigurableResource):
    """Where annotation batches arrive: one folder per batch, ready once its batch.json exists."""

    root: str
    endpoint_url: str | None = None

    def location(self) -> tuple[fsspec.AbstractFileSystem, str]:
        return open_location(self.root, self.endpoint_url)

    def read_bytes(self, uri: str) -> bytes:
        fs, _ = self.location()
        return fs.cat_file(uri)
