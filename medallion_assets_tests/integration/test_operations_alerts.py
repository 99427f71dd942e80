"""The on-call alerts against a real on-disk instance (SQLite, our batched event log, as the platform
writes it) and a real webhook on loopback: a failed ERROR check alerts once, not again on the next
tick; an asset that misses its freshness deadline, as Dagster's own freshness daemon evaluates it,
alerts once. No Spark: tiny assets. (The texts and the rules: unit/test_operations.py.)"""

import asyncio
import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time
from dagster._core.workspace.load_target import PythonFileTarget
from dagster._daemon.freshness import FreshnessDaemon

from medallion_assets.automation.alerts import alert_on_failed_checks, alert_on_stale_assets
from medallion_assets.resources.webhook import AlertWebhook
from medallion_assets_tests.helpers import WEBHOOK_SECRET, Webhook

UI = "http://dagster.example:3000"


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def resources(webhook: Webhook) -> dict[str, AlertWebhook]:
    return {"alert_webhook": AlertWebhook(url=webhook.url, ui_url=UI)}


@dg.asset(
    key=["silver", "ops_orders"],
    check_specs=[
        dg.AssetCheckSpec("row_count_drift", asset=["silver", "ops_orders"]),
        dg.AssetCheckSpec("references_ok", asset=["silver", "ops_orders"]),
    ],
)
def ops_orders():  # a generator: its output, then its two checks
    yield dg.Output(1)
    yield dg.AssetCheckResult(
        check_name="row_count_drift",
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        description="a tenth of the usual rows",
        metadata={"observed": 12, "expected": 480},
    )
    yield dg.AssetCheckResult(check_name="references_ok", passed=True)


def test_a_failed_error_check_alerts_once(booked: dg.DagsterInstance, webhook: Webhook) -> None:
    before = time.time() - 1
    result = dg.materialize([ops_orders], instance=booked)
    assert result.success  # a non-blocking ERROR does not fail its run: only the alert tells
    time.sleep(6)  # the sensor leaves the last 5 s of finished runs to the next tick

    first = alert_on_failed_checks(
        dg.build_sensor_context(instance=booked, cursor=str(before), resources=resources(webhook))
    )
    assert len(webhook.received) == 1
    text = webhook.received[0]["body"]["text"]
    assert text.startswith("Asset check FAILED (ERROR): silver/ops_orders row_count_drift")
    assert "a tenth of the usual rows" in text and "- observed: 12" in text and "- expected: 480" in text
    assert text.endswith(f"{UI}/runs/{result.run_id}")
    assert WEBHOOK_SECRET not in text

    alert_on_failed_checks(
        dg.build_sensor_context(instance=booked, cursor=first.cursor, resources=resources(webhook))
    )
    assert len(webhook.received) == 1  # the same failure never alerts twice


LOCATION = """
import dagster as dg
from medallion_assets.automation.freshness import DAILY_REFRESH

defs = dg.Definitions(assets=[dg.AssetSpec(["gold", "ops_report"], freshness_policy=DAILY_REFRESH.policy())])
"""


def test_a_missed_freshness_deadline_alerts_once(
    booked: dg.DagsterInstance, webhook: Webhook, tmp_path: Path
) -> None:
    key = dg.AssetKey(["gold", "ops_report"])
    booked.report_runless_asset_event(dg.AssetMaterialization(asset_key=key))
    materialized = booked.get_latest_materialization_event(key)
    assert materialized is not None
    location = tmp_path / "location.py"
    location.write_text(LOCATION)
    target = PythonFileTarget(
        python_file=str(location), attribute="defs", working_directory=str(tmp_path), location_name="ops"
    )
    daemon = FreshnessDaemon()
    with create_test_daemon_workspace_context(target, booked) as workspace:
        asyncio.run(daemon._evaluate_assets(workspace))  # now: refreshed since 00:30 or before 02:00
        # Two days on, nothing ran: the last 02:00 deadline passed without a refresh since 00:30.
        with freeze_time(dt.datetime.now(dt.UTC) + dt.timedelta(days=2)):
            asyncio.run(daemon._evaluate_assets(workspace))
    state = booked.get_freshness_state_records([key])[key].freshness_state
    assert state == "FAIL"

    first = alert_on_stale_assets(dg.build_sensor_context(instance=booked, resources=resources(webhook)))
    assert len(webhook.received) == 1
    text = webhook.received[0]["body"]["text"]
    since = dt.datetime.fromtimestamp(materialized.timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    assert text == (
        "Asset STALE (missed its freshness deadline): gold/ops_report\n"
        f"- last materialized: {since}\n"
        f"{UI}/assets/gold/ops_report"
    )

    alert_on_stale_assets(
        dg.build_sensor_context(instance=booked, cursor=first.cursor, resources=resources(webhook))
    )
    assert len(webhook.received) == 1  # one alert per miss
