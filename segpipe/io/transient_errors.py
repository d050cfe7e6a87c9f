"""Which store errors can go away on a second try: timeouts, dropped or refused connections, 5xx and
throttling. Everything else (access denied, no such bucket, a full disk, no memory, a damaged file, a
decision) fails the same way every time, so retrying it only delays the alert by minutes.

`only_transient_retried` applies the rule wherever segpipe's code runs inside a Dagster step: around
each step's code (segpipe/defs/retries.py) and inside the Parquet IO manager, whose errors Dagster
would otherwise hand to the step's RetryPolicy whatever their kind.
"""

import errno
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
import botocore.exceptions
import dagster as dg
from fsspec.exceptions import FSTimeoutError

from segpipe.core.shared.artefacts import DamagedArtefact
from segpipe.core.shared.errors import ConfigError, InputError
from segpipe.store.claims import ClaimUnreadable
from segpipe.store.create_only import CreateOnlyUnsupported
from segpipe.store.pointer import PointerContention
from segpipe.store.probe import StoreLacksCreateOnly
from segpipe.store.publish import ReleaseConflictError
from segpipe.store.release_read import ReleaseFileCorrupt

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
# Decisions and damage: never retried, even with a timeout somewhere in their chain. A decision (an
# invalid config or infeasible spec, a store without create-only writes, a release version someone
# else holds, a published file that no longer matches its marker, a stray claim), a damaged artefact
# or table, and running out of memory fail the same way on every try.
NOT_RETRIED = (ConfigError, InputError, ReleaseConflictError, CreateOnlyUnsupported, StoreLacksCreateOnly,
               ReleaseFileCorrupt, ClaimUnreadable, DamagedArtefact, MemoryError)


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


@contextmanager
def only_transient_retried(where: str | None = None) -> Iterator[None]:
    """Lets a transient error through to the step's retry policy; turns any other into a Failure that
    Dagster does not retry, its description the error (after `where`, what was being done, when
    given)."""
    try:
        yield
    except Exception as exc:
        if is_transient(exc, NOT_RETRIED):
            raise
        cause = f"{type(exc).__name__}: {exc}"
        raise dg.Failure(description=f"{where}: {cause}" if where else cause, allow_retries=False) from exc
