"""The stream lane in silver: events that carry a source table's rows become changes of that table.

A review event holds the review row as the source database holds it from the event's moment on
(`updated_at` is that moment). Shaped as a bronze change row (`_change_ts` = `updated_at`, the
lineage `_source` = `kafka:<topic>:<partition>:<offset>`), it joins the database's change feed of
the same change dates before silver ranks them: the same latest-wins rule then judges both lanes,
and the same version brought by both (or delivered twice) is one version, never two rows.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from medallion_assets.resources.delta_lake import Lake
from medallion_assets.resources.delta_lake import Window as LakeWindow
from medallion_assets.specs import CHANGE_DATE, CHANGE_TS, SOURCE
from medallion_assets.specs.events import OFFSET, PARTITION, TOPIC, EventStream, event_bronze_table


def _within(column: str, window: LakeWindow) -> SparkColumn:
    """`column` (a timestamp) on a day of the window: a plain range, so Delta skips files by it."""
    start = dt.datetime.combine(window.start, dt.time())
    end = dt.datetime.combine(window.end, dt.time())
    return (F.col(column) >= F.lit(start)) & (F.col(column) < F.lit(end))


def event_changes(
    spark: SparkSession, lake: Lake, stream: EventStream, window: LakeWindow, like: DataFrame
) -> DataFrame | None:
    """The stream's events whose change time falls in the window, as rows shaped like `like` (the
    bronze change rows of the table the events carry); None before the stream has landed anything.

    The change time is `updated_at`; an event without one keeps its event time, so it falls in a
    window and silver quarantines it (updated_at is required) instead of losing it."""
    events = lake.frame(spark, dg.AssetKey(event_bronze_table(stream).asset_path))
    if events is None:
        return None
    changed = F.coalesce(F.col("updated_at"), F.col(stream.time_field))
    in_window = _within("updated_at", window) | (
        F.col("updated_at").isNull() & _within(stream.time_field, window)
    )
    lineage = {
        CHANGE_TS: changed,
        CHANGE_DATE: F.to_date(changed),
        SOURCE: F.concat_ws(":", F.lit("kafka"), F.col(TOPIC), F.col(PARTITION), F.col(OFFSET)),
    }
    given = {name: F.col(name) for name in events.columns} | lineage
    # A column only the database's feed has (one its spec does not declare) is null in an event.
    shaped = [given.get(name, F.lit(None)).cast(kind).alias(name) for name, kind in like.dtypes]
    return events.filter(in_window).select(*shaped)
