"""Step retries for object-store I/O, which fails transiently (a dropped connection, a 503, SlowDown,
a pointer moved under us). A decision fails the same way every time (an invalid config or infeasible
spec, a store without create-only writes, a release version someone else holds, a 412 on their
marker, a published file that no longer matches its marker, a stray object among the claims): it
is raised as a Failure that skips the retry policy, so the run fails at once and says why."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from segpipe.store.claims import ClaimUnreadable
from segpipe.store.create_only import CreateOnlyUnsupported
from segpipe.store.probe import StoreLacksCreateOnly
from segpipe.core.shared.errors import ConfigError, InputError
from segpipe.store.publish import ReleaseConflictError
from segpipe.store.release_read import ReleaseFileCorrupt

OBJECT_STORE_RETRY = dg.RetryPolicy(max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)

DECISIONS = (ConfigError, InputError, ReleaseConflictError, CreateOnlyUnsupported, StoreLacksCreateOnly,
             ReleaseFileCorrupt, ClaimUnreadable)


@contextmanager
def decisions_not_retried() -> Iterator[None]:
    try:
        yield
    except DECISIONS as exc:
        raise dg.Failure(description=f"{type(exc).__name__}: {exc}", allow_retries=False) from exc
