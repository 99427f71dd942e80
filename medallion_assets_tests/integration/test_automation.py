"""Orchestration by branch, against a real source and real Dagster runs: the source-row sensor
(first tick, nothing new, new rows in several tables, source down, cursor across a restart), the
downstream propagation (a landed bronze run asks for silver over its days, a silver run for gold,
never twice and never after a failure) and the daily catch-up. (The instance's dagster.yaml and the
steps' pools: unit/test_automation_config.py.)"""

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from medallion_assets.automation.propagation import catch_up_schedule
from medallion_assets.automation.source_changes import read_cursor, source_changes_sensor
from medallion_assets.definitions import build_definitions
from medallion_assets.partitions import daily_partitions
from medallion_assets.resources import retries
from medallion_assets.resources.delta_lake import LakeResource
from medallion_assets.resources.postgres import SourceDatabase
from medallion_assets.settings import get_settings
from medallion_assets.sources.olist_db import CHANGE_FEEDS
from medallion_assets.tags import CHANGES_TAG, PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG
from medallion_assets_tests.handmade import at, write_handmade
from medallion_assets_tests.helpers import scratch_database
from olist_source.system import advance_source, load_source

PASSWORD = "tick-secret"
STOPPED = dg.DefaultSensorStatus.STOPPED


@pytest.fixture
def source(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The hand-made shop as known on 3 March 2018 (orders of the 1st and 2nd; more to come)."""
    url = scratch_database(pg_url, "sensor_source")
    load_source(url, write_handmade(tmp_path / "csv"), as_of=at(3), attribute_changes="none", replace=True)
    monkeypatch.setenv("MEDALLION_SOURCE_URL", url)
    monkeypatch.setenv("MEDALLION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDALLION_LAKE_URI", str(tmp_path / "lake"))
    yield url


def tick(
    sensor: dg.SensorDefinition, cursor: str | None, source: str, instance: dg.DagsterInstance | None = None
):
    """One tick of the source sensor against this source and the test's lake (MEDALLION_LAKE_URI)."""
    context = dg.build_sensor_context(
        cursor=cursor,
        instance=instance or dg.DagsterInstance.ephemeral(),
        resources={"source_db": SourceDatabase(database_url=source), "lakehouse": LakeResource()},
    )
    return sensor.evaluate_tick(context)


def test_source_sensor_branches(source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sensor = source_changes_sensor(daily_partitions(get_settings()), STOPPED)

    # First tick, empty lake: everything the source holds, as ONE run over all its days.
    first = tick(sensor, None, source)
    (request,) = first.run_requests
    # Every table, those without a change yet too (created empty: silver looks up parents in them).
    assert {key.path[1] for key in request.asset_selection} == set(CHANGE_FEEDS)
    assert request.tags[PARTITION_RANGE_START_TAG] == "2018-03-01"
    assert request.tags[PARTITION_RANGE_END_TAG] == "2018-03-02"
    marks = read_cursor(first.cursor)
    assert marks["orders"] == at(2, 16)  # o5 approved: its last change before the clock
    assert marks["attribute_changes"] is None

    # Nothing new: skipped with the reason, watermarks unchanged.
    idle = tick(sensor, first.cursor, source)
    assert not idle.run_requests
    assert "no new source rows" in idle.skip_message
    assert read_cursor(idle.cursor) == marks

    # The source moves on four days: only the tables that changed, over the days they changed on.
    advance_source(source, to=at(7))
    moved = tick(sensor, first.cursor, source)
    (request,) = moved.run_requests
    changed = {key.path[1] for key in request.asset_selection}
    assert changed == {"orders", "order_items", "order_payments", "order_reviews", "customers"}
    assert (request.tags[PARTITION_RANGE_START_TAG], request.tags[PARTITION_RANGE_END_TAG]) == (
        "2018-03-03",
        "2018-03-06",
    )
    new_marks = read_cursor(moved.cursor)
    assert new_marks["orders"] == at(6, 12) and new_marks["products"] == marks["products"]

    # A restart that lost the last cursor sees the same window: the same run key (Dagster runs a key
    # once per sensor); from the stored cursor the window is already taken.
    again = tick(sensor, first.cursor, source)
    assert again.run_requests[0].run_key == request.run_key
    after_restart = tick(sensor, moved.cursor, source)
    assert not after_restart.run_requests and read_cursor(after_restart.cursor) == new_marks

    # Source down: skipped with a message naming the server without its password, cursor kept.
    down = tick(sensor, moved.cursor, f"postgresql://medallion:{PASSWORD}@127.0.0.1:9/olist")
    assert not down.run_requests and down.cursor == moved.cursor
    assert "source not readable" in down.skip_message and "127.0.0.1:9" in down.skip_message
    assert PASSWORD not in down.skip_message


def test_first_tick_starts_from_what_bronze_holds(source: str) -> None:
    from medallion_assets.build import build
    from medallion_assets.definitions import code_location

    summary = build(
        code_location(), "key:bronze/*", echo=lambda _: None, instance=dg.DagsterInstance.ephemeral()
    )
    assert summary.success
    sensor = source_changes_sensor(daily_partitions(get_settings()), STOPPED)
    first = tick(sensor, None, source)
    assert not first.run_requests  # bronze already holds every change
    assert read_cursor(first.cursor)["orders"] == at(2, 16)
    advance_source(source, to=at(4))
    (request,) = tick(sensor, first.cursor, source).run_requests
    assert request.tags[PARTITION_RANGE_START_TAG] == "2018-03-03"


def test_propagation_follows_successful_runs(
    source: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A real bronze run of the sensor's request, then a silver one: each success asks for the next
    layer over the same days, once; a failed run asks for nothing. (test_end_to_end runs the chain.)"""
    settings = get_settings()
    defs = build_definitions(settings)
    daily = daily_partitions(settings)
    landing = source_changes_sensor(daily, STOPPED)
    propagate = defs.resolve_sensor_def("propagate_downstream")
    with dg.instance_for_test() as instance:
        (bronze_request,) = tick(landing, None, source, instance).run_requests
        start = dt.datetime.now(dt.UTC).timestamp() - 1
        bronze = execute(defs, bronze_request, instance)
        assert bronze.success
        time.sleep(5)  # the sensor leaves runs that finished in the last 5 s for its next tick

        context = dg.build_sensor_context(cursor=str(start), instance=instance, definitions=defs)
        result = propagate.evaluate_tick(context)
        (silver_request,) = result.run_requests
        assert silver_request.job_name == "propagate_silver"
        assert silver_request.run_key == f"silver-after-{bronze.run_id}"
        assert dg.AssetKey(["silver", "orders"]) in silver_request.asset_selection
        assert dg.AssetKey(["quarantine", "orders"]) in silver_request.asset_selection
        assert silver_request.tags[CHANGES_TAG] == "2018-03-01..2018-03-02"

        # A silver run of one small table is enough to see what a successful silver run asks for.
        small = ["silver", "quarantine"], "product_category_name_translation"
        one_table = dg.RunRequest(
            job_name=silver_request.job_name,
            asset_selection=[dg.AssetKey([layer, small[1]]) for layer in small[0]],
            tags=silver_request.tags,
        )
        silver = execute(defs, one_table, instance)
        assert silver.success
        time.sleep(5)
        context = dg.build_sensor_context(cursor=result.cursor, instance=instance, definitions=defs)
        later = propagate.evaluate_tick(context)
        (gold_request,) = later.run_requests  # the bronze run is behind the cursor: not again
        assert gold_request.job_name == "gold_refresh"
        assert gold_request.run_config["ops"]["refresh_gold"]["config"] == {
            "start": "2018-03-01",
            "end": "2018-03-02",
        }

        # A failed run (a blocking check, or a step) asks for nothing; `medallion build` runs neither.
        # The automation's runs retry an unreachable source with backoff (30, 60, 120 s): shortened.
        monkeypatch.setenv("MEDALLION_SOURCE_URL", "postgresql://nobody@127.0.0.1:9/none")
        monkeypatch.setattr(retries, "FIRST_WAIT_SECONDS", 0.01)
        failed = execute(defs, bronze_request, instance)
        assert not failed.success
        retried = instance.all_logs(failed.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY)
        assert len(retried) == retries.MAX_RETRIES * len({r.step_key for r in retried}) > 0
        time.sleep(5)
        context = dg.build_sensor_context(cursor=later.cursor, instance=instance, definitions=defs)
        assert not propagate.evaluate_tick(context).run_requests

        # The catch-up: yesterday and today of the source's clock, from the failed run's first day.
        schedule = catch_up_schedule(daily, dg.DefaultScheduleStatus.STOPPED)
        # As a context manager: the schedule context opens its own instance from the ref, and only
        # closing the context closes it (else Dagster's current state storage points at it after).
        with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=dt.datetime(2026, 1, 2),
            resources={"source_db": SourceDatabase(database_url=source)},
        ) as context:
            catch_up = schedule.evaluate_tick(context).run_requests[0]
        assert catch_up.tags[CHANGES_TAG] == "2018-03-01..2018-03-03"  # failed window from the 1st
        assert catch_up.run_key == "catch-up-2026-01-02"


def execute(defs: dg.Definitions, request: dg.RunRequest, instance: dg.DagsterInstance):
    """Run a sensor's request in process, as the daemon would launch it."""
    job = (
        defs.resolve_job_def(request.job_name)
        if request.job_name
        else defs.resolve_implicit_global_asset_job_def()
    )
    return job.execute_in_process(
        instance=instance,
        asset_selection=list(request.asset_selection or []) or None,
        tags=request.tags,
        raise_on_error=False,
    )
