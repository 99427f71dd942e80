"""Bronze against a live source: no version of any row is lost, re-runs add nothing, CLI paths work."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import adbc_driver_postgresql.dbapi as adbc_dbapi
import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from medallion_assets.build import build, format_summary
from medallion_assets.definitions import code_location
from medallion_assets.settings import Settings, get_settings
from medallion_assets.sources.olist_db import read_source_table
from medallion_assets.specs import (
    BRONZE_TABLES,
    CHANGE_DATE,
    CHANGE_TS,
    INGESTED_AT,
    RUN_ID,
    SOURCE,
    UNDECLARED_COLUMNS,
)
from medallion_assets_tests.helpers import scratch_database
from olist_source.system import advance_source, load_source

BIN = Path(sys.executable).parent


@pytest.fixture
def settings(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("MEDALLION_SOURCE_URL", pg_url)
    monkeypatch.setenv("MEDALLION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDALLION_LAKE_URI", str(tmp_path / "lake"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    return get_settings()


def versions_in_source(url: str) -> dict[str, set[tuple]]:
    """(key..., updated_at) of every row the source shows now."""
    seen = {}
    for table in BRONZE_TABLES:
        current = read_source_table(url, table.name)
        seen[table.name] = set(
            zip(
                *[current[k].to_pylist() for k in table.source.primary_key],
                current["updated_at"].to_pylist(),
                strict=True,
            )
        )
    return seen


def bronze(settings: Settings, name: str) -> pa.Table:
    return DeltaTable(f"{settings.lake_uri}/bronze/{name}").to_pyarrow_dataset().to_table()


def versions_in_bronze(settings: Settings) -> dict[str, set[tuple]]:
    seen = {}
    for table in BRONZE_TABLES:
        rows = bronze(settings, table.name)
        seen[table.name] = set(zip(*[rows[k].to_pylist() for k in table.primary_key], strict=True))
    return seen


def test_bronze_over_a_replay_keeps_every_version(
    settings: Settings, pg_url: str, small_generated_dir: Path
) -> None:
    # Dagster books every partition of every asset (~8 ms each), so the replay spans a few months.
    polls = [dt.datetime(2016, 12, 1), dt.datetime(2016, 12, 20, 12), dt.datetime(2017, 2, 1)]
    load_source(pg_url, small_generated_dir, as_of=polls[0], replace=True)
    shown: dict[str, set[tuple]] = {t.name: set() for t in BRONZE_TABLES}
    previous_day = None
    unchecked = {"echo": lambda _: None, "checks": False}  # the versions are the point, not the checks
    for poll in polls:
        if poll != polls[0]:
            poll = advance_source(pg_url, to=poll).as_of
        for name, versions in versions_in_source(pg_url).items():
            shown[name] |= versions
        summary = build(code_location(), "key:bronze/*", previous_day, poll.date(), **unchecked)
        assert summary.success, format_summary(summary)
        previous_day = poll.date()

    in_bronze = versions_in_bronze(settings)
    for table in BRONZE_TABLES:
        assert in_bronze[table.name] == shown[table.name], table.name  # nothing lost, nothing invented
    orders = bronze(settings, "orders")
    assert len(in_bronze["orders"]) > len({v[0] for v in in_bronze["orders"]})  # several versions per order
    assert pc.all(pc.equal(orders[CHANGE_DATE], pc.cast(orders[CHANGE_TS], pa.date32()))).as_py()
    assert pc.all(pc.equal(orders[CHANGE_TS], orders["updated_at"])).as_py()
    assert set(orders[SOURCE].to_pylist()) == {"postgres:olist.orders"}
    assert (
        orders[INGESTED_AT].null_count == 0 and len(set(orders[RUN_ID].to_pylist())) == 3
    )  # one run per poll

    # Re-running days already ingested adds nothing and removes nothing.
    before = {t.name: bronze(settings, t.name).num_rows for t in BRONZE_TABLES}
    again = build(code_location(), "key:bronze/*", dt.date(2016, 12, 1), dt.date(2016, 12, 25), **unchecked)
    assert again.success
    assert {t.name: bronze(settings, t.name).num_rows for t in BRONZE_TABLES} == before
    assert versions_in_bronze(settings) == in_bronze


def test_real_sample_lands_in_bronze_row_for_row(sample_bronze_lake: Path, sample_tables: dict) -> None:
    for table in BRONZE_TABLES:  # loaded without synthetic changes: one version per source row
        rows = DeltaTable(str(sample_bronze_lake / "bronze" / table.name)).to_pyarrow_dataset().to_table()
        assert rows.num_rows == sample_tables[table.name].num_rows, table.name
    items = DeltaTable(str(sample_bronze_lake / "bronze" / "order_items")).to_pyarrow_dataset().to_table()
    assert (
        pc.sum(items["price"]).as_py() == pc.sum(sample_tables["order_items"]["price"]).as_py()
    )  # to the cent


def run_command(settings: Settings, pg_url: str, *command: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "MEDALLION_SOURCE_URL": pg_url,
        "MEDALLION_HOME": str(settings.home),
        "MEDALLION_LAKE_URI": settings.lake_uri,
        "DAGSTER_HOME": os.environ["DAGSTER_HOME"],
    }
    return subprocess.run(
        [str(BIN / command[0]), *command[1:]], env=env, capture_output=True, text=True, timeout=600
    )


def test_dagster_cli_materializes_a_partition_range(
    settings: Settings, pg_url: str, small_generated_dir: Path
) -> None:
    load_source(pg_url, small_generated_dir, as_of=dt.datetime(2017, 2, 1), replace=True)
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    result = run_command(
        settings,
        pg_url,
        "dagster",
        "asset",
        "materialize",
        "-m",
        "medallion_assets",
        "--select",
        "key:bronze/orders",  # one asset: the instance on disk books each of its 153 partitions
        "--partition-range",
        "2016-09-01...2017-01-31",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    orders = bronze(settings, "orders")
    expected = read_source_table(pg_url, "orders", changed_before=dt.datetime(2017, 2, 1))
    assert orders.num_rows == expected.num_rows > 0
    assert len(set(orders[RUN_ID].to_pylist())) == 1  # the whole range in one run


def test_medallion_build_command(settings: Settings, pg_url: str, small_generated_dir: Path) -> None:
    load_source(pg_url, small_generated_dir, as_of=dt.datetime(2016, 12, 1), replace=True)
    result = run_command(
        settings,
        pg_url,
        "medallion",
        "build",
        "--select",
        "key:bronze/orders",
        "--from",
        "2016-09-01",
        "--to",
        "2016-11-30",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "run 1 (bronze): 1 asset(s) over partitions 2016-09-01..2016-11-30" in result.stdout
    assert "done bronze__orders in" in result.stdout  # not a terminal: plain lines, one per step
    assert "done bronze__orders_column_schema_change in" in result.stdout  # the schema-change check
    rows = read_source_table(pg_url, "orders").num_rows
    # Steps: the asset, its checks, the column-schema change check.
    assert f"run 1 (bronze): 3/3 steps, 91 partitions, {rows:,} rows, " in result.stdout  # and the run's
    assert "build succeeded over 2016-09-01..2016-11-30: 1 assets in 1 run(s)" in result.stdout
    assert f"bronze/orders{'':<29}{91:>11,}{rows:>12,}" in result.stdout

    wrong = run_command(settings, pg_url, "medallion", "build", "--select", "bronze/*")
    assert wrong.returncode == 1 and "key:bronze/*" in wrong.stderr and "Traceback" not in wrong.stderr


def test_a_column_added_to_the_source_lands_in_bronze_and_is_reported(
    settings: Settings, pg_url: str, small_generated_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Schema evolution: a new source column lands in bronze (Delta schema merge, on the first write
    and on an insert-only MERGE alike) and the materialization names it; silver keeps its contract."""
    source = scratch_database(pg_url, "schema_evolution")
    monkeypatch.setenv("MEDALLION_SOURCE_URL", source)
    load_source(source, small_generated_dir, as_of=dt.datetime(2017, 3, 1), replace=True)
    first, second = dt.date(2017, 2, 27), dt.date(2017, 2, 28)
    assert build(code_location(), "key:bronze/orders", first, first, echo=lambda _: None).success

    with adbc_dbapi.connect(source, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("ALTER TABLE olist.orders ADD COLUMN gift_wrap boolean")
        cur.execute(
            "UPDATE olist.orders SET gift_wrap = true, updated_at = '2017-02-28 12:00:00'"
            " WHERE order_id = (SELECT min(order_id) FROM olist.orders WHERE updated_at < '2017-02-27')"
            " RETURNING order_id"
        )
        (wrapped,) = cur.fetchone()
    selection = "key:bronze/orders or key:silver/orders or key:quarantine/orders"
    summary = build(code_location(), selection, second, second, echo=lambda _: None)
    assert summary.success, format_summary(summary)

    orders = bronze(settings, "orders")
    assert orders.schema.field("gift_wrap").type == pa.bool_()
    landed = orders.filter(pc.equal(orders["gift_wrap"], True))["order_id"].to_pylist()
    assert landed == [wrapped]  # the new version carries it; the older rows read as null
    assert orders.filter(pc.equal(orders[CHANGE_DATE], first))["gift_wrap"].null_count > 0
    with dg.DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(["bronze", "orders"]))
        assert event.asset_materialization.metadata[UNDECLARED_COLUMNS].value == "gift_wrap"
    with adbc_dbapi.connect(os.environ["MEDALLION_AUDIT_URL"]) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT undeclared_columns FROM audit.run_logs"
            " WHERE asset = 'bronze/orders' AND run_id = ANY($1)",
            (summary.runs,),
        )
        assert cur.fetchall() == [("gift_wrap",)]  # the audit log reports it too
    silver = DeltaTable(f"{settings.lake_uri}/silver/orders").to_pyarrow_table()
    assert "gift_wrap" not in silver.column_names and wrapped in silver["order_id"].to_pylist()
