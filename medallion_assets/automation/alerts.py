"""Run alerts: a failed (and optionally a succeeded) run is posted to a chat webhook within seconds.

The message names the run, the job, the failed steps with their errors and links to the run in the
UI. The payload carries the text as both `text` (Slack) and `content` (Discord), so one URL of either
kind works. Delivery is best effort: a webhook that is down or refuses is logged, never raised, so
an alert can never fail the daemon or hide the run's own failure. The URL embeds a token: it comes
only from the environment (MEDALLION_ALERT_WEBHOOK_URL) and is never logged.
"""

# No `from __future__ import annotations`: Dagster inspects the context annotation at definition time.
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Sequence
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


ALERT_SENSORS = [alert_on_run_failure, alert_on_run_success]
