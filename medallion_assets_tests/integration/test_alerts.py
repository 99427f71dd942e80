"""Run alerts: a real failed run of the pipeline reaches a webhook on loopback as one message a
person can act on (run, failed step, error, link); success alerts only when asked. (A webhook that
is down never raises: unit/test_alert_webhook.py.)"""

import datetime as dt
from collections.abc import Iterator

import dagster as dg
import pytest

from medallion_assets.automation.alerts import alert_on_run_failure, alert_on_run_success
from medallion_assets.build import build
from medallion_assets.definitions import code_location
from medallion_assets.resources.webhook import AlertWebhook
from medallion_assets_tests.helpers import Webhook


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


@dg.asset
def succeeding() -> int:
    return 1


def failed_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> tuple[dg.DagsterInstance, dg.DagsterRun, dg.DagsterEvent]:
    """A real run of the pipeline that fails: bronze with its source database down."""
    monkeypatch.setenv("MEDALLION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDALLION_SOURCE_URL", "postgresql://etl:db-password@127.0.0.1:1/olist")
    instance = dg.DagsterInstance.ephemeral()
    day = dt.date(2017, 1, 1)
    summary = build(code_location(), "key:bronze/orders", day, day, echo=lambda _: None, instance=instance)
    assert not summary.success
    run = instance.get_run_by_id(summary.runs[0])
    assert run is not None
    failure = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records[0]
    return instance, run, failure.event_log_entry.dagster_event


def test_a_failed_run_reaches_the_webhook(
    webhook: Webhook, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    instance, run, event = failed_run(monkeypatch, tmp_path)
    context = dg.build_run_status_sensor_context(
        sensor_name="alert_on_run_failure",
        dagster_event=event,
        dagster_instance=instance,
        dagster_run=run,
        resources={"alert_webhook": AlertWebhook(url=webhook.url, ui_url="http://dagster.example:3000/")},
    ).for_run_failure()
    alert_on_run_failure(context)

    assert len(webhook.received) == 1
    body = webhook.received[0]["body"]
    assert body["text"] == body["content"]  # Slack reads `text`, Discord `content`
    text = body["text"]
    assert text.startswith(f"Dagster run FAILED: {run.job_name} ({run.run_id[:8]})")
    assert "- step bronze__orders: " in text and "127.0.0.1:1" in text  # the step and why
    assert text.endswith(f"http://dagster.example:3000/runs/{run.run_id}")
    assert "db-password" not in text  # the source's password never leaves


def test_success_alerts_only_when_asked(webhook: Webhook, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDALLION_ALERT_ON_SUCCESS", raising=False)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([succeeding], instance=instance)
    assert result.success

    def evaluate(webhook_resource: AlertWebhook) -> None:
        alert_on_run_success(
            dg.build_run_status_sensor_context(
                sensor_name="alert_on_run_success",
                dagster_event=result.get_run_success_event(),
                dagster_instance=instance,
                dagster_run=result.dagster_run,
                resources={"alert_webhook": webhook_resource},
            )
        )

    evaluate(AlertWebhook(url=webhook.url))
    assert webhook.received == []  # off by default
    evaluate(AlertWebhook(url=webhook.url, on_success=True))
    assert webhook.received[0]["body"]["text"].startswith("Dagster run succeeded")
