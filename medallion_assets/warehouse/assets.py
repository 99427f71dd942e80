"""Warehouse assets: every gold table copied to the warehouse (DuckDB file or BigQuery), built from
the gold specs by one factory, each with a check that the copy equals gold.

Views declared in specs/interface.py (`WAREHOUSE_VIEWS`: live_daily_orders beside the tables, the
analytics schema's interface views) are assets too, created or replaced after the tables they read.

`warehouse/<name>` is downstream of `gold/<name>` and partitioned like it: a run over order dates
D1..D2 replaces exactly those dates' rows in the warehouse (the IO manager of MEDALLION_WAREHOUSE,
see resources/warehouse.py); an unpartitioned gold table is replaced whole. Gold's window is
streamed from the lake's files as bounded Arrow batches (no Spark needed), and the check compares
it with the warehouse's rows in a scratch DuckDB database that spills to disk, so neither holds a
whole table in the run process.
"""

# No `from __future__ import annotations`: Dagster inspects the context annotation at definition time.
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa

from medallion_assets.quality.checks import SAMPLE_SIZE, json_metadata
from medallion_assets.resources.definitions import secret_from_environment
from medallion_assets.resources.delta_lake import LakeResource, Window, WindowRows
from medallion_assets.resources.duckdb_warehouse import DuckDBWarehouse
from medallion_assets.resources.warehouse import (
    LAYER,
    SCRATCH_MEMORY,
    Conformed,
    WarehouseIOManager,
    batches_of,
    describe,
    insert_batches,
    quoted,
    row_digest,
)
from medallion_assets.settings import Settings
from medallion_assets.specs import (
    GOLD_DIMENSIONS,
    GOLD_FACTS,
    GOLD_REPORTS,
    GOLD_WIDE,
    TABLES_BY_PATH,
    LakeTable,
)
from medallion_assets.specs.interface import WAREHOUSE_VIEWS, WarehouseView

GROUP = "warehouse"
# Every gold table is synced: dimensions, facts, reports and features, wide tables.
SYNCED_TABLES: tuple[LakeTable, ...] = (
    *GOLD_DIMENSIONS.values(),
    *GOLD_FACTS.values(),
    *GOLD_REPORTS.values(),
    *GOLD_WIDE.values(),
)
CHECK_NAME = "equals_gold"


def warehouse_for(settings: Settings) -> WarehouseIOManager:
    """MEDALLION_WAREHOUSE picks where gold is synced: a local DuckDB file or BigQuery."""
    if settings.warehouse == "bigquery":
        # Imported here: Google's client libraries take a second to import, in every process.
        from medallion_assets.resources.bigquery_warehouse import BigQueryWarehouse

        return BigQueryWarehouse(
            project=settings.bigquery_project,
            dataset=settings.bigquery_dataset,
            endpoint=settings.bigquery_endpoint,
            credentials_json=secret_from_environment(
                settings.bigquery_credentials_json, "MEDALLION_BIGQUERY_CREDENTIALS_JSON"
            ),
        )
    return DuckDBWarehouse(path=str(settings.duckdb_path))


def warehouse_key(table: LakeTable) -> dg.AssetKey:
    return dg.AssetKey([LAYER, table.name])


def build_warehouse_asset(
    table: LakeTable, partitions: dg.PartitionsDefinition, kind: str
) -> dg.AssetsDefinition:
    partitioned = table.partition_column is not None

    @dg.asset(
        key=warehouse_key(table),
        ins={"gold": dg.AssetIn(key=table.asset_path)},
        description=f"{table.description} Synced from gold/{table.name} to the {kind} warehouse.",
        io_manager_key="warehouse",
        partitions_def=partitions if partitioned else None,
        backfill_policy=dg.BackfillPolicy.single_run() if partitioned else None,
        group_name=GROUP,
        kinds={kind},
        pool=f"{LAYER}/{table.name}",
    )
    def sync(gold: WindowRows) -> WindowRows:
        # The run's window of gold, streamed by the warehouse IO manager into the window it replaces.
        return gold

    return sync


@dataclass(frozen=True)
class Comparison:
    gold_rows: int
    warehouse_rows: int
    differences: dict = field(default_factory=dict)  # what differs, as check metadata

    @property
    def equal(self) -> bool:
        return self.gold_rows == self.warehouse_rows and not self.differences


# Rows that can be read more than once: in memory, a lake window, or a function opening a stream.
Rereadable = pa.Table | WindowRows | Callable[[], pa.RecordBatchReader]


def reread(rows: Rereadable) -> pa.RecordBatchReader:
    return rows() if callable(rows) else batches_of(rows)


def compare(
    gold: Rereadable, stored: Rereadable, key: list[str], memory_limit: str = SCRATCH_MEMORY
) -> Comparison:
    """What differs between gold's rows and the warehouse's (same contract schema). First each
    side's `row_digest`, streamed (a few batches in memory): equal digests, equal rows. Otherwise
    both are read again into a scratch DuckDB database that spills to disk beyond its memory
    limit, and compared key by key to say what differs."""
    (gold_rows, gold_digest), (stored_rows, stored_digest) = (
        row_digest(reread(side)) for side in (gold, stored)
    )
    if gold_digest == stored_digest:
        return Comparison(gold_rows, stored_rows)
    with (
        tempfile.TemporaryDirectory(prefix="medallion-compare-") as scratch,
        duckdb.connect(str(Path(scratch) / "compare.duckdb"), config={"memory_limit": memory_limit}) as con,
    ):
        for name, rows in (("gold", gold), ("stored", stored)):
            reader = reread(rows)
            con.register("empty", reader.schema.empty_table())
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM empty")
            con.unregister("empty")
            insert_batches(con, name, reader)
        keys = ", ".join(quoted(k) for k in key)
        differences: dict = {}
        for only, other, label in (
            ("gold", "stored", "only_in_gold"),
            ("stored", "gold", "only_in_warehouse"),
        ):
            missing = f"SELECT {keys} FROM {only} ANTI JOIN {other} USING ({keys})"
            (count,) = con.execute(f"SELECT count(*) FROM ({missing})").fetchall()[0]
            if count:
                sample = (
                    con.sql(f"{missing} ORDER BY {keys} LIMIT {SAMPLE_SIZE}").to_arrow_table().to_pylist()
                )
                differences |= {f"{label}_rows": count, f"{label}_sample": json_metadata(sample)}
        if differences:
            return Comparison(gold_rows, stored_rows, differences)
        columns = [name for name in con.table("gold").columns if name not in key]
        pairs = f"gold JOIN stored USING ({keys})"
        unequal = {name: f"gold.{quoted(name)} IS DISTINCT FROM stored.{quoted(name)}" for name in columns}
        counts = (
            con.execute(
                "SELECT "
                + ", ".join(f"count(*) FILTER (WHERE {test})" for test in unequal.values())
                + f" FROM {pairs}"
            ).fetchall()[0]
            if unequal
            else ()
        )
        differing = {}
        for (name, test), count in zip(unequal.items(), counts, strict=True):
            if count:
                sample = con.sql(
                    f"SELECT {keys} FROM {pairs} WHERE {test} ORDER BY {keys} LIMIT {SAMPLE_SIZE}"
                ).to_arrow_table()
                differing[name] = {"rows": count, "keys": sample.to_pylist()}
        if differing:
            differences["differing_columns"] = json_metadata(differing)
        elif gold_rows == stored_rows:  # the same keys and values, yet other digests: duplicated rows
            differences["duplicated_rows"] = True
        return Comparison(gold_rows, stored_rows, differences)


def build_equality_check(table: LakeTable, partitions: dg.PartitionsDefinition) -> dg.AssetChecksDefinition:
    partitioned = table.partition_column is not None

    @dg.asset_check(
        asset=warehouse_key(table),
        name=CHECK_NAME,
        description=f"The warehouse's rows equal gold/{table.name}'s in the run's window, value for value.",
        blocking=True,
        partitions_def=partitions if partitioned else None,
    )
    def equals_gold(
        context: dg.AssetCheckExecutionContext,
        warehouse: dg.ResourceParam[WarehouseIOManager],
        lakehouse: LakeResource,
    ) -> dg.AssetCheckResult:
        window = None
        if partitioned:
            span = context.partition_time_window
            window = Window(table.partition_column, span.start.date(), span.end.date())
        gold = WindowRows(lakehouse.lake(), dg.AssetKey(table.asset_path), window)
        result = compare(
            lambda: Conformed(gold, table).reader,
            lambda: warehouse.read_batches(table, window),
            list(table.primary_key),
            warehouse.memory_limit,
        )
        return dg.AssetCheckResult(
            passed=result.equal,
            metadata={
                "window": describe(window),
                "gold_rows": result.gold_rows,
                "warehouse_rows": result.warehouse_rows,
                **result.differences,
            },
        )

    return equals_gold


def build_view_asset(view: WarehouseView, kind: str) -> dg.AssetsDefinition:
    """warehouse/[<schema>/]<view>: created or replaced after the tables it reads are synced (cheap:
    a view holds no rows; replacing it keeps it equal to its declaration in the project)."""
    read = [TABLES_BY_PATH[f"gold/{name}"] for name in view.reads]

    @dg.asset(
        key=list(view.asset_path),
        deps=[warehouse_key(table) for table in read],
        description=view.description,
        group_name=GROUP,
        kinds={kind},
        required_resource_keys={"warehouse"},
        pool="/".join(view.asset_path),
    )
    def replace_view(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        warehouse: WarehouseIOManager = context.resources.warehouse
        sql = view.sql.format(**{table.name: warehouse.table_ref(table) for table in read})
        metadata = warehouse.replace_view(view.name, view.description, sql, view.schema)
        return dg.MaterializeResult(metadata={**metadata, "sql": dg.MetadataValue.md(f"```sql{sql}\n```")})

    return replace_view


def warehouse_assets(partitions: dg.PartitionsDefinition, kind: str) -> list[dg.AssetsDefinition]:
    return [
        *(build_warehouse_asset(table, partitions, kind) for table in SYNCED_TABLES),
        *(build_view_asset(view, kind) for view in WAREHOUSE_VIEWS.values()),
    ]


def warehouse_checks(partitions: dg.PartitionsDefinition) -> list[dg.AssetChecksDefinition]:
    return [build_equality_check(table, partitions) for table in SYNCED_TABLES]
