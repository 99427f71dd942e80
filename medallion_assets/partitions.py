"""The daily partitions every layer shares, from MEDALLION_START_DATE to the end of the source's days."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from medallion_assets.settings import Settings


def daily_partitions(settings: Settings, last_day: dt.date | None = None) -> dg.DailyPartitionsDefinition:
    """Olist times are zone-less local times; a partition is a calendar day as written.

    `last_day`: the last day the source can have data for (a replayed history's end), so the UI
    shows the days there are, not years of empty ones up to today. None (a live source): up to
    today, and today is a partition too (end_offset=1), so a live source's changes land within
    minutes, and each new day appears as it comes."""
    if last_day is not None:
        end = last_day + dt.timedelta(days=1)  # Dagster's end date is exclusive
        return dg.DailyPartitionsDefinition(
            start_date=settings.start_date.isoformat(), end_date=end.isoformat()
        )
    return dg.DailyPartitionsDefinition(start_date=settings.start_date.isoformat(), end_offset=1)
