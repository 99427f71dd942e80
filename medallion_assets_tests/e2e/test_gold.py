"""Gold through Dagster builds: exact reports of the hand-made shop, freshness of old partitions,
replay = full, the real sample through every gold asset. (SCD2 history and point-in-time joins on
Spark alone: integration/test_gold_history.py.)"""

import datetime as dt
import json
import shutil
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from medallion_assets.build import build, format_summary
from medallion_assets.definitions import code_location
from medallion_assets.gold.history import UNKNOWN_KEY
from medallion_assets.resources.delta_lake import Lake
from medallion_assets.resources.spark import SparkResource
from medallion_assets.specs import (
    GOLD_DIMENSIONS,
    GOLD_FACTS,
    GOLD_REPORTS,
    GOLD_WIDE,
    LAKE_TABLES,
    STREAM_TABLES,
)
from medallion_assets_tests import handmade
from medallion_assets_tests.handmade import P1, at, write_handmade
from medallion_assets_tests.helpers import HandmadeBuild, assert_scd2_invariants, booked_instance
from olist_source.system import advance_source, load_source

GOLD = {**GOLD_DIMENSIONS, **GOLD_FACTS, **GOLD_REPORTS, **GOLD_WIDE}
SCD2_MEMBERS = {"dim_customer": "customer_unique_id", "dim_product": "product_id", "dim_seller": "seller_id"}
THROUGH_GOLD = "not key:warehouse/* and not key:interface/*"  # every lake layer, no warehouse


def gold_rows(lake_root: Path | str, name: str) -> list[dict]:
    rows = DeltaTable(f"{lake_root}/gold/{name}").to_pyarrow_dataset().to_table()
    rows = rows.drop_columns([c for c in rows.column_names if c == "_run_id"])
    return sorted(rows.to_pylist(), key=lambda r: json.dumps(r, default=str, sort_keys=True))


# ----------------------------------------------------------------- the hand-made shop, through Dagster


@pytest.fixture
def shop(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MEDALLION_SOURCE_URL", pg_url)
    monkeypatch.setenv("MEDALLION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDALLION_LAKE_URI", str(tmp_path / "lake"))
    return write_handmade(tmp_path / "csv")


def test_reports_equal_values_worked_out_by_hand(handmade_build: HandmadeBuild) -> None:
    summary, instance, lake = handmade_build.summary, handmade_build.instance, handmade_build.lake
    assert summary.success, format_summary(summary)

    daily = {
        r["order_date"]: (r["orders"], r["total_revenue"], r["avg_order_revenue"])
        for r in gold_rows(lake, "daily_order_report")
    }
    assert daily == handmade.expected_daily_orders()
    assert daily[dt.date(2018, 3, 1)] == (2, Decimal("170.65"), Decimal("85.33"))  # 85.325 half-up
    categories = {
        (r["order_date"], r["product_category"]): (
            r["items"],
            r["orders"],
            r["total_revenue"],
            r["avg_item_revenue"],
            r["median_item_revenue"],
        )
        for r in gold_rows(lake, "daily_category_report")
    }
    assert categories == handmade.expected_daily_categories()
    assert categories[(dt.date(2018, 3, 1), "health_beauty")][4] == Decimal("10.08")  # (10.05 + 10.10) / 2
    assert categories[(dt.date(2018, 3, 3), "health_beauty")][4] == Decimal("7.00")  # odd count
    assert (dt.date(2018, 3, 1), "categoria_nova") in categories  # untranslated: the Portuguese name
    assert (dt.date(2018, 3, 1), "unknown") in categories  # no category at all

    rfm = {r["customer_unique_id"]: r for r in gold_rows(lake, "customer_rfm")}
    assert set(rfm) == {handmade.P1, handmade.P2, handmade.P3}  # canceled-only and item-less orders: out
    assert (rfm[P1]["recency_days"], rfm[P1]["frequency"], rfm[P1]["monetary"]) == (1, 2, Decimal("90.15"))
    # 1 + floor(5 * customers strictly worse / 3), worked out per score
    assert {p: (r["r_score"], r["f_score"], r["m_score"], r["segment"]) for p, r in rfm.items()} == {
        handmade.P1: (2, 4, 1, "at risk"),
        handmade.P2: (1, 1, 4, "hibernating"),
        handmade.P3: (4, 1, 2, "promising"),
    }

    customers = gold_rows(lake, "dim_customer")
    assert_scd2_invariants(customers, "customer_unique_id", "customer_key")
    p1 = sorted((r for r in customers if r["customer_unique_id"] == P1), key=lambda r: r["valid_from"])
    assert [(r["customer_city"], r["valid_from"]) for r in p1] == [
        ("sao paulo", at(1, 10)),
        ("rio de janeiro", at(2, 15)),
    ]
    orders = {r["order_id"]: r for r in gold_rows(lake, "fact_orders")}
    assert len(orders) == len(handmade.ORDERS)  # every status, the item-less order too
    first, second = (
        next(o for o in handmade.ORDERS if o[0] == i) for i in (handmade._id("o1"), handmade._id("o5"))
    )
    assert orders[first[0]]["customer_key"] == p1[0]["customer_key"]  # the address of March 1st
    assert orders[second[0]]["customer_key"] == p1[1]["customer_key"]
    assert orders[first[0]]["latest_review_score"] == 5 and orders[first[0]]["is_late"] is True
    assert orders[handmade._id("o4")]["is_revenue_order"] is False  # no items
    items = gold_rows(lake, "fact_order_items")
    assert len(items) == len(handmade.ITEMS)
    assert all(r["product_key"] != UNKNOWN_KEY and r["seller_key"] != UNKNOWN_KEY for r in items)
    for name, member in SCD2_MEMBERS.items():
        assert_scd2_invariants(gold_rows(lake, name), member, GOLD[name].primary_key[0])

    # What the UI shows: row counts, a preview of each report, versions new and closed.
    def metadata(name: str) -> dict:
        event = instance.get_latest_materialization_event(dg.AssetKey(["gold", name]))
        assert event is not None and event.asset_materialization is not None
        return event.asset_materialization.metadata

    assert "85.33" in metadata("daily_order_report")["preview"].value
    assert metadata("dim_customer")["versions_new"].value == len(customers)
    assert metadata("fact_orders")["dagster/row_count"].value >= 1


def test_wide_tables_carry_the_attributes_at_purchase_and_the_current_ones(
    handmade_build: HandmadeBuild,
) -> None:
    lake = handmade_build.lake
    facts = {r["order_id"]: r for r in gold_rows(lake, "fact_orders")}
    wide = {r["order_id"]: r for r in gold_rows(lake, "orders_wide")}
    assert set(wide) == set(facts)  # one row per order, every status
    for order_id, fact in facts.items():  # the facts, unchanged
        assert {name: wide[order_id][name] for name in fact if not name.startswith("_")} == {
            name: value for name, value in fact.items() if not name.startswith("_")
        }
    first, second = wide[handmade._id("o1")], wide[handmade._id("o5")]
    # P1 ordered in Sao Paulo, then moved to Rio: the first order keeps Sao Paulo, beside Rio now.
    assert (first["customer_city"], first["customer_state"], first["customer_zip_code_prefix"]) == (
        "sao paulo",
        "SP",
        "01001",
    )
    assert (first["current_customer_city"], first["current_customer_state"]) == ("rio de janeiro", "RJ")
    assert first["customer_moved"] is True and second["customer_moved"] is False
    assert second["customer_city"] == second["current_customer_city"] == "rio de janeiro"
    # The calendar of the order date (2018-03-01, a Thursday) and the zip's position.
    assert (first["order_year"], first["order_month"], first["order_day_name"], first["is_weekend"]) == (
        2018,
        3,
        "Thursday",
        False,
    )
    assert first["customer_latitude"] is not None and first["customer_longitude"] is not None

    items = {(r["order_id"], r["order_item_id"]): r for r in gold_rows(lake, "order_items_wide")}
    assert len(items) == len(handmade.ITEMS)
    o2 = items[(handmade._id("o2"), 1)]
    assert (o2["product_category"], o2["product_category_name"]) == ("categoria_nova", "categoria_nova")
    assert (o2["seller_city"], o2["seller_state"], o2["customer_state"]) == ("belo horizonte", "MG", "MG")
    assert (o2["order_status"], o2["item_revenue"]) == ("delivered", Decimal("115.50"))
    assert items[(handmade._id("o1"), 1)]["is_late"] is True
    # Their checks ran in the build and passed: keys, nulls, and the same sums as the facts per day.
    for name in ("orders_wide", "order_items_wide"):
        outcome = handmade_build.summary.assets[f"gold/{name}"]
        assert outcome.checks_failed == 0 and outcome.checks_passed >= 3, name
    event = handmade_build.instance.get_latest_materialization_event(
        dg.AssetKey(["gold", "daily_order_report"])
    )
    assert event and event.asset_materialization
    page = event.asset_materialization.metadata["report_page"].value
    assert page == str(handmade_build.home.absolute() / "reports" / "olist_report.html")


@pytest.mark.slow
def test_late_changes_reach_old_order_dates_and_replay_equals_a_full_build(
    shop: Path, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, booked: dg.DagsterInstance
) -> None:
    # Seed 81 moves customer c1 and seller s1 and re-categorises p1 mid-history (asserted below).
    load_source(pg_url, shop, as_of=at(1, 23), seed=81, replace=True)
    # Every layer through gold; the warehouse copies are tested in test_warehouse.py. The checks run
    # in the first day-by-day step, where they judge late changes (a cancellation reaching day 1, new
    # versions of a product and a seller); the builds that only set up or compare the state go
    # without them (the checks add a fifth or more to a small build's time).
    instance, quiet = booked, {"echo": lambda _: None, "selection": THROUGH_GOLD}
    assert build(code_location(), instance=instance, checks=False, **quiet).success
    lake = tmp_path / "lake"
    march_first = dt.date(2018, 3, 1)

    def report_day_one() -> tuple[int, Decimal]:
        row = next(r for r in gold_rows(lake, "daily_order_report") if r["order_date"] == march_first)
        return row["orders"], row["total_revenue"]

    assert report_day_one() == (3, Decimal("225.65"))  # o3 not canceled yet
    # The cancellation of o3 comes 1-72 hours after its approval on day 10. Each step builds from
    # the day the source clock stood on at the step before: that day was only partly there.
    steps = [(at(14), at(1).date()), (handmade.END, at(14).date())]
    for to, first_day in steps:
        advance_source(pg_url, to=to)
        first_step = to == at(14)
        summary = build(
            code_location(), start=first_day, end=to.date(), instance=instance, checks=first_step, **quiet
        )
        assert summary.success, format_summary(summary)
        if first_step:
            assert report_day_one() == (2, Decimal("170.65"))  # canceled on day 10: gone from day 1
            product = instance.get_latest_materialization_event(dg.AssetKey(["gold", "dim_product"]))
            changes = product.asset_materialization.metadata
            assert (changes["versions_new"].value, changes["versions_closed"].value) == (1, 1)
    o1 = next(r for r in gold_rows(lake, "fact_orders") if r["order_id"] == handmade._id("o1"))
    assert o1["latest_review_score"] == 5  # the review of day 20 reached the order of day 1
    stepwise = {name: gold_rows(lake, name) for name in GOLD if name != "dim_date"}

    # Re-running gold over the last step changes nothing (idempotent). (Bronze's and silver's own
    # re-runs are tested in test_bronze.py and test_silver.py.)
    last_step = {"start": at(14).date(), "end": handmade.END.date(), "instance": instance}
    assert build(code_location(), **last_step, **{**quiet, "selection": "key:gold/*"}, checks=False).success
    assert {name: gold_rows(lake, name) for name in stepwise} == stepwise

    # A build from scratch over the same source state: bronze holds only the final rows.
    monkeypatch.setenv("MEDALLION_LAKE_URI", str(tmp_path / "scratch"))
    with booked_instance(tmp_path / "dagster-scratch") as scratch:
        assert build(code_location(), instance=scratch, checks=False, **quiet).success
    for name, rows in stepwise.items():
        assert gold_rows(tmp_path / "scratch", name) == rows, name
    assert len(DeltaTable(f"{lake}/bronze/customers").to_pyarrow_table()) > len(
        DeltaTable(f"{tmp_path / 'scratch'}/bronze/customers").to_pyarrow_table()
    )  # the two lakes really saw different histories
    products = [r for r in stepwise["dim_product"] if r["product_id"] == handmade._id("p1")]
    assert [r["product_category"] for r in sorted(products, key=lambda r: r["valid_from"])] == [
        "health_beauty",
        "categoria_nova",
    ]
    assert len([r for r in stepwise["dim_seller"] if r["seller_id"] == handmade._id("s1")]) == 2
    for name, member in SCD2_MEMBERS.items():
        assert_scd2_invariants(stepwise[name], member, GOLD[name].primary_key[0])


# ---------------------------------------------------------------------------------- the real sample


def test_real_sample_through_gold(
    sample_silver: tuple[Path, dict],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    booked: dg.DagsterInstance,
) -> None:
    """The real (partial) sample from silver through every gold asset, in Dagster."""
    shutil.copytree(sample_silver[0], tmp_path / "lake")
    monkeypatch.setenv("MEDALLION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDALLION_LAKE_URI", str(tmp_path / "lake"))
    summary = build(
        code_location(),
        "group:gold",
        dt.date(2016, 9, 1),
        dt.date(2018, 10, 31),
        echo=lambda _: None,
        instance=booked,
    )
    assert summary.success, format_summary(summary)
    lake = tmp_path / "lake"
    silver_orders = DeltaTable(f"{lake}/silver/orders").to_pyarrow_table()
    silver_items = DeltaTable(f"{lake}/silver/order_items").to_pyarrow_table()
    orders, items = gold_rows(lake, "fact_orders"), gold_rows(lake, "fact_order_items")
    assert len(orders) == silver_orders.num_rows  # every order, whatever its status
    known_orders = pc.is_in(silver_items["order_id"], silver_orders["order_id"])
    assert len(items) == pc.sum(known_orders).as_py()  # the others wait for their order
    # The sample lacks most customers: those orders point at the unknown member, none is dropped.
    silver_customers = DeltaTable(f"{lake}/silver/customers").to_pyarrow_table()
    missing = pc.sum(
        pc.invert(pc.is_in(silver_orders["customer_id"], silver_customers["customer_id"]))
    ).as_py()
    assert sum(o["customer_key"] == UNKNOWN_KEY for o in orders) == missing > 0
    revenue_orders = [o for o in orders if o["is_revenue_order"]]
    daily = gold_rows(lake, "daily_order_report")
    assert sum(r["orders"] for r in daily) == len(revenue_orders)
    assert sum(r["total_revenue"] for r in daily) == sum(o["revenue"] for o in revenue_orders)
    categories = gold_rows(lake, "daily_category_report")
    assert sum(r["items"] for r in categories) == sum(i["is_revenue_order"] for i in items)
    for name, member in SCD2_MEMBERS.items():
        assert_scd2_invariants(gold_rows(lake, name), member, GOLD[name].primary_key[0])
    holidays = [r for r in gold_rows(lake, "dim_date") if r["is_holiday"]]
    assert {"Christmas Day", "Independence Day"} <= {r["holiday_name"] for r in holidays}


def test_every_lake_table_reads_back_equal_through_delta_rs(
    handmade_build: HandmadeBuild, spark_resource: SparkResource
) -> None:
    """Spark writes the lake; other engines read it: every table of a build, read by delta-rs, holds
    the rows Spark reads, and its protocol needs no reader feature beyond timestampNtz."""
    lake, spark = Lake(str(handmade_build.lake), {}), spark_resource.session()
    checked = 0
    for table in (t for t in LAKE_TABLES if t not in STREAM_TABLES):  # streams: test_streams.py
        key = dg.AssetKey(table.asset_path)
        by_spark = lake.table(spark, key).toArrow()
        delta = DeltaTable(lake.uri(key))
        assert set(delta.protocol().reader_features or []) <= {"timestampNtz"}, key
        by_delta_rs = delta.to_pyarrow_table().select(by_spark.column_names)
        assert by_delta_rs.schema == by_spark.schema, key

        def rows(arrow) -> list[str]:
            return sorted(json.dumps(r, default=str, sort_keys=True) for r in arrow.to_pylist())

        assert rows(by_delta_rs) == rows(by_spark), key
        checked += by_spark.num_rows > 0
    assert checked >= len(LAKE_TABLES) // 2  # the hand-made shop fills most tables
