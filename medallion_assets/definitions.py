"""The Dagster code location: every layer's assets, checks, resources and automation meet here.

`build_definitions(settings)` decides everything from one settings object, so tests build their
own definitions without reloading modules; `defs` is what `dagster dev` and the CLI load, built
when a code location loads (not at import): its daily partitions end where the source's days end
(`partitions_last_day`).
Runs execute in process: one process per run, so one Spark session per run, never one per step.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

import dagster as dg

from medallion_assets.automation.alerts import ALERT_SENSORS
from medallion_assets.automation.audit import AUDIT_SENSORS
from medallion_assets.automation.propagation import (
    catch_up_schedule,
    gold_refresh,
    propagation_sensor,
    silver_job,
)
from medallion_assets.automation.source_changes import source_changes_sensor
from medallion_assets.bronze.assets import bronze_assets
from medallion_assets.gold.assets import gold_assets
from medallion_assets.partitions import daily_partitions
from medallion_assets.progress import medallion_progress
from medallion_assets.quality.checks import quality_checks
from medallion_assets.resources.delta_lake import DeltaLakeIOManager
from medallion_assets.resources.postgres import SourceDatabase, redact, source_database_url
from medallion_assets.resources.spark import SparkResource
from medallion_assets.settings import Settings, get_settings
from medallion_assets.silver.assets import silver_assets
from medallion_assets.sources.olist_db import history_end
from medallion_assets.warehouse.assets import warehouse_assets, warehouse_checks, warehouse_for


def build_definitions(
    settings: Settings | None = None,
    jobs: Sequence[dg.UnresolvedAssetJobDefinition] = (),
    last_day: dt.date | None = None,
) -> dg.Definitions:
    settings = settings or get_settings()
    daily = daily_partitions(settings, last_day)
    spark = SparkResource()
    propagate_silver = silver_job(daily)
    # Automation is off until a person (or MEDALLION_AUTOMATION) turns it on: it launches runs.
    on = settings.automation
    sensor_status = dg.DefaultSensorStatus.RUNNING if on else dg.DefaultSensorStatus.STOPPED
    schedule_status = dg.DefaultScheduleStatus.RUNNING if on else dg.DefaultScheduleStatus.STOPPED
    return dg.Definitions(
        assets=[
            *bronze_assets(daily),
            *silver_assets(daily),
            *gold_assets(daily),
            *warehouse_assets(daily, settings.warehouse),
        ],
        asset_checks=[*quality_checks(daily), *warehouse_checks(daily)],
        sensors=[
            *ALERT_SENSORS,
            *AUDIT_SENSORS,
            source_changes_sensor(daily, sensor_status, settings.poll_seconds),
            propagation_sensor(propagate_silver, sensor_status, max(1, settings.poll_seconds // 2)),
        ],
        schedules=[catch_up_schedule(daily, schedule_status)],
        resources={
            "lake": DeltaLakeIOManager(spark=spark),
            "source_db": SourceDatabase(),
            "spark": spark,
            "warehouse": warehouse_for(settings),
        },
        jobs=[propagate_silver, gold_refresh, *jobs],
        loggers={"console": dg.colored_console_logger, "medallion_progress": medallion_progress},
        executor=dg.in_process_executor,
    )


HAND_MADE_DAYS = dt.timedelta(days=7)


def partitions_last_day(settings: Settings) -> dt.date | None:
    """The last day the source can have data for: a replayed history's end (the simulator knows
    its whole future) and a week, None for a live source or one not loaded or not reachable yet
    (up to today)."""
    if settings.source_url is None and not settings.embedded_postgres_dir.exists():
        return None  # no embedded source was ever created: nothing to start for the answer
    try:
        end = history_end(source_database_url(settings))
    except Exception as exc:  # a code location must load while the source is down
        logging.getLogger(__name__).warning(
            f"partitions up to today: the source is unreachable ({redact(str(exc))})"
        )
        return None
    # A week past it: a change made by hand just after the replayed history (as the end-to-end
    # test's canceled order) still has its day.
    return end.date() + HAND_MADE_DAYS if end else None


@dg.definitions
def defs() -> dg.Definitions:
    settings = get_settings()
    return build_definitions(settings, last_day=partitions_last_day(settings))
