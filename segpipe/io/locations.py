"""fsspec locations: a URL (local folder or s3://bucket/prefix) turned into a filesystem and a root path."""

from dataclasses import dataclass

import aiohttp
import fsspec
from aiobotocore.httpsession import AIOHTTPSession
from botocore.utils import determine_content_length
from fsspec.core import url_to_fs

CONNECT_TIMEOUT_S = 5.0  # to open a connection to the store
READ_TIMEOUT_S = 30.0  # of silence within one request: a paused or hung server fails the request after it
REQUEST_ATTEMPTS = 3  # per request, by botocore, before the error reaches the step's retry policy
SLOWEST_UPLOAD_BYTES_PER_S = 256 * 1024  # a request's body taking longer than this rate is a stalled store


@dataclass(frozen=True)
class RequestLimits:
    """How long one S3 request may wait, and how often botocore tries it, so a store that stops
    answering fails the request (and the step retries) instead of hanging the run."""

    connect_timeout_s: float = CONNECT_TIMEOUT_S
    read_timeout_s: float = READ_TIMEOUT_S
    attempts: int = REQUEST_ATTEMPTS


class UploadBoundedHTTPSession(AIOHTTPSession):
    """aiobotocore's HTTP session, with the bound it lacks on a request that sends a body.

    The read timeout counts silence while an answer is read, not the wait for the server to take
    the body: a PUT to a paused store waits forever, for the "100 Continue" botocore asks for, or
    with its body stuck in a full socket buffer. So a request with a body must end within the read
    timeout plus its size at SLOWEST_UPLOAD_BYTES_PER_S; a GET is bounded by the read timeout alone.
    """

    def _get_request_timeout(self, request) -> aiohttp.ClientTimeout | None:
        timeout = super()._get_request_timeout(request) or self._timeout
        size = determine_content_length(request.body) if request.body is not None else None
        if not size or timeout.sock_read is None:
            return super()._get_request_timeout(request)
        return aiohttp.ClientTimeout(total=timeout.sock_read + size / SLOWEST_UPLOAD_BYTES_PER_S,
                                     sock_connect=timeout.sock_connect, sock_read=timeout.sock_read)


def s3_options(endpoint_url: str | None, limits: RequestLimits) -> dict:
    """s3fs storage options: the endpoint (SeaweedFS, MinIO) and botocore's timeouts and retries."""
    options: dict = {"config_kwargs": {
        "connect_timeout": limits.connect_timeout_s, "read_timeout": limits.read_timeout_s,
        # total_max_attempts counts the first request; botocore reads a client's max_attempts as retries (one more)
        "retries": {"total_max_attempts": limits.attempts, "mode": "standard"},
        "http_session_cls": UploadBoundedHTTPSession}}
    if endpoint_url:
        options["client_kwargs"] = {"endpoint_url": endpoint_url}
    return options


def without_s3fs_retries(fs: fsspec.AbstractFileSystem) -> fsspec.AbstractFileSystem:
    """botocore already retries each request (s3_options); s3fs's own loop (5 tries) would multiply the wait."""
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else fs.protocol
    if "s3" in protocols:
        fs.retries = 1
    return fs


def open_location(url: str, endpoint_url: str | None = None,
                  limits: RequestLimits = RequestLimits()) -> tuple[fsspec.AbstractFileSystem, str]:
    """Local folders create parent directories on write; S3 takes an optional endpoint and the request limits."""
    protocol = url.split("://", 1)[0] if "://" in url else "file"
    options: dict = {}
    if protocol in ("file", "local"):
        options["auto_mkdir"] = True
    elif protocol in ("s3", "s3a"):
        options = s3_options(endpoint_url, limits)
    fs, root = url_to_fs(url, **options)
    return without_s3fs_retries(fs), root.rstrip("/")
