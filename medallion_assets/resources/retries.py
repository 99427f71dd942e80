"""Step retries with exponential backoff for transient failures: a source or store that cannot be
reached (PostgreSQL, S3/MinIO, Kafka restarting) in a run the automation started.

Why step retries raised as `dg.RetryRequested` and not Dagster's other two mechanisms:
- a job's `RetryPolicy` retries every exception of a step, a data bug as much as an outage; only
  code that sees the exception can tell the two apart, and it says so by raising RetryRequested;
- run retries (`dagster/max_retries`, `run_retries: enabled` in dagster.yaml) relaunch the whole run
  at once, without any wait (an outage is still there a second later) and cannot tell a database
  that is down from a failed blocking check (both are a step failure).
A failed blocking check is never retried: Dagster raises it (DagsterAssetCheckFailedError) after
the step's code, outside the code this wraps. A retried stream step restarts from its checkpoint,
which is what makes Structured Streaming exactly-once: nothing is read or written twice.
Only runs tagged TRANSIENT_RETRIES_TAG retry (the automation tags its run requests): a person's run
or `medallion build` in a terminal fails at once with the error, as before.
"""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import dagster as dg

from medallion_assets.tags import TRANSIENT_RETRIES_TAG

MAX_RETRIES = 3
FIRST_WAIT_SECONDS = 30.0  # then 60, 120: about 3.5 minutes for a database or MinIO to restart
RETRY_TAGS = {TRANSIENT_RETRIES_TAG: str(MAX_RETRIES)}  # what the automation puts on its runs

# Our resources' errors (SourceUnavailableError, LakeError, KafkaError) keep the first line of the
# driver's message: these say the other side is not there (now), so waiting may help.
UNREACHABLE = (
    "cannot connect",
    "cannot reach",
    "connection refused",
    "connection reset",
    "connection timed out",
    "timed out",
    "timeout",
    "unknownhostexception",
    "name or service not known",
    "temporary failure in name resolution",
    "unable to execute http request",
    "service unavailable",
    "slowdown",
    "broker transport failure",
    "all brokers down",
)
# ...but not when it answered no: waiting does not fix a password or a key.
REFUSED = (
    "password authentication failed",
    "403",
    "forbidden",
    "access denied",
    "invalidaccesskeyid",
    "signaturedoesnotmatch",
)


def is_transient(exc: BaseException) -> bool:
    """An error a later attempt may not meet: the source or store could not be reached."""
    if not isinstance(exc, (RuntimeError, OSError)):  # our resources' errors, sockets, timeouts
        return False
    text = str(exc).lower()
    return any(word in text for word in UNREACHABLE) and not any(word in text for word in REFUSED)


def backoff_seconds(previous_attempts: int) -> float:
    """Exponential backoff: 30 s before the first retry, 60 s before the second, 120 s..."""
    return FIRST_WAIT_SECONDS * 2**previous_attempts


@contextmanager
def retry_when_unreachable(tags: Mapping[str, str], previous_attempts: int) -> Iterator[None]:
    """Around a step's work (an asset's body, an IO manager's read or write): a transient error in
    a run that allows retries becomes a RetryRequested with its backoff; anything else is raised."""
    try:
        yield
    except Exception as exc:
        retries = int(tags.get(TRANSIENT_RETRIES_TAG, "0") or 0)
        if retries and is_transient(exc):
            raise dg.RetryRequested(
                max_retries=retries, seconds_to_wait=backoff_seconds(previous_attempts)
            ) from exc
        raise
