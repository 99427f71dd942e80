"""Asset checks: each passes on good data and fails, with the metadata a person needs, on data broken
on purpose; a blocking failure stops the downstream assets of its run.

The contract check on Spark; then the real thing: the hand-made shop built through every layer in
Dagster, copied, broken in its Delta tables, and checked by Dagster runs of the check steps. (The
checks that are plain functions over Arrow: unit/test_quality_rules.py.)"""

import datetime as dt
import shutil
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable, write_deltalake
from pyspark.sql import functions as F

from medallion_assets.build import format_summary
from medallion_assets.definitions import build_definitions
from medallion_assets.partitions import daily_partitions
from medallion_assets.quality.checks import contract_check, table_checks
from medallion_assets.resources.spark import SparkResource
from medallion_assets.settings import get_settings
from medallion_assets.specs import (
    CHANGE_DATE,
    CHANGE_TS,
    LAKE_TABLES,
    SILVER_TABLES,
    SOURCE_TIME,
    STREAM_TABLES,
)
from medallion_assets_tests.helpers import HandmadeBuild

DAY = dt.date(2018, 3, 1)  # the hand-made shop's first day: orders, items, a daily report


# ------------------------------------------------------------------------------ the contract check


def test_contract_failures_by_rule_with_sample_rows(spark_resource: SparkResource) -> None:
    table = next(t for t in SILVER_TABLES if t.name == "order_payments")
    good = {
        "order_id": "a" * 32,
        "payment_sequential": 1,
        "payment_type": "boleto",
        "payment_installments": 1,
        "payment_value": Decimal("10.00"),
        "created_at": dt.datetime(2018, 3, 1),
        "updated_at": dt.datetime(2018, 3, 1),
    }
    schema_ = pa.schema([pa.field(c.name, c.type_names.arrow) for c in table.columns])
    spark = spark_resource.session()
    assert contract_check(table, spark.createDataFrame(pa.Table.from_pylist([good], schema_))).passed
    broken = [
        good,
        {**good, "payment_sequential": 2, "payment_type": "cheque"},
        {**good, "payment_sequential": 3, "payment_installments": 99},
        {**good, "payment_sequential": 4, "payment_value": None},
    ]
    outcome = contract_check(table, spark.createDataFrame(pa.Table.from_pylist(broken, schema_)))
    assert not outcome.passed
    failures = outcome.metadata["failures"].data
    by_column = {rule.split(":")[0]: entry for rule, entry in failures.items()}
    assert set(by_column) == {"payment_type", "payment_installments"}  # payment_value may be null
    assert by_column["payment_type"]["rows"] == 1
    assert by_column["payment_type"]["sample"] == [
        {"order_id": "a" * 32, "payment_sequential": 2, "payment_type": "cheque"}
    ]
    assert by_column["payment_installments"]["sample"][0]["payment_installments"] == 99

    # A column of the wrong type or a missing column is named from the schema, before any value.
    retyped = spark.createDataFrame(pa.Table.from_pylist([good], schema_))
    retyped = retyped.withColumn("payment_value", F.lit(1.5)).drop("created_at")
    failures = contract_check(table, retyped).metadata["failures"].data
    assert set(failures) == {"payment_value:type", "created_at:missing"}
    assert (
        failures["payment_value:type"]["error"] == "payment_value is double, the contract says decimal(12,2)"
    )


# ------------------------------------------------------------------------ in Dagster, on real runs


def test_every_check_passes_on_the_hand_made_shop(handmade_build: HandmadeBuild) -> None:
    summary = handmade_build.summary
    assert summary.success and not summary.failed_checks, format_summary(summary)
    graph = build_definitions().resolve_asset_graph()
    for table in (t for t in LAKE_TABLES if t not in STREAM_TABLES):  # a build is the batch lane
        outcome = summary.assets["/".join(table.asset_path)]
        # In the asset's own run: its declared checks and Dagster's column-schema change check.
        assert outcome.checks_passed == len(table_checks(table)) + 1, outcome
    # The ranged run recorded its checks (scoped to the range, as Dagster records ranged checks).
    record = handmade_build.instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey(["gold", "fact_orders"]), "unique_key"), limit=1
    )[0]
    evaluation = record.event.dagster_event.event_specific_data
    assert evaluation.passed and evaluation.metadata["window"].value.startswith("2018-03-01..")
    assert graph.get_check_spec(record.key).blocking
    # Bronze records the source's present, by which the drift check knows a day is complete.
    landed = handmade_build.instance.get_latest_materialization_event(dg.AssetKey(["bronze", "orders"]))
    assert landed is not None and landed.asset_materialization is not None
    assert dt.datetime.fromisoformat(landed.asset_materialization.metadata[SOURCE_TIME].value) >= dt.datetime(
        2018, 3, 21
    )


@pytest.fixture
def broken_lake(handmade_build: HandmadeBuild, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the hand-made shop's lake, to break."""
    lake = tmp_path / "lake"
    shutil.copytree(handmade_build.lake, lake)
    monkeypatch.setenv("MEDALLION_LAKE_URI", str(lake))
    monkeypatch.setenv("MEDALLION_HOME", str(tmp_path / "home"))
    return lake


def run(
    selection: dg.AssetSelection, partition: str | None, instance: dg.DagsterInstance
) -> dg.ExecuteInProcessResult:
    job = dg.define_asset_job(
        "quality_test", selection=selection, partitions_def=daily_partitions(get_settings())
    )
    job_def = dg.Definitions.merge(build_definitions(), dg.Definitions(jobs=[job])).resolve_job_def(
        "quality_test"
    )
    # A partition tag rather than partition_key=: a checks-only selection has no assets to validate it by.
    tags = {"dagster/partition": partition} if partition else {}
    return job_def.execute_in_process(instance=instance, tags=tags, raise_on_error=False)


def check_results(path: list[str], partition: str | None) -> dict[str, dg.AssetCheckEvaluation]:
    result = run(
        dg.AssetSelection.checks_for_assets(dg.AssetKey(path)), partition, dg.DagsterInstance.ephemeral()
    )
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def append(lake: Path, path: str, rows: pa.Table) -> None:
    write_deltalake(f"{lake}/{path}", rows, mode="append")


def day_rows(lake: Path, path: str, column: str, day: dt.date = DAY) -> pa.Table:
    return DeltaTable(f"{lake}/{path}").to_pyarrow_dataset().to_table(filter=pc.field(column) == day)


def test_an_orphan_fact_fails_referential_integrity(broken_lake: Path) -> None:
    items = day_rows(broken_lake, "gold/fact_order_items", "order_date")
    orphan = items.slice(0, 1)
    orphan = orphan.set_column(
        orphan.schema.get_field_index("order_item_id"), "order_item_id", pa.array([99], pa.int32())
    )
    orphan = orphan.set_column(
        orphan.schema.get_field_index("product_key"), "product_key", pa.array([12345], pa.int64())
    )
    append(broken_lake, "gold/fact_order_items", orphan)

    results = check_results(["gold", "fact_order_items"], DAY.isoformat())
    broken = results["references_dim_product_product_key"]
    assert not broken.passed and broken.severity == dg.AssetCheckSeverity.ERROR
    assert broken.metadata["orphan_rows"].value == 1 and broken.metadata["orphan_sample"].data == [12345]
    assert broken.partition == DAY.isoformat() and broken.metadata["window"].value == f"{DAY}..{DAY}"
    assert results["unique_key"].passed and results["references_fact_orders_order_id"].passed


def test_an_average_revenue_of_a_million_breaks_the_business_rules(broken_lake: Path) -> None:
    report = day_rows(broken_lake, "gold/daily_order_report", "order_date")
    assert report.num_rows == 1
    million = pa.array([Decimal("1000000.00")], pa.decimal128(18, 2))
    report = report.set_column(
        report.schema.get_field_index("avg_order_revenue"), "avg_order_revenue", million
    )
    report = report.set_column(report.schema.get_field_index("total_revenue"), "total_revenue", million)
    write_deltalake(
        f"{broken_lake}/gold/daily_order_report", report, mode="overwrite", predicate=f"order_date = '{DAY}'"
    )

    results = check_results(["gold", "daily_order_report"], DAY.isoformat())
    average = results["avg_order_revenue_below_100000"]
    assert not average.passed and average.blocking and average.metadata["violations"].value == 1
    assert average.metadata["sample"].data[0]["avg_order_revenue"] == "1000000.00"
    reconciled = results["equals_fact_orders"]  # the report no longer equals its facts
    assert not reconciled.passed and reconciled.metadata["sample"].data[0]["total_revenue"] == "1000000.00"
    assert results["contract"].passed  # a million is a valid amount: the rule is what catches it


def test_a_failed_silver_partition_stops_gold_in_the_same_run(broken_lake: Path) -> None:
    # Silver keeps a row on the day of its latest change: break the busiest such day.
    days = DeltaTable(f"{broken_lake}/silver/orders").to_pyarrow_dataset().to_table(columns=[CHANGE_DATE])
    busiest = max(pc.value_counts(days[CHANGE_DATE]).to_pylist(), key=lambda v: v["counts"])
    day = busiest["values"]
    orders = day_rows(broken_lake, "silver/orders", CHANGE_DATE, day)
    assert orders.num_rows >= 2
    duplicate = orders.slice(0, 1)
    null_status = orders.slice(1, 1)
    null_status = null_status.set_column(
        null_status.schema.get_field_index("order_status"), "order_status", pa.nulls(1, pa.string())
    )
    null_status = null_status.set_column(
        null_status.schema.get_field_index("order_id"), "order_id", pa.array(["f" * 32])
    )
    append(broken_lake, "silver/orders", pa.concat_tables([duplicate, null_status]))
    instance = dg.DagsterInstance.ephemeral()
    # Silver orders (with its quarantine) and the gold facts, one partition, one run.
    selection = dg.AssetSelection.assets(
        dg.AssetKey(["silver", "orders"]),
        dg.AssetKey(["quarantine", "orders"]),
        *[dg.AssetKey(["gold", n]) for n in ("fact_orders", "fact_order_items")],
    )
    result = run(selection, day.isoformat(), instance)
    assert not result.success
    checks = {
        e.check_name: e for e in result.get_asset_check_evaluations() if e.asset_key.path[0] == "silver"
    }
    key, nulls, contract = checks["unique_key"], checks["not_null"], checks["contract"]
    assert not key.passed and key.metadata["duplicated_keys"].value == 1
    assert key.metadata["sample"].data[0]["order_id"] == duplicate["order_id"][0].as_py()
    assert not nulls.passed and nulls.metadata["null_counts"].data == {"order_status": 1}
    assert not contract.passed and "order_status:required" in contract.metadata["failures"].data
    materialized = {
        e.step_materialization_data.materialization.asset_key.path[0]
        for e in result.get_asset_materialization_events()
    }
    assert materialized == {"silver", "quarantine"}  # gold never ran on the failed partition
    assert not any(e.step_key == "gold_facts" for e in result.all_events if e.is_step_start), (
        "gold_facts started after a blocking silver failure"
    )


def test_a_tenth_of_the_usual_rows_is_an_error_but_does_not_block(broken_lake: Path, tmp_path: Path) -> None:
    """Seven weeks of a bronze table with ~100 rows a day, the last day with 10."""
    instance = dg.DagsterInstance.ephemeral()
    last = dt.date(2018, 3, 30)
    days = [last - dt.timedelta(days=n) for n in range(49)]
    rows = {d: 10 if d == last else 100 + (d.toordinal() % 7) for d in days}
    ids = [f"{d.isoformat()}-{i}" for d in days for i in range(rows[d])]
    dates = [d for d in days for _ in range(rows[d])]
    table = pa.table(
        {
            "order_id": ids,
            CHANGE_TS: pa.array([dt.datetime.combine(d, dt.time(12)) for d in dates], pa.timestamp("us")),
            CHANGE_DATE: pa.array(dates, pa.date32()),
        }
    )
    write_deltalake(
        f"{broken_lake}/bronze/orders",
        table,
        mode="overwrite",
        schema_mode="overwrite",
        partition_by=[CHANGE_DATE],
    )

    def land(day: dt.date, source_time: dt.datetime) -> None:
        """Record a materialization as bronze does: with the source's present when it read."""
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                ["bronze", "orders"], partition=day.isoformat(), metadata={SOURCE_TIME: str(source_time)}
            )
        )

    def drift_of_last_day() -> dg.AssetCheckEvaluation:
        selection = dg.AssetSelection.checks_for_assets(dg.AssetKey(["bronze", "orders"]))
        result = run(selection, last.isoformat(), instance)
        return next(e for e in result.get_asset_check_evaluations() if e.check_name == "row_count_drift")

    for day in reversed(days):
        land(day, dt.datetime.combine(day, dt.time(23, 59)))  # each day landed as it ended

    # Landed while the day was in progress: a low count is expected, not judged yet.
    land(last, dt.datetime.combine(last, dt.time(14)))
    assert drift_of_last_day().passed
    # Landed again once the source was past the day: a tenth of the usual rows is an error.
    land(last, dt.datetime.combine(last + dt.timedelta(days=1), dt.time(0, 5)))
    drift = drift_of_last_day()
    assert not drift.passed and drift.severity == dg.AssetCheckSeverity.ERROR and not drift.blocking
    assert drift.metadata["observed_rows"].value == 10
    assert drift.metadata["expected_rows"].value == 100 + (last.toordinal() % 7)
    assert drift.metadata["expected_band"].data == [
        round(drift.metadata["expected_rows"].value * r) for r in (0.5, 2.0)
    ]
    assert drift.partition == last.isoformat()
