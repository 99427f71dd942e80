"""Alerts: a failed (and optionally a succeeded) run, a failed asset check of ERROR severity, and an
asset that missed its freshness deadline are posted to a chat webhook within seconds.

The message names the run, the job, the failed steps with their errors and links to the run in the
UI. The payload carries the text as both `text` (Slack) and `content` (Discord), so one URL of either
kind works. Delivery is best effort: a webhook that is down or refuses is logged, never raised, so
an alert can never fail the daemon or hide the run's own failure. The URL embeds a token: it comes
only from the environment (MEDALLION_ALERT_WEBHOOK_URL) and is never logged.
"""

# No `from __future__ import annotations`: Dagster inspects the context annotation at definition time.
import datetime as dt
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

import dagster as dg

from medallion_assets.progress import root_cause
from medallion_assets.resources.webhook import AlertWebhook

logger = logging.getLogger(__name__)
MAX_ERROR_CHARS = 300  # per failed step: chat messages stay short, the UI has the whole trace
DISCORD_LIMIT = 2000  # Discord refuses longer content


def alert_text(
    status: str, run_id: str, job_name: str, failures: Sequence[tuple[str, str]], ui_url: str
) -> str:
    """One message: what happened to which run, which steps failed and why, where to look."""
    lines = [f"Dagster run {status}: {job_name} ({run_id[:8]})"]
    for step, error in failures:
        first_line = error.strip().splitlines()[0] if error.strip() else "no error message"
        lines.append(f"- step {step}: {first_line[:MAX_ERROR_CHARS]}")
    lines.append(f"{ui_url.rstrip('/')}/runs/{run_id}")
    text = "\n".join(lines)
    return text if len(text) <= DISCORD_LIMIT else text[: DISCORD_LIMIT - 1] + "…"


def post_alert(url: str, text: str, timeout: float = 5.0) -> bool:
    """POST the message; True when the webhook accepted it. Failures are logged without the URL."""
    body = json.dumps({"text": text, "content": text}).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    where = urlsplit(url).netloc  # the host only: the path holds the token
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return 200 <= response.status < 300
    except urllib.error.HTTPError as exc:
        logger.warning("alert webhook at %s refused the alert: HTTP %s", where, exc.code)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        logger.warning("alert webhook at %s unreachable: %s", where, reason)
    return False


def _send(
    webhook: AlertWebhook, status: str, run: dg.DagsterRun, failures: Sequence[tuple[str, str]]
) -> bool | None:
    url = webhook.target()
    if url is None:
        return None  # alerts are off
    return post_alert(url, alert_text(status, run.run_id, run.job_name, failures, webhook.run_link_base()))


@dg.run_failure_sensor(
    name="alert_on_run_failure",
    monitor_all_code_locations=True,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=5,
)
def alert_on_run_failure(context: dg.RunFailureSensorContext, alert_webhook: AlertWebhook) -> None:
    failures = [
        (
            event.step_key or "?",
            root_cause(event.event_specific_data.error) if event.event_specific_data else "",
        )
        for event in context.get_step_failure_events()
    ]
    if not failures:  # the run failed outside a step (e.g. it could not start)
        failures = [("run", context.failure_event.message or "")]
    _send(alert_webhook, "FAILED", context.dagster_run, failures)


@dg.run_status_sensor(
    name="alert_on_run_success",
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitor_all_code_locations=True,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=5,
)
def alert_on_run_success(context: dg.RunStatusSensorContext, alert_webhook: AlertWebhook) -> None:
    if alert_webhook.posts_successes():
        _send(alert_webhook, "succeeded", context.dagster_run, [])


# ---------------------------------------------------------------- failed checks of ERROR severity

MAX_METADATA_ENTRIES = 5  # a few of the check's metadata entries; the UI has them all
MAX_METADATA_CHARS = 120


def _short(value: object) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= MAX_METADATA_CHARS else text[: MAX_METADATA_CHARS - 1] + "…"


def check_alert_text(evaluation: dg.AssetCheckEvaluation, run_id: str, ui_url: str) -> str:
    """One failed check: which asset and check, how severe, what its metadata says, the run."""
    what = evaluation.asset_key.to_user_string()
    partition = f" [{evaluation.partition}]" if evaluation.partition else ""
    lines = [f"Asset check FAILED ({evaluation.severity.value}): {what} {evaluation.check_name}{partition}"]
    if evaluation.description and evaluation.description.strip():
        lines.append(_short(evaluation.description.strip().splitlines()[0]))
    for name, value in list(evaluation.metadata.items())[:MAX_METADATA_ENTRIES]:
        lines.append(f"- {name}: {_short(getattr(value, 'value', value))}")
    lines.append(f"{ui_url.rstrip('/')}/runs/{run_id}")
    text = "\n".join(lines)
    return text if len(text) <= DISCORD_LIMIT else text[: DISCORD_LIMIT - 1] + "…"


def error_check_failures(entries: Sequence[dg.EventLogEntry]) -> list[dg.AssetCheckEvaluation]:
    """The evaluations that alert: failed and of ERROR severity (passed and WARN ones do not)."""
    found = []
    for entry in entries:
        event = entry.dagster_event
        if event is None or event.event_type != dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            continue
        evaluation = event.event_specific_data
        if (
            isinstance(evaluation, dg.AssetCheckEvaluation)
            and not evaluation.passed
            and evaluation.severity == dg.AssetCheckSeverity.ERROR
        ):
            found.append(evaluation)
    return found


FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


@dg.sensor(
    name="alert_on_failed_checks",
    description="Posts every failed asset check of ERROR severity (a drift error does not fail its run).",
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def alert_on_failed_checks(
    context: dg.SensorEvaluationContext, alert_webhook: AlertWebhook
) -> dg.SensorResult:
    """Each finished run once (any code location, `medallion build`'s too): its check evaluations.

    The cursor is the last finished run's update time, not an event storage id: on the default
    SQLite instance each run's events live in a file of their own and their ids are per run (only
    materializations and freshness changes are mirrored into the shared index), so "events after id
    N" has no meaning there; a run finishes once, so each of its evaluations alerts once."""
    # First tick: from now on (what failed before the sensor existed was seen then, or never will be).
    after = float(context.cursor) if context.cursor else dt.datetime.now(dt.UTC).timestamp()
    # A run's update time is taken before its status is committed: the last seconds wait a tick.
    settled = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    records = context.instance.get_run_records(
        dg.RunsFilter(
            statuses=FINISHED,
            updated_after=dt.datetime.fromtimestamp(after, dt.UTC),
            updated_before=settled,
        ),
        order_by="update_timestamp",
        ascending=True,
        limit=100,
    )
    url, posted = alert_webhook.target(), 0
    for record in records:
        run_id = record.dagster_run.run_id
        entries = context.instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        for evaluation in error_check_failures(entries):
            if url is not None:  # alerts off: the cursor still moves, nothing piles up
                post_alert(url, check_alert_text(evaluation, run_id, alert_webhook.run_link_base()))
                posted += 1
    cursor = records[-1].update_timestamp.timestamp() if records else after
    return dg.SensorResult(cursor=str(cursor), skip_reason=None if posted else "no failed ERROR check")


# ---------------------------------------------------------------- freshness misses

# Dagster's FreshnessState.FAIL (a str enum that `dagster` does not export at its top level).
STALE = "FAIL"


def stale_alert_text(key: dg.AssetKey, last_materialized: float | None, ui_url: str) -> str:
    """An asset past its freshness deadline: which, since when, where to look."""
    since = (
        dt.datetime.fromtimestamp(last_materialized, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        if last_materialized is not None
        else "never"
    )
    path = "/".join(key.path)
    return (
        f"Asset STALE (missed its freshness deadline): {key.to_user_string()}\n"
        f"- last materialized: {since}\n"
        f"{ui_url.rstrip('/')}/assets/{path}"
    )


def turned_stale(
    changes: Sequence[dg.EventLogRecord], current: Mapping[dg.AssetKey, str]
) -> list[dg.AssetKey]:
    """Assets whose state turned FAIL in these changes and is FAIL still: once each, in order
    (a change the asset has since recovered from, or an old one on a first tick, says nothing now)."""
    keys: list[dg.AssetKey] = []
    for record in changes:
        event = record.event_log_entry.dagster_event
        change = event.event_specific_data if event else None
        if (
            change is not None
            and getattr(change, "new_state", None) == STALE
            and current.get(change.key) == STALE
            and change.key not in keys
        ):
            keys.append(change.key)
    return keys


@dg.sensor(
    name="alert_on_stale_assets",
    description="Posts each asset that misses its freshness deadline (nothing refreshed it in time).",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def alert_on_stale_assets(
    context: dg.SensorEvaluationContext, alert_webhook: AlertWebhook
) -> dg.SensorResult:
    """Reads the freshness state changes the daemon records (FRESHNESS_STATE_CHANGE, runless events
    mirrored in the event log's index on SQLite and PostgreSQL alike, so their storage ids are
    global) after the cursor's storage id; alerts each asset that turned FAIL, once per miss."""
    after = int(context.cursor) if context.cursor else None
    storage = context.instance.event_log_storage
    records = storage.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.FRESHNESS_STATE_CHANGE, after_cursor=after),
        limit=1000,
        ascending=True,
    )
    if not records:
        return dg.SensorResult(cursor=context.cursor, skip_reason="no freshness change")
    keys = [
        change.key
        for record in records
        if (event := record.event_log_entry.dagster_event) and (change := event.event_specific_data)
    ]
    current = {
        key: state.freshness_state
        for key, state in context.instance.get_freshness_state_records(keys).items()
    }
    url = alert_webhook.target()
    stale = turned_stale(records, current)
    for key in stale if url is not None else []:
        last = context.instance.get_latest_materialization_event(key)
        post_alert(
            url, stale_alert_text(key, last.timestamp if last else None, alert_webhook.run_link_base())
        )
    return dg.SensorResult(
        cursor=str(records[-1].storage_id), skip_reason=None if stale and url else "no asset turned stale"
    )


ALERT_SENSORS = [alert_on_run_failure, alert_on_run_success, alert_on_failed_checks, alert_on_stale_assets]
