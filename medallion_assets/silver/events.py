"""The stream lane in silver.

Events of their own (the clickstream) become silver/<stream>: one row per event id, by event date.
A producer's retry can deliver an event twice (two Kafka places, one id): the first delivery (by
Kafka timestamp, partition, offset) is kept, and the table is written insert-only by key, so a
redelivery landed by a later run never adds a row either. What was not kept stays in bronze, and
the count of redeliveries is in the metadata. The contract was judged at landing (bronze/streams.py):
silver checks it again before writing.

Events that carry a source table's rows become changes of that table.

A review event holds the review row as the source database holds it from the event's moment on
(`updated_at` is that moment). Shaped as a bronze change row (`_change_ts` = `updated_at`, the
lineage `_source` = `kafka:<topic>:<partition>:<offset>`), it joins the database's change feed of
the same change dates before silver ranks them: the same latest-wins rule then judges both lanes,
and the same version brought by both (or delivered twice) is one version, never two rows.
"""

# No `from __future__ import annotations`: Dagster inspects the context annotation at definition time.

import datetime as dt

import dagster as dg
from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from medallion_assets.quality.contracts import enforce
from medallion_assets.resources.delta_lake import OUTPUT_ROWS, Lake, LakeResource, lake_table_args
from medallion_assets.resources.delta_lake import Window as LakeWindow
from medallion_assets.resources.spark import SparkResource
from medallion_assets.specs import CHANGE_DATE, CHANGE_TS, RUN_ID, SOURCE, LakeTable
from medallion_assets.specs.events import (
    EVENT_DATE,
    EVENT_SILVER_TABLES,
    EVENT_STREAMS,
    KAFKA_TIMESTAMP,
    OFFSET,
    PARTITION,
    TOPIC,
    EventStream,
    event_bronze_table,
)


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


def first_deliveries(events: DataFrame, stream: EventStream, table: LakeTable, run_id: str) -> DataFrame:
    """One row per event id: its first delivery, with its Kafka place and the run writing it."""
    first = Window.partitionBy(stream.id_field).orderBy(KAFKA_TIMESTAMP, PARTITION, OFFSET)
    kept = [c.name for c in table.columns] + [EVENT_DATE, TOPIC, PARTITION, OFFSET, KAFKA_TIMESTAMP]
    return (
        events.withColumn("_delivery", F.row_number().over(first))
        .filter(F.col("_delivery") == 1)
        .select(*kept)
        .withColumn(RUN_ID, F.lit(run_id))
    )


def silver_schema(table: LakeTable) -> str:
    """The table's columns as bronze/streams.py types them, as a Spark DDL schema."""
    lineage = {EVENT_DATE: "date", TOPIC: "string", PARTITION: "int", OFFSET: "bigint"}
    lineage |= {KAFKA_TIMESTAMP: "timestamp_ntz", RUN_ID: "string"}
    types = {c.name: c.type_names.spark for c in table.columns} | lineage
    return ", ".join(f"`{name}` {kind}" for name, kind in types.items())


def build_event_silver_asset(
    stream: EventStream, table: LakeTable, partitions: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    bronze = dg.AssetKey(event_bronze_table(stream).asset_path)

    @dg.asset(
        **lake_table_args(table, "silver", {"spark", "delta"}),
        deps=[bronze],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=table.pool,
    )
    def silver_events(
        context: dg.AssetExecutionContext, spark: SparkResource, lakehouse: LakeResource
    ) -> dg.Output[DataFrame]:
        span = context.partition_time_window
        window = LakeWindow(EVENT_DATE, span.start.date(), span.end.date())
        session, lake = spark.session(), lakehouse.lake()
        events = lake.frame(session, bronze, window)
        if events is None:  # the stream lane has not run here yet: no events, an empty table
            context.log.info(f"{bronze.to_user_string()} not landed yet: no {stream.name} events to keep")
            empty = session.createDataFrame([], silver_schema(table))
            return dg.Output(empty, metadata={"rows_read": 0, "redeliveries": 0, OUTPUT_ROWS: 0})
        read, distinct = events.agg(F.count("*"), F.count_distinct(stream.id_field)).first()
        rows = enforce(table, first_deliveries(events, stream, table, context.run_id))
        context.log.info(f"silver/{stream.name}: {read} event(s) read, {read - distinct} redelivered")
        return dg.Output(
            rows, metadata={"rows_read": read, "redeliveries": read - distinct, OUTPUT_ROWS: distinct}
        )

    return silver_events


def event_silver_assets(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    by_name = {table.name: table for table in EVENT_SILVER_TABLES}
    return [
        build_event_silver_asset(stream, by_name[stream.name], partitions)
        for stream in EVENT_STREAMS.values()
        if stream.name in by_name
    ]
