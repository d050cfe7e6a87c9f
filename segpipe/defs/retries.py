"""Step retries for every step that touches the object store. Only what can go away is retried (a
timeout, a dropped or refused connection, a 5xx, SlowDown, a pointer moved under us). Anything else
fails the step at once as a Failure that skips the retry policy: a decision (an invalid config or
infeasible spec, a store without create-only writes, a release version someone else holds, a
published file that no longer matches its marker, a stray claim), a damaged artefact, and resource
errors (access denied, no such bucket, a full disk, no memory), which fail the same way on every try.
The rule and its list of errors never retried are segpipe/io/transient_errors.py's, which the
Parquet IO manager applies to its own errors too."""

import dagster as dg

from segpipe.io.transient_errors import only_transient_retried

OBJECT_STORE_RETRY = dg.RetryPolicy(max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)

__all__ = ["OBJECT_STORE_RETRY", "only_transient_retried"]
