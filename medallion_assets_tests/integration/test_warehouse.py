"""The warehouse: both IO managers against the real thing (a DuckDB file; BigQuery's API served by
the `bqemulator` on loopback), and the pipeline's sync of the hand-made shop's gold.

The behaviour tests run once per warehouse: create from the contract, replace one partition,
replace a range, a re-run changes nothing, a failed write leaves the previous rows, schema
evolution. What the emulator does not enforce (REQUIRED, NUMERIC precision, see DESIGN.md) is not
claimed here. (The credentials and the comparison with gold, no warehouse needed:
unit/test_warehouse_logic.py.)
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pytest

from medallion_assets.interface.report import read_figures
from medallion_assets.resources.bigquery_warehouse import BigQueryWarehouse
from medallion_assets.resources.delta_lake import Lake, Window
from medallion_assets.resources.duckdb_warehouse import DuckDBWarehouse
from medallion_assets.resources.warehouse import (
    WarehouseError,
    WarehouseIOManager,
    WarehouseSchemaError,
    conform,
    contract_schema,
)
from medallion_assets.settings import get_settings
from medallion_assets.specs import GOLD_REPORTS
from medallion_assets.specs.gold import EVENT_DATE
from medallion_assets.specs.interface import ANALYTICS_VIEWS, WAREHOUSE_VIEWS
from medallion_assets.warehouse.assets import SYNCED_TABLES, compare
from medallion_assets_tests.bigquery_emulator import PROJECT, bigquery_emulator
from medallion_assets_tests.helpers import CATEGORIES, HandmadeBuild, category_rows, day
from medallion_assets_tests.interface import assert_analytics_views_equal_gold

RFM = GOLD_REPORTS["customer_rfm"]  # unpartitioned: replaced whole


def window(first: int, last: int) -> Window:
    """Order dates day(first)..day(last), included."""
    return Window("order_date", day(first), day(last + 1))


def rfm_rows(customers: int) -> pa.Table:
    rows = [
        {
            "customer_unique_id": f"{i:032x}",
            "last_order_date": day(i),
            "recency_days": i,
            "frequency": 1,
            "monetary": Decimal("99.99") * (i + 1),
            "r_score": 5,
            "f_score": 1,
            "m_score": 3,
            "segment": "new",
        }
        for i in range(customers)
    ]
    return conform(pa.Table.from_pylist(rows), RFM)


def stored(warehouse: WarehouseIOManager, table=CATEGORIES, at: Window | None = None) -> pa.Table:
    key = [(k, "ascending") for k in table.primary_key]
    return warehouse.read(table, at).sort_by(key)


def sorted_rows(rows: pa.Table, table=CATEGORIES) -> pa.Table:
    return rows.sort_by([(k, "ascending") for k in table.primary_key])


@pytest.fixture(scope="session")
def emulator_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with bigquery_emulator(tmp_path_factory.mktemp("bqemulator") / "emulator.log") as endpoint:
        yield endpoint


@pytest.fixture(params=["duckdb", "bigquery"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> WarehouseIOManager:
    if request.param == "duckdb":
        return DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb"))
    endpoint = request.getfixturevalue("emulator_endpoint")
    # A dataset per test: the emulator is shared by the session.
    return BigQueryWarehouse(project=PROJECT, dataset=f"test_{uuid.uuid4().hex[:10]}", endpoint=endpoint)


def test_replaces_one_partition_then_a_range_exactly(warehouse: WarehouseIOManager) -> None:
    first = category_rows({0: ["toys", "books"], 1: ["toys", "books", "garden"], 2: ["toys"], 3: ["books"]})
    written = warehouse.replace(CATEGORIES, first, window(0, 3))
    assert (written["rows_deleted"], written["rows_inserted"]) == (0, 7)
    assert stored(warehouse).equals(sorted_rows(first))

    # Day 1 now has two categories instead of three, with other amounts: exactly its rows change.
    day_1 = category_rows({1: ["toys", "health"]}, revenue="55.50")
    written = warehouse.replace(CATEGORIES, day_1, window(1, 1))
    assert (written["rows_deleted"], written["rows_inserted"]) == (3, 2)
    untouched = first.filter(pa.compute.not_equal(first["order_date"], day(1)))
    assert stored(warehouse).equals(sorted_rows(pa.concat_tables([untouched, day_1])))
    assert stored(warehouse, at=window(1, 1))["total_revenue"].to_pylist() == [Decimal("56.50")] * 2

    # A range: days 2..3 replaced by one row on day 3 (day 2 had no sale after all).
    days_2_3 = category_rows({3: ["garden"]}, revenue="1.01")
    written = warehouse.replace(CATEGORIES, days_2_3, window(2, 3))
    assert (written["rows_deleted"], written["rows_inserted"]) == (2, 1)
    expected = pa.concat_tables(
        [first.filter(pa.compute.equal(first["order_date"], day(0))), day_1, days_2_3]
    )
    assert stored(warehouse).equals(sorted_rows(expected))


def test_a_rerun_leaves_the_table_unchanged(warehouse: WarehouseIOManager) -> None:
    rows = category_rows({0: ["toys", "books"], 1: ["toys"]})
    warehouse.replace(CATEGORIES, rows, window(0, 1))
    before = stored(warehouse)
    again = warehouse.replace(CATEGORIES, rows, window(0, 1))
    assert (again["rows_deleted"], again["rows_inserted"]) == (3, 3)
    assert stored(warehouse).equals(before)  # no duplicates, same values


def test_an_unpartitioned_table_is_replaced_whole(warehouse: WarehouseIOManager) -> None:
    warehouse.replace(RFM, rfm_rows(5), None)
    written = warehouse.replace(RFM, rfm_rows(3), None)
    assert (written["rows_deleted"], written["rows_inserted"]) == (5, 3)
    assert stored(warehouse, RFM).equals(sorted_rows(rfm_rows(3), RFM))


def sync(warehouse: WarehouseIOManager, table, rows: pa.Table) -> dict:
    """Store a whole table through the IO manager, as a run does; its metadata values."""
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_output_context(asset_key=dg.AssetKey(["warehouse", table.name]), instance=instance)
        warehouse.handle_output(context, rows)
    return {name: value.value for name, value in context.get_logged_metadata().items()}


def test_an_unchanged_whole_table_is_not_written_again(warehouse: WarehouseIOManager) -> None:
    rows = rfm_rows(4)
    first = sync(warehouse, RFM, rows)
    assert (first["rows_inserted"], first["skipped_unchanged"]) == (4, False)
    # Gold rebuilt the table whole with the same rows, in another order: nothing is written.
    again = sync(warehouse, RFM, rows.take([3, 1, 0, 2]))
    assert (again["rows_deleted"], again["rows_inserted"], again["skipped_unchanged"]) == (0, 0, True)
    assert again["content_fingerprint"] == first["content_fingerprint"] and again["dagster/row_count"] == 4
    # One customer's money changes by a cent: the table is replaced.
    money = rows["monetary"].to_pylist()
    money[2] += Decimal("0.01")
    changed = rows.set_column(
        rows.schema.get_field_index("monetary"), "monetary", pa.array(money, pa.decimal128(18, 2))
    )
    written = sync(warehouse, RFM, changed)
    assert (written["rows_deleted"], written["rows_inserted"], written["skipped_unchanged"]) == (4, 4, False)
    assert stored(warehouse, RFM).equals(sorted_rows(changed, RFM))
    # A write that stores no fingerprint forgets the old one: the next sync writes again.
    warehouse.replace(RFM, rfm_rows(2), None)
    assert warehouse.stored_fingerprint(RFM) is None
    assert sync(warehouse, RFM, changed)["skipped_unchanged"] is False
    assert stored(warehouse, RFM).equals(sorted_rows(changed, RFM))


def test_a_failed_write_leaves_the_previous_rows(warehouse: WarehouseIOManager) -> None:
    previous = category_rows({0: ["toys"], 1: ["books", "toys"]})
    warehouse.replace(CATEGORIES, previous, window(0, 1))
    # A batch the warehouse refuses mid-write: `items` is text that is not a number.
    broken = category_rows({1: ["garden"]}).set_column(2, "items", pa.array(["many"]))
    with pytest.raises(WarehouseError, match="the table is unchanged"):
        warehouse.replace(CATEGORIES, broken, window(1, 1))
    assert stored(warehouse).equals(sorted_rows(previous))
    # A good re-run after the failure completes without duplicates.
    fixed = category_rows({1: ["garden"]})
    warehouse.replace(CATEGORIES, fixed, window(1, 1))
    assert stored(warehouse, at=window(1, 1)).equals(fixed)
    if isinstance(warehouse, BigQueryWarehouse):  # the failed load's staging table was dropped too
        client = warehouse.client()
        assert [t.table_id for t in client.list_tables(warehouse.dataset)] == [CATEGORIES.name]


def test_a_column_the_contract_gains_is_added_and_a_changed_type_refused(
    warehouse: WarehouseIOManager,
) -> None:
    old_contract = dataclasses.replace(CATEGORIES, columns=CATEGORIES.columns[:-1])  # no median yet
    old_rows = category_rows({0: ["toys"]}).drop_columns(["median_item_revenue"])
    warehouse.replace(old_contract, old_rows, window(0, 0))

    new_rows = category_rows({1: ["books"]})
    written = warehouse.replace(CATEGORIES, new_rows, window(1, 1))
    assert written["columns_added"] == "median_item_revenue"
    both = stored(warehouse)
    assert both["median_item_revenue"].to_pylist() == [None, new_rows["median_item_revenue"][0].as_py()]

    # Money turned into text would lose the type every query relies on: refused, nothing written.
    as_text = tuple(
        dataclasses.replace(c, type="string") if c.name == "total_revenue" else c for c in CATEGORIES.columns
    )
    retyped = dataclasses.replace(CATEGORIES, columns=as_text)
    with pytest.raises(WarehouseSchemaError, match=r"total_revenue is NUMERIC|total_revenue is DECIMAL"):
        warehouse.replace(retyped, category_rows({1: ["toys"]}).cast(contract_schema(retyped)), window(1, 1))
    assert stored(warehouse).equals(both)


# ------------------------------------------------------------------------------- DuckDB specifics


def test_duckdb_table_has_the_contract_types(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    metadata = warehouse.replace(CATEGORIES, category_rows({0: ["toys"]}), window(0, 0))
    assert metadata["dagster/table_name"] == "w.gold.daily_category_report"
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        columns = con.sql("DESCRIBE gold.daily_category_report").fetchall()
        comment = con.sql("SELECT comment FROM duckdb_tables() WHERE table_name = 'daily_category_report'")
        assert comment.fetchall() == [(CATEGORIES.description,)]
    assert [(name, kind, null) for name, kind, null, *_ in columns] == [
        ("order_date", "DATE", "NO"),
        ("product_category", "VARCHAR", "NO"),
        ("items", "BIGINT", "NO"),
        ("orders", "BIGINT", "NO"),
        ("total_revenue", "DECIMAL(18,2)", "NO"),
        ("avg_item_revenue", "DECIMAL(18,2)", "NO"),
        ("median_item_revenue", "DECIMAL(18,2)", "NO"),
    ]


def test_duckdb_write_waits_for_another_process_holding_the_file(tmp_path: Path) -> None:
    file = tmp_path / "w.duckdb"
    DuckDBWarehouse(path=str(file)).replace(RFM, rfm_rows(1), None)
    # A SQL client (another process) holds the file for 2 seconds.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(file)!r}); print(1, flush=True); time.sleep(2)",
        ],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout.readline().strip() == b"1"
    with pytest.raises(WarehouseError, match="lock"):
        DuckDBWarehouse(path=str(file), lock_timeout_seconds=0.5).replace(RFM, rfm_rows(2), None)
    DuckDBWarehouse(path=str(file)).replace(RFM, rfm_rows(2), None)  # waits, then writes
    holder.wait(10)
    assert stored(DuckDBWarehouse(path=str(file)), RFM).num_rows == 2


# ----------------------------------------------------------------------------- BigQuery specifics


def test_bigquery_table_is_typed_partitioned_and_clustered(emulator_endpoint: str) -> None:
    warehouse = BigQueryWarehouse(project=PROJECT, dataset="typed", endpoint=emulator_endpoint)
    facts = next(t for t in SYNCED_TABLES if t.name == "fact_order_items")
    metadata = warehouse.replace(CATEGORIES, category_rows({0: ["toys"]}), window(0, 0))
    warehouse.replace(facts, contract_schema(facts).empty_table(), window(0, 0))  # created, no rows
    client = warehouse.client()
    table = client.get_table(warehouse.table_id(CATEGORIES))
    assert [(f.name, f.field_type, f.mode) for f in table.schema] == [
        ("order_date", "DATE", "REQUIRED"),
        ("product_category", "STRING", "REQUIRED"),
        ("items", "INT64", "REQUIRED"),
        ("orders", "INT64", "REQUIRED"),
        ("total_revenue", "NUMERIC", "REQUIRED"),
        ("avg_item_revenue", "NUMERIC", "REQUIRED"),
        ("median_item_revenue", "NUMERIC", "REQUIRED"),
    ]
    assert (table.time_partitioning.type_, table.time_partitioning.field) == ("DAY", "order_date")
    assert table.clustering_fields == ["product_category"]
    fact_table = client.get_table(warehouse.table_id(facts))
    types = {f.name: f.field_type for f in fact_table.schema}
    assert (types["shipping_limit_date"], types["price"], types["is_revenue_order"]) == (
        "DATETIME",
        "NUMERIC",
        "BOOL",
    )
    assert fact_table.clustering_fields == ["product_category", "seller_key", "product_key"]
    # What a person needs to find the work in BigQuery.
    assert metadata["load_job_id"] and metadata["merge_job_id"]
    assert metadata["parquet_bytes"] > 0
    assert metadata["console_url"].url.endswith("!1smedallion-test!2styped!3sdaily_category_report")


# ------------------------------------------------------------------- the pipeline's sync of gold


def _gold(lake: Path, table) -> pa.Table:
    rows = Lake.from_settings(get_settings(), str(lake)).read_batches(dg.AssetKey(table.asset_path), None)
    return conform(rows.read_all(), table)


def _assert_live_view_is_the_batch_report(lake: Path, warehouse: WarehouseIOManager) -> None:
    """The hand-made shop has no events: the live view is daily_order_report, no order counted live."""
    batch = _gold(lake, GOLD_REPORTS["daily_order_report"]).to_pylist()
    live = warehouse.query(f"SELECT * FROM {warehouse.view_ref('live_daily_orders')}").to_pylist()
    expected = {r["order_date"]: (r["orders"], r["orders"], 0, r["total_revenue"]) for r in batch}
    columns = ("orders", "batch_orders", "live_orders", "batch_revenue")
    assert batch and {r["order_date"]: tuple(r[c] for c in columns) for r in live} == expected


def test_the_build_synced_every_gold_table_to_duckdb_equal_to_gold(handmade_build: HandmadeBuild) -> None:
    warehouse = DuckDBWarehouse(path=str(handmade_build.home / "warehouse.duckdb"))
    _assert_live_view_is_the_batch_report(handmade_build.lake, warehouse)
    assert_analytics_views_equal_gold(handmade_build.lake, warehouse)
    for table in SYNCED_TABLES:
        gold = _gold(handmade_build.lake, table)
        # The hand-made shop has no web shop events: the clickstream's tables are empty (their sync
        # with rows: test_stream_silver.py).
        assert gold.num_rows > 0 or table.partition_column == EVENT_DATE, table.name
        assert compare(gold, warehouse.read(table, None), list(table.primary_key)).equal, table.name
    for table in SYNCED_TABLES:  # each table's equals_gold and column-schema checks ran and passed
        outcome = handmade_build.summary.assets[f"warehouse/{table.name}"]
        assert (outcome.checks_passed, outcome.checks_failed) == (2, 0), table.name


def test_bigquery_sync_through_dagster_reads_back_equal_to_gold(
    handmade_build: HandmadeBuild, emulator_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MEDALLION_WAREHOUSE=bigquery: the warehouse assets of the hand-made shop, materialized by
    Dagster into the emulator, and their equals_gold checks."""
    from medallion_assets.build import build
    from medallion_assets.definitions import code_location

    lake = tmp_path / "lake"
    shutil.copytree(handmade_build.lake, lake)
    monkeypatch.setenv("MEDALLION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDALLION_LAKE_URI", str(lake))
    monkeypatch.setenv("MEDALLION_WAREHOUSE", "bigquery")
    monkeypatch.setenv("MEDALLION_BIGQUERY_PROJECT", PROJECT)
    monkeypatch.setenv("MEDALLION_BIGQUERY_DATASET", "handmade")
    monkeypatch.setenv("MEDALLION_BIGQUERY_ANALYTICS_DATASET", "handmade_analytics")
    monkeypatch.setenv("MEDALLION_BIGQUERY_ENDPOINT", emulator_endpoint)
    first, last = handmade_build.summary.range
    with dg.DagsterInstance.ephemeral() as instance:
        summary = build(
            code_location(), "key:warehouse/*", first, last, echo=lambda _: None, instance=instance
        )
    assert summary.success, summary.failed_steps
    for table in SYNCED_TABLES:  # each table's equals_gold and column-schema checks ran and passed
        outcome = summary.assets[f"warehouse/{table.name}"]
        assert (outcome.checks_passed, outcome.checks_failed) == (2, 0), table.name
    warehouse = BigQueryWarehouse()
    for table in SYNCED_TABLES:
        gold = _gold(lake, table)
        assert compare(gold, warehouse.read(table, None), list(table.primary_key)).equal, table.name
    _assert_live_view_is_the_batch_report(lake, warehouse)
    assert_analytics_views_equal_gold(lake, warehouse)
    # No staging table is left behind; the views are views, in their datasets.
    listed = {t.table_id: t.table_type for t in warehouse.client().list_tables("handmade")}
    gold_views = {v.name: "VIEW" for v in WAREHOUSE_VIEWS.values() if v.schema == "gold"}
    assert listed == {t.name: "TABLE" for t in SYNCED_TABLES} | gold_views
    analytics = {t.table_id: t.table_type for t in warehouse.client().list_tables("handmade_analytics")}
    assert analytics == {name: "VIEW" for name in ANALYTICS_VIEWS}
    # The report's queries run on BigQuery too, with the figures the DuckDB warehouse gives (the
    # exact ones: a share is NUMERIC in BigQuery, DOUBLE in DuckDB).
    here, there = (
        read_figures(w)
        for w in (warehouse, DuckDBWarehouse(path=str(handmade_build.home / "warehouse.duckdb")))
    )
    assert here.daily and (here.daily, here.categories, here.states, here.totals) == (
        there.daily,
        there.categories,
        there.states,
        there.totals,
    )
    assert [(s["segment"], s["customers"], s["revenue"]) for s in here.segments] == [
        (s["segment"], s["customers"], s["revenue"]) for s in there.segments
    ]


# ------------------------------------------------------- the sync holds no whole table in memory

# One process writes gold/customer_rfm with N rows; another syncs it as a run does (a whole table:
# fingerprint, load, then the equals_gold comparison) to DuckDB and prints its peak RSS (VmHWM:
# getrusage's figure would include the forking test process's).
SYNC_SCRIPT = """
import sys
from pathlib import Path

import dagster as dg
from deltalake import write_deltalake
import pyarrow as pa

from medallion_assets.resources.delta_lake import Lake, WindowRows
from medallion_assets.resources.duckdb_warehouse import DuckDBWarehouse
from medallion_assets.resources.warehouse import Conformed, contract_schema
from medallion_assets.settings import get_settings
from medallion_assets.specs import GOLD_REPORTS
from medallion_assets.warehouse.assets import compare

rows, work = int(sys.argv[1]), Path(sys.argv[2])
table = GOLD_REPORTS["customer_rfm"]
schema = contract_schema(table)
key = dg.AssetKey(table.asset_path)


def chunks():
    for start in range(0, rows, 100_000):
        ids = pa.array(range(start, min(start + 100_000, rows)))
        yield pa.RecordBatch.from_pydict(
            {
                "customer_unique_id": pa.compute.utf8_lpad(ids.cast(pa.string()), 32, "0"),
                "last_order_date": pa.compute.cast(ids.cast(pa.int32()), pa.date32()),
                "recency_days": ids,
                "frequency": ids,
                "monetary": pa.compute.cast(ids.cast(pa.int32()), pa.decimal128(18, 2)),
                "r_score": ids,
                "f_score": ids,
                "m_score": ids,
                "segment": pa.compute.utf8_lpad(ids.cast(pa.string()), 12, "s"),
            },
            schema=schema,
        )


lake = Lake.from_settings(get_settings(), str(work / "lake"))
if sys.argv[3] == "write":  # files of 100,000 rows (Spark writes files of at most 250,000)
    for chunk in chunks():
        write_deltalake(lake.uri(key), pa.Table.from_batches([chunk]), mode="append")
    sys.exit()
warehouse = DuckDBWarehouse(path=str(work / "warehouse.duckdb"), memory_limit="64MB")
gold = WindowRows(lake, key, None)
with dg.DagsterInstance.ephemeral() as instance:
    context = dg.build_output_context(asset_key=dg.AssetKey(["warehouse", table.name]), instance=instance)
    warehouse.handle_output(context, gold)
stored = lambda: warehouse.read_batches(table, None)
result = compare(lambda: Conformed(gold, table).reader, stored, list(table.primary_key), "64MB")
assert result.equal and result.gold_rows == rows, result
peak_kib = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM"))
print("peak_rss_mib", int(peak_kib.split()[1]) / 1024)
"""


def sync_peak_rss(rows: int, work: Path) -> float:
    work.mkdir()
    for step in ("write", "sync"):
        done = subprocess.run(
            [sys.executable, "-c", SYNC_SCRIPT, str(rows), str(work), step],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    return float(
        next(line for line in done.stdout.splitlines() if line.startswith("peak_rss_mib")).split()[1]
    )


def test_the_sync_streams_gold_in_bounded_batches(tmp_path: Path) -> None:
    """200,000 rows and 2,000,000 (~230 MiB as Arrow, twice that for a comparison holding both
    sides): the run process's peak grows by less than one copy of the table (measured: 390 and 434
    MiB; with Arrow's dataset scanner, which ran ahead of the slower writer and buffered the table,
    the 2M rows peaked above 850)."""
    small, large = sync_peak_rss(200_000, tmp_path / "small"), sync_peak_rss(2_000_000, tmp_path / "large")
    print(f"sync peak RSS: {small:.0f} MiB for 200k rows, {large:.0f} MiB for 2M rows")
    assert large - small < 150, (small, large)
