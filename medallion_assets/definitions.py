"""The Dagster code location: every layer's assets, checks, resources and automation meet here.

`build_definitions(settings)` decides everything from one settings object, so tests build their
own definitions without reloading modules; `defs` is what `dagster dev` and the CLI load.
Runs execute in process: one process per run, so one Spark session per run, never one per step.
"""

from __future__ import annotations

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
from medallion_assets.resources.postgres import SourceDatabase
from medallion_assets.resources.spark import SparkResource
from medallion_assets.settings import Settings, get_settings
from medallion_assets.silver.assets import silver_assets
from medallion_assets.warehouse.assets import warehouse_assets, warehouse_checks, warehouse_for


def build_definitions(
    settings: Settings | None = None, jobs: Sequence[dg.UnresolvedAssetJobDefinition] = ()
) -> dg.Definitions:
    settings = settings or get_settings()
    daily = daily_partitions(settings)
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


defs = build_definitions()
