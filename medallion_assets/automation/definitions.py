"""The automation's part of the code location: the source and event-stream sensors, propagation
to the next layer, the daily catch-up, run alerts and the audit log. Off until a person (or
MEDALLION_AUTOMATION) turns it on: it launches runs."""

from collections.abc import Callable

import dagster as dg

from medallion_assets.automation.alerts import ALERT_SENSORS
from medallion_assets.automation.audit import AUDIT_SENSORS
from medallion_assets.automation.event_streams import event_streams_sensor
from medallion_assets.automation.propagation import (
    PROPAGATE_SILVER,
    catch_up_schedule,
    gold_refresh_job,
    propagation_sensor,
)
from medallion_assets.automation.source_changes import source_changes_sensor
from medallion_assets.settings import Settings


def automation_definitions(
    daily: dg.TimeWindowPartitionsDefinition, settings: Settings, code_location: Callable[[], dg.Definitions]
) -> dg.Definitions:
    """`code_location` gives the whole code location to the gold refresh, which runs a build of it."""
    on = settings.automation
    sensor_status = dg.DefaultSensorStatus.RUNNING if on else dg.DefaultSensorStatus.STOPPED
    schedule_status = dg.DefaultScheduleStatus.RUNNING if on else dg.DefaultScheduleStatus.STOPPED
    gold_refresh = gold_refresh_job(code_location)
    return dg.Definitions(
        sensors=[
            *ALERT_SENSORS,
            *AUDIT_SENSORS,
            source_changes_sensor(daily, sensor_status, settings.poll_seconds),
            event_streams_sensor(sensor_status, settings.poll_seconds),
            propagation_sensor(gold_refresh, sensor_status, max(1, settings.poll_seconds // 2)),
        ],
        schedules=[catch_up_schedule(daily, schedule_status)],
        jobs=[PROPAGATE_SILVER, gold_refresh],
    )
