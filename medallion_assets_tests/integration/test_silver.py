"""Silver: the bad-row corpus, latest-wins merges in any order, and the real sample accounted for."""

import datetime as dt
import json
import shutil
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from medallion_assets.build import build, format_summary
from medallion_assets.definitions import code_location
from medallion_assets.resources.delta_lake import Lake, Window
from medallion_assets.resources.spark import SparkResource
from medallion_assets.silver.assets import MISSING_PARENTS, apply_changes
from medallion_assets.silver.transform import FATE, RULE, conform, latest_per_key, latest_rows
from medallion_assets.specs import BRAZIL_STATES, CHANGE_DATE, SILVER_TABLES
from olist_source.system import load_source

SILVER = {t.name: t for t in SILVER_TABLES}
T0 = dt.datetime(2017, 3, 1, 10, 0, 0)
ID = "0123456789abcdef0123456789abcdef"


def bronze_batch(name: str, rows: list[dict], change_ts: list[dt.datetime] | None = None) -> pa.Table:
    """Bronze rows as a landing file would give them: every value as text, plus the lineage columns."""
    spec = SILVER[name].source
    assert spec is not None
    columns = [c.name for c in spec.all_columns] + ["created_at", "updated_at"]
    texts = {
        c: pa.array([None if r.get(c) is None else str(r[c]) for r in rows], pa.string()) for c in columns
    }
    times = change_ts or [T0] * len(rows)
    return pa.table(
        {
            **texts,
            "_ingested_at": pa.array(
                [dt.datetime(2017, 3, 2, tzinfo=dt.UTC)] * len(rows), pa.timestamp("us", tz="UTC")
            ),
            "_change_ts": pa.array(times, pa.timestamp("us")),
            "_change_date": pa.array([t.date() for t in times], pa.date32()),
        }
    )


def run_silver(
    name: str, batch: pa.Table, spark: SparkResource, lake: Lake
) -> tuple[list[dict], list[dict], dict]:
    silver, quarantine, accounting = apply_changes(
        spark.session().createDataFrame(batch),
        SILVER[name],
        "run-1",
        Window(CHANGE_DATE, dt.date.min, dt.date(2017, 3, 2)),  # the batch: every change before that day
        spark.session(),
        lake,
    )
    return silver.toArrow().to_pylist(), quarantine.toArrow().to_pylist(), accounting


def customer(**overrides: object) -> dict:
    row = {
        "customer_id": ID,
        "customer_unique_id": ID,
        "customer_zip_code_prefix": "01037",
        "customer_city": "  São   Paulo ",
        "customer_state": "sp",
        "created_at": "2017-03-01 10:00:00",
        "updated_at": "2017-03-01 10:00:00",
    }
    return {**row, **overrides}


def test_bad_rows_are_quarantined_with_the_right_reason(
    spark_resource: SparkResource, tmp_path: Path
) -> None:
    lake = Lake(str(tmp_path), {})
    other = ID[::-1]
    rows = [
        customer(),  # good, and normalised below
        customer(customer_id=None),
        customer(customer_id="fedcba9876543210fedcba9876543210", customer_state="XX"),
        customer(customer_id="aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", customer_city="x" * 150),
        customer(customer_id="'; DROP TABLE olist.customers; --"),
        customer(customer_id=other, customer_zip_code_prefix="1037"),  # lost its leading zero: repaired
    ]
    silver, quarantine, accounting = run_silver(
        "customers", bronze_batch("customers", rows), spark_resource, lake
    )
    reasons = {q["rule"]: q["reason"] for q in quarantine}
    assert reasons == {
        "customer_id:required": "customer_id is missing",
        "customer_state:allowed": f"customer_state 'XX' is not one of {', '.join(BRAZIL_STATES)}",
        "customer_city:length": "customer_city is 150 characters long, more than 100",
        "customer_id:pattern": (
            "customer_id ''; DROP TABLE olist.customers; --' does not match ^[0-9a-f]{32}$"
        ),
    }
    good = {r["customer_id"]: r for r in silver}
    assert good[ID]["customer_city"] == "sao paulo" and good[ID]["customer_state"] == "SP"
    assert good[other]["customer_zip_code_prefix"] == "01037"
    quarantined = quarantine[0]
    assert quarantined["_run_id"] == "run-1" and json.loads(quarantined["_raw"])["customer_state"] == "sp"
    assert (
        accounting["rows_read"] == 6
        and accounting["rows_accepted"] == 2
        and accounting["rows_quarantined"] == 4
    )


def test_corpus_of_typed_and_value_faults(spark_resource: SparkResource, tmp_path: Path) -> None:
    lake = Lake(str(tmp_path), {})
    base = {
        "order_id": ID,
        "customer_id": ID,
        "order_status": "delivered",
        "order_purchase_timestamp": "2017-03-01 09:00:00",
        "order_approved_at": None,
        "order_delivered_carrier_date": None,
        "order_delivered_customer_date": None,
        "order_estimated_delivery_date": "2017-03-20 00:00:00",
        "created_at": "2017-03-01 09:00:00",
        "updated_at": "2017-03-01 10:00:00",
    }
    orders = [
        {**base, "order_id": "1" * 32, "order_status": "lost"},
        {**base, "order_id": "2" * 32, "order_purchase_timestamp": "2017-13-45 99:00:00"},
        {**base, "order_id": "3" * 32, "order_status": " Shipped "},  # normalised, accepted
    ]
    silver, quarantine, _ = run_silver("orders", bronze_batch("orders", orders), spark_resource, lake)
    assert {q["rule"] for q in quarantine} == {"order_status:allowed", "order_purchase_timestamp:type"}
    assert [r["order_status"] for r in silver] == ["shipped"]
    assert silver[0][MISSING_PARENTS] == "customers"  # kept and flagged, not quarantined

    review = {
        "review_id": ID,
        "order_id": ID,
        "review_score": "5",
        "review_comment_title": None,
        "review_comment_message": "Robert'); DROP TABLE reviews;-- <script>alert(1)</script>",
        "review_creation_date": "2017-03-01 00:00:00",
        "review_answer_timestamp": None,
        "created_at": "2017-03-01 00:00:00",
        "updated_at": "2017-03-01 10:00:00",
    }
    reviews = [
        review,
        {**review, "review_id": "1" * 32, "review_score": "0"},
        {**review, "review_id": "2" * 32, "review_score": "five"},
    ]
    silver, quarantine, _ = run_silver(
        "order_reviews", bronze_batch("order_reviews", reviews), spark_resource, lake
    )
    assert {q["rule"]: q["reason"] for q in quarantine} == {
        "review_score:min": "review_score 0 is below the minimum 1",
        "review_score:type": "review_score five is not an integer",
    }
    assert (
        silver[0]["review_comment_message"] == review["review_comment_message"]
    )  # text is data, kept verbatim

    item = {
        "order_id": ID,
        "order_item_id": "1",
        "product_id": ID,
        "seller_id": ID,
        "shipping_limit_date": "2017-03-05 10:00:00",
        "price": "-5.00",
        "freight_value": "1.005",
        "created_at": "2017-03-01 09:00:00",
        "updated_at": "2017-03-01 10:00:00",
    }
    _, quarantine, _ = run_silver(
        "order_items",
        bronze_batch("order_items", [item, {**item, "order_item_id": "2", "price": "5.00"}]),
        spark_resource,
        lake,
    )
    assert {q["rule"]: q["reason"] for q in quarantine} == {
        "price:min": "price -5.00 is below the minimum 0",
        "freight_value:type": "freight_value 1.005 is not an amount with at most 2 decimals",
    }


def test_duplicates_latest_wins_ties_are_deterministic(spark_resource: SparkResource, tmp_path: Path) -> None:
    lake = Lake(str(tmp_path), {})
    later = T0 + dt.timedelta(hours=1)
    rows = [
        customer(customer_city="campinas"),
        customer(customer_city="santos"),  # same key, same time
        customer(customer_id="1" * 32, customer_city="old"),
        customer(customer_id="1" * 32, customer_city="new"),
        customer(customer_id="2" * 32),
        customer(customer_id="2" * 32),
    ]  # exact duplicates
    times = [T0, T0, T0, later, T0, T0]
    outcomes = []
    for order in ([0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0]):  # arrival order must not matter
        batch = bronze_batch("customers", [rows[i] for i in order], [times[i] for i in order])
        silver, quarantine, accounting = run_silver("customers", batch, spark_resource, lake)
        outcomes.append(
            (
                sorted((r["customer_id"], r["customer_city"]) for r in silver),
                sorted((q["rule"], json.loads(q["_raw"])["customer_city"]) for q in quarantine),
            )
        )
        assert accounting["rows_superseded"] == 2 and accounting["rows_quarantined"] == 1
        assert accounting["quarantined_by_rule"].data == {"key:conflict": 1}
    assert outcomes[0] == outcomes[1]
    winners = dict(outcomes[0][0])
    assert winners["1" * 32] == "new"

    # The one-aggregation path (the SCD2 states, geolocation's history) keeps the same winners, the
    # tie of key 0123... (same change time, other content) included, whatever the arrival order.
    spec = SILVER["customers"].source
    assert spec is not None
    for order in ([0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0]):
        batch = bronze_batch("customers", [rows[i] for i in order], [times[i] for i in order])
        valid = conform(spark_resource.session().createDataFrame(batch), spec).filter(F.col(RULE).isNull())
        ranked = latest_per_key(valid, spec.primary_key).filter(F.col(FATE) == "winner")
        aggregated = latest_rows(valid, spec.primary_key, valid.columns)
        expected, got = (sorted_rows(f.select(*valid.columns)) for f in (ranked, aggregated))
        assert got == expected and len(got) == 3
        assert {r["customer_id"]: r["customer_city"] for r in got} == winners


def sorted_rows(frame: DataFrame) -> list[dict]:
    return sorted(frame.toArrow().to_pylist(), key=lambda r: json.dumps(r, default=str, sort_keys=True))


# --------------------------------------------------------------------- whole assets, through Dagster


def silver_state(lake_root: str) -> dict[str, list[dict]]:
    state = {}
    for table in SILVER_TABLES:
        rows = DeltaTable(f"{lake_root}/silver/{table.name}").to_pyarrow_dataset().to_table()
        rows = rows.drop_columns(["_run_id"])
        state[table.name] = sorted(rows.to_pylist(), key=lambda r: json.dumps(r, default=str, sort_keys=True))
    return state


@pytest.fixture
def replay_env(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_generated_dir: Path
) -> Path:
    monkeypatch.setenv("MEDALLION_SOURCE_URL", pg_url)
    monkeypatch.setenv("MEDALLION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.setenv("MEDALLION_LAKE_URI", str(tmp_path / "backfill"))
    # Dagster books every partition of every asset (~8 ms each): a few months of history.
    load_source(pg_url, small_generated_dir, as_of=dt.datetime(2016, 12, 1), replace=True)
    return tmp_path


@pytest.mark.slow
def test_day_by_day_in_any_order_equals_one_backfill(
    replay_env: Path, monkeypatch: pytest.MonkeyPatch, booked: dg.DagsterInstance
) -> None:
    # What silver holds is the point: the checks run in other tests (a fifth of a build's time).
    silent = {"echo": lambda _: None, "instance": booked, "checks": False}
    assert build(code_location(), "key:bronze/*", **silent).success
    shutil.copytree(replay_env / "backfill" / "bronze", replay_env / "stepwise" / "bronze")
    summary = build(code_location(), "key:silver/* or key:quarantine/*", **silent)
    assert summary.success, format_summary(summary)
    backfill = silver_state(str(replay_env / "backfill"))

    monkeypatch.setenv("MEDALLION_LAKE_URI", str(replay_env / "stepwise"))
    first, last = summary.range
    middle = first + (last - first) / 2
    day = dt.timedelta(days=1)
    # The newest days first, then the older ones, then the day left between them (incremental), then
    # a day again: the state must equal the one backfill.
    steps = [(middle + day, last), (first, middle - day), (middle, middle), (middle + day, middle + day)]
    for start, end in steps:
        assert build(code_location(), "key:silver/* or key:quarantine/*", start, end, **silent).success
    assert silver_state(str(replay_env / "stepwise")) == backfill
    orders = backfill["orders"]
    assert len(orders) == len({o["order_id"] for o in orders}) > 0  # one row per key


def test_real_sample_every_row_accounted_for(sample_silver: tuple[Path, dict]) -> None:
    """The real sample's bronze through the silver logic (see the `sample_silver` fixture)."""
    root, accounts = sample_silver
    lake = Lake(str(root), {})
    report = {}
    for table in SILVER_TABLES:
        accounting = accounts[table.name]
        assert accounting["rows_read"] == accounting["bronze_rows"]
        assert accounting["rows_read"] == (
            accounting["rows_accepted"] + accounting["rows_quarantined"] + accounting["rows_superseded"]
        )
        assert accounting["quarantine_rows"] == accounting["rows_quarantined"]
        if table.name != "geolocation":
            assert accounting["written_rows"] == accounting["rows_accepted"]
        report[table.name] = {k: accounting[k] for k in ("rows_read", "rows_accepted", "rows_quarantined")}
        report[table.name]["by_rule"] = accounting["quarantined_by_rule"].data
    print("\nreal sample through silver:", json.dumps(report, indent=1))
    items = DeltaTable(lake.uri(dg.AssetKey(["silver", "order_items"]))).to_pyarrow_dataset().to_table()
    assert pc.sum(pc.is_valid(items[MISSING_PARENTS])).as_py() > 0  # items of unknown orders: kept, flagged
    products = DeltaTable(lake.uri(dg.AssetKey(["silver", "products"]))).to_pyarrow_dataset().to_table()
    untranslated = products.filter(pc.equal(products["product_category_name"], "pc_gamer"))
    assert (
        untranslated.num_rows > 0
        and untranslated["product_category_name_english"].null_count == untranslated.num_rows
    )
    geolocation = DeltaTable(lake.uri(dg.AssetKey(["silver", "geolocation"]))).to_pyarrow_dataset().to_table()
    assert pc.count_distinct(geolocation["geolocation_zip_code_prefix"]).as_py() == geolocation.num_rows
    assert pc.sum(geolocation["geolocation_rows"]).as_py() == report["geolocation"]["rows_accepted"]
