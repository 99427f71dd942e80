"""Bronze: every change the source ever showed, one append-only Delta table per source table.

Partition D of bronze/<table> holds the source rows whose `updated_at` falls on day D, pulled from
PostgreSQL as Arrow (ADBC, no Spark needed) with lineage columns. The IO manager writes them in
`insert_new` mode keyed by (primary key, change time): re-running D adds only versions not there
yet and removes nothing, so an old version of a row that has changed again since is never lost.
A backfill of many days is one run and one query per table (BackfillPolicy.single_run).
"""

# No `from __future__ import annotations`: Dagster inspects the context annotation at definition time.
import datetime as dt
from collections.abc import Callable

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from medallion_assets.resources.delta_lake import lake_table_args
from medallion_assets.resources.postgres import SourceDatabase
from medallion_assets.sources.olist_db import (
    REPLAY_SCHEMA,
    SOURCE_SCHEMA,
    read_attribute_changes,
    read_source_table,
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
    LakeTable,
)


def with_lineage(
    changes: pa.Table, source: str, run_id: str, ingested_at: dt.datetime, changed_at: str = "updated_at"
) -> pa.Table:
    n = changes.num_rows
    updated_at = changes.column(changed_at)
    return (
        changes.append_column(INGESTED_AT, pa.array([ingested_at] * n, pa.timestamp("us", tz="UTC")))
        .append_column(SOURCE, pa.array([source] * n, pa.string()))
        .append_column(RUN_ID, pa.array([run_id] * n, pa.string()))
        .append_column(CHANGE_TS, updated_at)
        .append_column(CHANGE_DATE, pc.cast(updated_at, pa.date32()))
    )


# BackfillPolicy.single_run is what turns a backfill of many days into one run and one query.


def build_bronze_asset(
    table: LakeTable,
    partitions: dg.PartitionsDefinition,
    source_name: str,
    read: Callable[[str, dt.datetime, dt.datetime], pa.Table],
    changed_at: str = "updated_at",
) -> dg.AssetsDefinition:
    """A bronze asset landing, per day, what `read(url, start, end)` returns for the window."""

    @dg.asset(
        **lake_table_args(table, "bronze", {"postgres", "delta"}, source_table=source_name),
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=table.pool,
    )
    def bronze_table(context: dg.AssetExecutionContext, source_db: SourceDatabase) -> pa.Table:
        window = context.partition_time_window
        start, end = window.start.replace(tzinfo=None), window.end.replace(tzinfo=None)
        # The source's present, read first: every change up to it is in this read, so a day that
        # ends after it is still in progress (the drift check waits for it to end).
        now = source_time(source_db.url())
        context.add_output_metadata({SOURCE_TIME: now.isoformat(sep=" ")})
        changes = read(source_db.url(), start, end)
        context.log.info(
            f"{changes.num_rows:,} changes of {source_name} in [{start:%Y-%m-%d}, {end:%Y-%m-%d})"
        )
        now = dt.datetime.now(dt.UTC)
        return with_lineage(changes, f"postgres:{source_name}", context.run_id, now, changed_at)

    return bronze_table


def _source_table_reader(name: str) -> Callable[[str, dt.datetime, dt.datetime], pa.Table]:
    return lambda url, start, end: read_source_table(url, name, start, end)


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
        read_attribute_changes,
        changed_at="changed_at",
    )
    return [*tables, trail]
