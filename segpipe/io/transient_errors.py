"""Which store errors can go away on a second try: timeouts, dropped or refused connections, 5xx and
throttling. Everything else (access denied, no such bucket, a full disk, no memory, a damaged file, a
decision) fails the same way every time, so retrying it only delays the alert by minutes."""

import errno
from collections.abc import Iterator

import aiohttp
import botocore.exceptions
from fsspec.exceptions import FSTimeoutError

from segpipe.store.pointer import PointerContention

TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    TimeoutError, ConnectionError, FSTimeoutError, PointerContention,
    botocore.exceptions.HTTPClientError,  # read/connect timeouts, endpoint unreachable, reset connections
    botocore.exceptions.ResponseStreamingError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError,
)
TRANSIENT_ERRNOS = frozenset({errno.ETIMEDOUT, errno.ECONNRESET, errno.ECONNREFUSED, errno.ECONNABORTED,
                              errno.EPIPE, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN})
TRANSIENT_CODES = frozenset({"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling",
                             "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"})
MIN_SERVER_ERROR_STATUS = 500
TOO_MANY_REQUESTS = 429


def error_chain(exc: BaseException) -> Iterator[BaseException]:
    """The error, then what it was raised from (`__cause__`) or while handling (`__context__`)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_transient_link(exc: BaseException) -> bool:
    if isinstance(exc, botocore.exceptions.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        code = exc.response.get("Error", {}).get("Code", "")
        return code in TRANSIENT_CODES or status >= MIN_SERVER_ERROR_STATUS or status == TOO_MANY_REQUESTS
    if isinstance(exc, TRANSIENT_TYPES):
        return True
    return isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS


def is_transient(exc: BaseException, permanent: tuple[type[BaseException], ...] = ()) -> bool:
    """True when some link of the chain can go away and none is one of `permanent` (a decision
    wrapped around a timeout is still a decision)."""
    chain = list(error_chain(exc))
    if any(isinstance(link, permanent) for link in chain):
        return False
    return any(_is_transient_link(link) for link in chain)
