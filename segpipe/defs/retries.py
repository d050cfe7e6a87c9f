"""Step retries for every step that touches the object store. Only what can go away is retried (a
timeout, a dropped or refused connection, a 5xx, SlowDown, a pointer moved under us:
segpipe/io/transient_errors.py). Anything else fails the step at once as a Failure that skips the
retry policy: a decision (an invalid config or infeasible spec, a store without create-only writes,
a release version someone else holds, a published file that no longer matches its marker, a stray
claim), a damaged artefact, and resource errors (access denied, no such bucket, a full disk, no
memory), which fail the same way on every try."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from segpipe.core.shared.artefacts import DamagedArtefact
from segpipe.core.shared.errors import ConfigError, InputError
from segpipe.io.transient_errors import is_transient
from segpipe.store.claims import ClaimUnreadable
from segpipe.store.create_only import CreateOnlyUnsupported
from segpipe.store.probe import StoreLacksCreateOnly
from segpipe.store.publish import ReleaseConflictError
from segpipe.store.release_read import ReleaseFileCorrupt

OBJECT_STORE_RETRY = dg.RetryPolicy(max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)

NOT_RETRIED = (ConfigError, InputError, ReleaseConflictError, CreateOnlyUnsupported, StoreLacksCreateOnly,
             ReleaseFileCorrupt, ClaimUnreadable, DamagedArtefact, MemoryError)


@contextmanager
def only_transient_retried() -> Iterator[None]:
    """Lets a transient error through to the step's retry policy; turns any other into a Failure
    that is not retried."""
    try:
        yield
    except Exception as exc:
        if is_transient(exc, NOT_RETRIED):
            raise
        raise dg.Failure(description=f"{type(exc).__name__}: {exc}", allow_retries=False) from exc
