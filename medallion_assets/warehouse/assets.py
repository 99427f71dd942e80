"""Warehouse assets: every gold table copied to the warehouse (DuckDB file or BigQuery), built from
the gold specs by one factory, each with a check that the copy equals gold.

`warehouse/<name>` is downstream of `gold/<name>` and partitioned like it: a run over order dates
D1..D2 replaces exactly those dates' rows in the warehouse (the IO manager of MEDALLION_WAREHOUSE,
see resources/warehouse.py); an unpartitioned gold table is replaced whole. Gold is read through
Arrow from the lake (no Spark needed), only the window's files.
"""

# No `from __future__ import annotations`: Dagster inspects the context annotation at definition time.
import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from medallion_assets.quality.checks import SAMPLE_SIZE, json_metadata
from medallion_assets.resources.definitions import secret_from_environment
from medallion_assets.resources.delta_lake import LakeResource, Window
from medallion_assets.resources.duckdb_warehouse import DuckDBWarehouse
from medallion_assets.resources.warehouse import LAYER, WarehouseIOManager, conform, describe
from medallion_assets.settings import Settings
from medallion_assets.specs import GOLD_DIMENSIONS, GOLD_FACTS, GOLD_REPORTS, LakeTable

GROUP = "warehouse"
# Every gold table is synced: dimensions, facts, reports and features.
SYNCED_TABLES: tuple[LakeTable, ...] = (
    *GOLD_DIMENSIONS.values(),
    *GOLD_FACTS.values(),
    *GOLD_REPORTS.values(),
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
    def sync(gold: pa.Table) -> pa.Table:
        # The lake IO manager read exactly the run's window; the warehouse IO manager replaces it.
        return gold

    return sync


def compare(gold: pa.Table, stored: pa.Table, key: list[str]) -> dict:
    """What differs between gold's rows and the warehouse's (same contract schema): nothing when equal."""
    gold, stored = (
        gold.sort_by([(k, "ascending") for k in key]),
        stored.sort_by([(k, "ascending") for k in key]),
    )
    same_keys = gold.num_rows == stored.num_rows and all(gold[k].equals(stored[k]) for k in key)
    if not same_keys:
        only = {
            "only_in_gold": gold.join(stored.select(key), key, join_type="left anti"),
            "only_in_warehouse": stored.join(gold.select(key), key, join_type="left anti"),
        }
        return {
            **{f"{name}_rows": rows.num_rows for name, rows in only.items()},
            **{
                f"{name}_sample": json_metadata(rows.select(key).slice(0, SAMPLE_SIZE).to_pylist())
                for name, rows in only.items()
            },
        }
    differing = {}
    for name in gold.column_names:
        a, b = gold.column(name), stored.column(name)
        unequal = pc.or_(pc.fill_null(pc.not_equal(a, b), False), pc.not_equal(pc.is_null(a), pc.is_null(b)))
        count = pc.sum(unequal).as_py() or 0
        if count:
            sample = gold.select(key).filter(unequal).slice(0, SAMPLE_SIZE).to_pylist()
            differing[name] = {"rows": count, "keys": sample}
    return {"differing_columns": json_metadata(differing)} if differing else {}


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
        stored = warehouse.read(table, window)
        gold = conform(lakehouse.lake().read_window(dg.AssetKey(table.asset_path), window), table)
        differences = compare(gold, stored, list(table.primary_key))
        return dg.AssetCheckResult(
            passed=not differences,
            metadata={
                "window": describe(window),
                "gold_rows": gold.num_rows,
                "warehouse_rows": stored.num_rows,
                **differences,
            },
        )

    return equals_gold


def warehouse_assets(partitions: dg.PartitionsDefinition, kind: str) -> list[dg.AssetsDefinition]:
    return [build_warehouse_asset(table, partitions, kind) for table in SYNCED_TABLES]


def warehouse_checks(partitions: dg.PartitionsDefinition) -> list[dg.AssetChecksDefinition]:
    return [build_equality_check(table, partitions) for table in SYNCED_TABLES]
