"""Bronze: every change the source ever showed, one append-only Delta table per source table.

Partition D of bronze/<table> holds the source rows whose `updated_at` falls on day D, pulled from
PostgreSQL by Spark's JDBC reader (the window pushed down as the WHERE clause) with lineage
columns, and written to the lake by Spark. The IO manager writes them in
`insert_new` mode keyed by (primary key, change time): re-running D adds only versions not there
yet and removes nothing, so an old version of a row that has changed again since is never lost.
A backfill of many days is one run and one query per table (BackfillPolicy.single_run).
"""

# No `from __future__ import annotations`: Dagster inspects the context annotation at definition time.
import datetime as dt
from collections.abc import Callable

import dagster as dg
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from medallion_assets.resources.delta_lake import lake_table_args
from medallion_assets.resources.postgres import SourceDatabase
from medallion_assets.resources.retries import retry_when_unreachable
from medallion_assets.resources.spark import SparkResource
from medallion_assets.sources.olist_db import (
    REPLAY_SCHEMA,
    SOURCE_SCHEMA,
    read_attribute_trail,
    read_table_changes,
    source_time,
)
from medallion_assets.specs import (
    ATTRIBUTE_CHANGES,
    BRONZE_TABLES,
    CHANGE_DATE,
    CHANGE_TS,
    INGESTED_AT,
    RUN_ID,
    SOURCE,
    SOURCE_TIME,
    UNDECLARED_COLUMNS,
    LakeTable,
)


def with_lineage(
    changes: DataFrame, source: str, run_id: str, ingested_at: dt.datetime, changed_at: str = "updated_at"
) -> DataFrame:
    return changes.withColumns(
        {
            INGESTED_AT: F.lit(ingested_at).cast("timestamp"),
            SOURCE: F.lit(source),
            RUN_ID: F.lit(run_id),
            CHANGE_TS: F.col(changed_at),
            CHANGE_DATE: F.to_date(changed_at),
        }
    )


# BackfillPolicy.single_run is what turns a backfill of many days into one run and one query.


def build_bronze_asset(
    table: LakeTable,
    partitions: dg.PartitionsDefinition,
    source_name: str,
    read: Callable[[SparkSession, str, dt.datetime, dt.datetime], DataFrame],
    changed_at: str = "updated_at",
) -> dg.AssetsDefinition:
    """A bronze asset landing, per day, what `read(spark, url, start, end)` returns for the window."""

    @dg.asset(
        **lake_table_args(table, "bronze", {"postgres", "spark", "delta"}, source_table=source_name),
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=table.pool,
    )
    def bronze_table(
        context: dg.AssetExecutionContext, source_db: SourceDatabase, spark: SparkResource
    ) -> DataFrame:
        window = context.partition_time_window
        start, end = window.start.replace(tzinfo=None), window.end.replace(tzinfo=None)
        # The source's present, read first: every change up to it is in this read, so a day that
        # ends after it is still in progress (the drift check waits for it to end). The source
        # down in an automation run: retried with backoff (the read itself runs in the IO manager).
        with retry_when_unreachable(context.run.tags, context.retry_number):
            now = source_time(source_db.url())
        context.add_output_metadata({SOURCE_TIME: now.isoformat(sep=" ")})
        # Spark reads the window from PostgreSQL and writes it to the lake: no row passes through here.
        changes = read(spark.session(), source_db.url(), start, end)
        if undeclared := [
            c for c in changes.columns if table.source and c not in table.source.landed_columns
        ]:
            # Schema evolution: the column lands (the table gains it) and is reported; silver's
            # contract decides whether it goes further (today: it does not, until declared).
            context.log.warning(f"{source_name} has columns its spec does not declare: {undeclared}")
            context.add_output_metadata({UNDECLARED_COLUMNS: ", ".join(undeclared)})
        now = dt.datetime.now(dt.UTC)
        return with_lineage(changes, f"postgres:{source_name}", context.run_id, now, changed_at)

    return bronze_table


def _source_table_reader(name: str) -> Callable[[SparkSession, str, dt.datetime, dt.datetime], DataFrame]:
    return lambda spark, url, start, end: read_table_changes(spark, url, name, start, end)


def bronze_assets(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    tables = [
        build_bronze_asset(
            table, partitions, f"{SOURCE_SCHEMA}.{table.name}", _source_table_reader(table.name)
        )
        for table in BRONZE_TABLES
    ]
    # The source's audit trail (empty for a source without one: gold then has bronze's history only).
    trail = build_bronze_asset(
        ATTRIBUTE_CHANGES,
        partitions,
        f"{REPLAY_SCHEMA}.attribute_changes",
        read_attribute_trail,
        changed_at="changed_at",
    )
    return [*tables, trail]
