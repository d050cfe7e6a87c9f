"""fsspec locations: a URL (local folder or s3://bucket/prefix) turned into a filesystem and a root path."""

import fsspec
from fsspec.core import url_to_fs


def open_location(url: str, endpoint_url: str | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """Local folders create parent directories on write; S3 takes an optional endpoint (SeaweedFS, MinIO)."""
    protocol = url.split("://", 1)[0] if "://" in url else "file"
    options: dict = {}
    if protocol in ("file", "local"):
        options["auto_mkdir"] = True
    elif protocol in ("s3", "s3a") and endpoint_url:
        options["client_kwargs"] = {"endpoint_url": endpoint_url}
    fs, root = url_to_fs(url, **options)
    return fs, root.rstrip("/")
