"""The daily partitions every layer shares, from MEDALLION_START_DATE."""

from __future__ import annotations

import dagster as dg

from medallion_assets.settings import Settings


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    # Olist times are zone-less local times; a partition is a calendar day as written. Today is a
    # partition too (end_offset=1): a live source's changes land within minutes, not tomorrow.
    return dg.DailyPartitionsDefinition(start_date=settings.start_date.isoformat(), end_offset=1)
