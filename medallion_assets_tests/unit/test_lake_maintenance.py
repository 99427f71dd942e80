"""Lake operations without a JVM: table names, the VACUUM retention floor, what history shows of a
commit, the Z-order columns, and the maintenance job and schedule in the code location (each op in
the pool of the step that writes its table). Against a real lake: integration/test_lake_operations.py."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from medallion_assets.definitions import build_definitions
from medallion_assets.maintenance.jobs import SCHEDULE, maintenance_job
from medallion_assets.maintenance.operations import (
    MIN_RETENTION_HOURS,
    Commit,
    Layout,
    RetentionTooShortError,
    as_of_text,
    check_retention,
    lake_table,
    optimize_settings,
    zorder_columns,
)
from medallion_assets.maintenance.runs import MAINTENANCE_JOB, maintained_table, maintenance_op_name
from medallion_assets.settings import get_settings
from medallion_assets.specs import GOLD_DIMENSIONS, GOLD_FACTS, LAKE_TABLES, SILVER_TABLES


def test_tables_are_named_layer_slash_name() -> None:
    assert lake_table("gold/fact_orders") is GOLD_FACTS["fact_orders"]
    with pytest.raises(ValueError, match="did you mean gold/fact_orders"):
        lake_table("gold/fact_order")
    with pytest.raises(ValueError, match=r"bronze/customers.*gold/customer_rfm"):
        lake_table("orders")


def test_vacuum_retention_never_below_deltas_safety_minimum(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDALLION_VACUUM_RETENTION_HOURS", raising=False)
    assert get_settings().vacuum_retention_hours == MIN_RETENTION_HOURS == 168
    assert check_retention(168) == 168 and check_retention(720) == 720
    with pytest.raises(RetentionTooShortError, match=r"167 h.*MEDALLION_VACUUM_RETENTION_HOURS to 168"):
        check_retention(167)


def test_a_commit_shows_its_key_parameters_and_metrics() -> None:
    write = Commit(
        2,
        "2026-01-31 12:00:00.123",
        "WRITE",
        {"mode": "Overwrite", "partitionBy": "[]", "predicate": "order_date >= '2018-01-01' " * 5},
        {"numFiles": "2", "numOutputRows": "50", "numRemovedFiles": "10", "numOutputBytes": "2476"},
    )
    details = write.details()
    assert details.startswith("rows_written=50 files_added=2 files_removed=10 mode=Overwrite predicate=")
    assert details.endswith("...") and len(details.split("predicate=")[1]) == 80
    restore = Commit(3, "2026-01-31 12:01:00.000", "RESTORE", {"version": "0"}, {"numRestoredFiles": "3"})
    assert restore.details() == "files_restored=3 to_version=0"
    assert Commit(4, "", "OPTIMIZE", {"zOrderBy": "[]"}, {}).details() == ""


def test_as_of_is_utc_for_spark() -> None:
    assert as_of_text(dt.datetime(2026, 1, 31, 12, 0, 5)) == "2026-01-31 12:00:05.000"
    aware = dt.datetime(2026, 1, 31, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert as_of_text(aware) == "2026-01-31 12:00:00.000"


def test_zorder_columns_lead_with_the_window_column_unless_partitioned_by_it() -> None:
    facts = GOLD_FACTS["fact_orders"]
    assert facts.zorder_by == ("customer_key",)
    assert zorder_columns(facts, ["order_date"]) == ("customer_key",)  # Delta refuses a partition column
    assert zorder_columns(facts, []) == ("order_date", "customer_key")  # days stay together
    assert zorder_columns(GOLD_DIMENSIONS["dim_customer"], []) == ()  # compaction only
    assert zorder_columns(SILVER_TABLES[0], ["_change_date"]) == ()


def test_optimize_writes_files_of_the_lakes_rows_per_file() -> None:
    # 100 bytes a row: 250,000 rows are ~24 MiB; never below 16 MiB nor above Delta's 1 GiB.
    settings = optimize_settings(Layout(3, 40, 100_000_000, 1_000_000), 250_000)
    assert settings == {
        "spark.databricks.delta.optimize.maxFileSize": "25000000",
        "spark.sql.files.maxRecordsPerFile": "250000",
    }
    tiny = optimize_settings(Layout(1, 24, 2_400, 240), 50)
    assert tiny["spark.databricks.delta.optimize.maxFileSize"] == str(16 * 2**20)
    wide = optimize_settings(Layout(1, 1, 10**12, 10**6), 250_000)
    assert wide["spark.databricks.delta.optimize.maxFileSize"] == str(2**30)
    assert optimize_settings(Layout(0, 0, 0, 0), 10)["spark.databricks.delta.optimize.maxFileSize"] == str(
        16 * 2**20
    )


def test_zorder_columns_are_columns_of_their_tables() -> None:
    for table in LAKE_TABLES:
        names = {c.name for c in table.columns}
        assert set(table.zorder_by) <= names and table.partition_column not in table.zorder_by, table.name
    assert any(t.zorder_by for t in LAKE_TABLES)


def test_maintenance_steps_name_their_tables() -> None:
    key = dg.AssetKey(["quarantine", "order_items"])
    assert maintenance_op_name(key) == "maintain_quarantine__order_items"
    assert maintained_table(maintenance_op_name(key)) == key
    assert maintained_table("silver_orders") is None


def test_maintenance_runs_each_table_in_the_pool_of_its_writer() -> None:
    defs = build_definitions(get_settings(automation=False))
    graph = defs.resolve_asset_graph()
    job = defs.resolve_job_def(MAINTENANCE_JOB)
    pools = {node.name: node.pool for node in job.graph.node_defs}
    assert len(pools) == len(LAKE_TABLES)
    for table in LAKE_TABLES:
        key = dg.AssetKey(table.asset_path)
        assert graph.get(key).pools == {pools[maintenance_op_name(key)]}, key
    assert pools["maintain_quarantine__orders"] == "silver/orders"  # one multi-asset writes both
    assert pools["maintain_gold__fact_order_items"] == "gold/facts"
    assert defs.resolve_schedule_def(SCHEDULE).default_status == dg.DefaultScheduleStatus.STOPPED
    on = build_definitions(get_settings(automation=True))
    assert on.resolve_schedule_def(SCHEDULE).default_status == dg.DefaultScheduleStatus.RUNNING


def test_a_table_whose_writer_has_no_pool_is_refused() -> None:
    with pytest.raises(ValueError, match="no writer pool for gold/fact_orders"):
        maintenance_job([GOLD_FACTS["fact_orders"]], {}, 168)
