"""The stream lane into silver, against the real broker, database and Spark: review events and the
database's change feed make the same silver/order_reviews, alone or together; a stream run asks
for silver over exactly the event dates it landed; the clickstream keeps one row per event id."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
from pathlib import Path

import dagster as dg
import pytest
from deltalake import DeltaTable

from medallion_assets.automation.audit import audit_rows
from medallion_assets.automation.propagation import next_run_requests
from medallion_assets.bronze.streams import stream_assets
from medallion_assets.build import build, format_summary
from medallion_assets.definitions import code_location
from medallion_assets.resources.delta_lake import LakeResource
from medallion_assets.resources.duckdb_warehouse import DuckDBWarehouse
from medallion_assets.resources.kafka import KafkaResource
from medallion_assets.resources.kafka_server import KafkaServer
from medallion_assets.resources.spark import SparkResource
from medallion_assets.sources.olist_db import read_source_table
from medallion_assets.specs import GOLD_FACTS
from medallion_assets.specs.events import CLICKSTREAM, REVIEW_EVENTS
from olist_source.events import clickstream_events, encode, publish, review_events
from olist_source.system import advance_source, load_source

AS_OF = dt.datetime(2017, 8, 1)
TO = AS_OF + dt.timedelta(days=14)
LAND = {a.node_def.name: a for a in stream_assets()}
LAND_REVIEWS = LAND[f"bronze_{REVIEW_EVENTS.name}"]
SILVER_REVIEWS = "key:silver/order_reviews or key:quarantine/order_reviews"
REDELIVERED = 10  # events a producer's retry sends twice
# What the clickstream test reads, with everything upstream of it: the lane's gold and warehouse
# tables, the live view and the batch orders it counts against, and dim_date, which the facts'
# checks look their dates up in (the other assets, the categories, RFM and the wide tables, add
# minutes and nothing to what it asserts).
CLICKSTREAM_AND_ORDERS = (
    "+key:warehouse/live_daily_orders or +key:warehouse/daily_funnel_report or key:gold/dim_date"
)


def silver_reviews(lake: Path) -> list[dict]:
    rows = DeltaTable(str(lake / "silver" / "order_reviews")).to_pyarrow_table().drop_columns(["_run_id"])
    return sorted(rows.to_pylist(), key=lambda r: json.dumps(r, default=str, sort_keys=True))


@dataclasses.dataclass(frozen=True)
class Shop:
    """The replayed shop as of AS_OF in the session's PostgreSQL, with a broker, Spark and an instance."""

    pg_url: str
    kafka: KafkaResource
    spark: SparkResource
    instance: dg.DagsterInstance

    @property
    def silent(self) -> dict:  # what `build` is called with: no output, this test's instance
        return {"echo": lambda _: None, "instance": self.instance}

    @property
    def unchecked(self) -> dict:  # ...and without the asset checks, where the rows are the point
        return {**self.silent, "checks": False}

    @property
    def resources(self) -> dict:  # what the stream assets need
        return {"spark": self.spark, "lakehouse": LakeResource(), "kafka": self.kafka}


@pytest.fixture
def shop(
    kafka_home: KafkaServer,
    pg_url: str,
    small_generated_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    booked: dg.DagsterInstance,
    spark_resource: SparkResource,
) -> Shop:
    monkeypatch.setenv("MEDALLION_SOURCE_URL", pg_url)
    load_source(pg_url, small_generated_dir, as_of=AS_OF, replace=True)
    return Shop(pg_url, KafkaResource(), spark_resource, booked)


@pytest.mark.slow
def test_review_events_and_the_change_feed_make_one_silver(
    shop: Shop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg_url, kafka, booked, silent = shop.pg_url, shop.kafka, shop.instance, shop.unchecked
    base = tmp_path / "base"
    monkeypatch.setenv("MEDALLION_LAKE_URI", str(base))
    # Shared history: the reviews the change feed landed up to AS_OF, and every order up to TO.
    assert build(code_location(), "key:bronze/order_reviews", **silent).success
    advance_source(pg_url, to=TO)
    assert build(code_location(), "key:bronze/orders", **silent).success
    events = list(review_events(pg_url, AS_OF, TO))
    assert len(events) > 2 * REDELIVERED
    kafka.ensure_topic(REVIEW_EVENTS.topic, REVIEW_EVENTS.partitions)
    publish(kafka.producer(), REVIEW_EVENTS, events + events[:REDELIVERED])

    # The stretch after AS_OF comes by one lane, the other, or both.
    lanes = {"database": tmp_path / "database", "events": tmp_path / "events", "both": tmp_path / "both"}
    repository = code_location().get_repository_def()
    for name, lake in lanes.items():
        shutil.copytree(base, lake)
        monkeypatch.setenv("MEDALLION_LAKE_URI", str(lake))
        if name != "events":
            stretch = (AS_OF.date(), TO.date())
            assert build(code_location(), "key:bronze/order_reviews", *stretch, **silent).success
        if name != "database":
            landed = dg.materialize([LAND_REVIEWS], instance=booked, resources=shop.resources)
            # Propagation asks for silver over exactly the days the events fell on.
            requests = next_run_requests(booked.get_run_by_id(landed.run_id), repository, booked)
            days = sorted({e["event_time"].date() for e in events})
            asked = [
                (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
                for r in requests
            ]
            covered = {
                start + dt.timedelta(days=n)
                for first, last in asked
                for start, end in [(dt.date.fromisoformat(first), dt.date.fromisoformat(last))]
                for n in range((end - start).days + 1)
            }
            assert covered == set(days), asked
            assert all(
                set(r.asset_selection or [])
                == {dg.AssetKey(["silver", "order_reviews"]), dg.AssetKey(["quarantine", "order_reviews"])}
                for r in requests
            )
        summary = build(code_location(), SILVER_REVIEWS, end=TO.date(), **silent)
        assert summary.success, format_summary(summary)

    silver = {name: silver_reviews(lake) for name, lake in lanes.items()}
    assert silver["database"] == silver["events"] == silver["both"]
    # One row per review, each the version the database holds now.
    source = read_source_table(pg_url, "order_reviews").to_pylist()
    assert len(silver["both"]) == len({(r["review_id"], r["order_id"]) for r in source}) == len(source)
    now = {(r["review_id"], r["order_id"]): r["updated_at"] for r in source}
    assert {(r["review_id"], r["order_id"]): r["updated_at"] for r in silver["both"]} == now
    for name in lanes:  # nothing quarantined: the same version from two lanes is no conflict
        quarantine = DeltaTable(str(lanes[name] / "quarantine" / "order_reviews")).to_pyarrow_table()
        assert quarantine.num_rows == 0, (name, quarantine.to_pylist()[:3])

    # The last build read both lanes: every event of the stretch, redelivered ones included.
    record = booked.get_latest_materialization_event(dg.AssetKey(["silver", "order_reviews"]))
    assert record is not None and record.asset_materialization is not None
    metadata = {k: v.value for k, v in record.asset_materialization.metadata.items()}
    by_lane = metadata["rows_read_by_lane"]
    assert by_lane["events"] == len(events) + REDELIVERED and by_lane["database"] > 0
    assert metadata["rows_read"] == (
        metadata["rows_accepted"] + metadata["rows_superseded"] + metadata["rows_quarantined"]
    )


@pytest.mark.slow
def test_clickstream_keeps_each_event_once_and_checkouts_find_their_orders(
    shop: Shop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg_url, kafka, booked, silent, resources = (
        shop.pg_url,
        shop.kafka,
        shop.instance,
        shop.silent,
        shop.resources,
    )
    monkeypatch.setenv("MEDALLION_LAKE_URI", str(tmp_path / "lake"))
    advance_source(pg_url, to=TO)
    events = list(clickstream_events(pg_url, AS_OF, TO))
    checkouts = {e["order_id"] for e in events if e["event_type"] == "checkout"}
    assert len(checkouts) > 20
    kafka.ensure_topic(CLICKSTREAM.topic, CLICKSTREAM.partitions)
    # A producer's retries deliver some events twice; one event breaks the contract (no such page).
    publish(kafka.producer(), CLICKSTREAM, events + events[::25])
    bad = {**events[0], "event_id": "0" * 8 + "-0000-4000-8000-" + "0" * 12, "page": "basket"}
    producer = kafka.producer()
    producer.produce(CLICKSTREAM.topic, value=encode(bad), key=bad["session_id"].encode())
    assert producer.flush(30) == 0

    landed = dg.materialize([LAND[f"bronze_{CLICKSTREAM.name}"]], instance=booked, resources=resources)
    # The audit log's row of the run: the records it read and the offsets, from where to where.
    audited = {row.asset: row for row in audit_rows(booked, landed.run_id)}
    row = audited["bronze/clickstream"]
    assert row.status == "materialized" and row.rows_in == len(events) + len(events[::25]) + 1
    assert (
        row.offsets_end is not None
        and sum(json.loads(row.offsets_end)[CLICKSTREAM.topic].values()) == row.rows_in
    )
    quarantined = DeltaTable(str(tmp_path / "lake" / "quarantine" / "clickstream")).to_pyarrow_table()
    assert quarantined.select(["rule", "reason"]).to_pylist() == [
        {
            "rule": "page:allowed",
            "reason": "page 'basket' is not one of home, search, category, product, cart, checkout",
        }
    ]
    # Silver over the days the run landed, as propagation asks for them, with silver/orders beside.
    requests = next_run_requests(
        booked.get_run_by_id(landed.run_id), code_location().get_repository_def(), booked
    )
    assert {k for r in requests for k in r.asset_selection or []} == {dg.AssetKey(["silver", "clickstream"])}
    first = min(r.tags["dagster/asset_partition_range_start"] for r in requests)
    last = max(r.tags["dagster/asset_partition_range_end"] for r in requests)
    # The batch layers as `medallion build` runs them, checks included (silver/clickstream, gold and
    # the warehouse with the orders beside), then the clickstream's silver again over the days
    # propagation asks for: nothing added.
    summary = build(code_location(), CLICKSTREAM_AND_ORDERS, **silent)
    assert summary.success and not summary.failed_checks, summary.failed_checks
    window = (dt.date.fromisoformat(first), dt.date.fromisoformat(last))
    summary = build(code_location(), "key:silver/clickstream", *window, **silent)
    assert summary.success and not summary.failed_checks, format_summary(summary)
    rows = DeltaTable(str(tmp_path / "lake" / "silver" / "clickstream")).to_pyarrow_table().to_pylist()
    assert len(rows) == len({r["event_id"] for r in rows}) == len(events)
    kept = {r["event_id"]: r for r in rows}
    for event in events:
        row = kept[event["event_id"]]
        assert {k: row[k] for k in event} == event
        assert row["_event_date"] == event["event_time"].date()
    assert {r["order_id"] for r in rows if r["event_type"] == "checkout"} == checkouts
    record = booked.get_latest_materialization_event(dg.AssetKey(["silver", "clickstream"]))
    assert record is not None and record.asset_materialization is not None
    assert record.asset_materialization.metadata["redeliveries"].value == len(events[::25])

    # Gold: each event once, a checkout with the customer version valid when it was placed; the
    # funnel of each day from the events themselves.
    facts = DeltaTable(str(tmp_path / "lake" / "gold" / "fact_clickstream")).to_pyarrow_table().to_pylist()
    assert sorted(f["event_id"] for f in facts) == sorted(kept)
    assert all(f["customer_key"] != -1 for f in facts if f["event_type"] == "checkout")
    funnel = (
        DeltaTable(str(tmp_path / "lake" / "gold" / "daily_funnel_report")).to_pyarrow_table().to_pylist()
    )
    days: dict[dt.date, list[dict]] = {}
    for event in events:
        days.setdefault(event["event_time"].date(), []).append(event)
    assert {r["event_date"] for r in funnel} == set(days)
    for report in funnel:
        day = days[report["event_date"]]
        sessions = {e["session_id"] for e in day}
        bought = {e["session_id"] for e in day if e["event_type"] == "checkout"}
        assert (report["sessions"], report["checkout_sessions"]) == (len(sessions), len(bought))
        assert report["checkouts"] == sum(e["event_type"] == "checkout" for e in day)
        assert report["cart_additions"] == sum(e["event_type"] == "add_to_cart" for e in day)
        assert report["conversion_rate"] == round(len(bought) / len(sessions), 4)

    # Up to the minute: the warehouse's live view counts an order by one lane only.
    def live_view() -> dict[dt.date, dict]:
        rows = warehouse.query(f"SELECT * FROM {warehouse.view_ref('live_daily_orders')}").to_pylist()
        return {r["order_date"]: r for r in rows}

    warehouse = DuckDBWarehouse()
    synced = live_view()
    assert sum(r["live_orders"] for r in synced.values()) == 0  # batch has every order already
    # Two more days of the shop reach the lake by the events only.
    later = TO + dt.timedelta(days=2)
    advance_source(pg_url, to=later)
    fresh = list(clickstream_events(pg_url, TO, later))
    placed = {e["order_id"]: e["event_time"].date() for e in fresh if e["event_type"] == "checkout"}
    assert placed
    publish(kafka.producer(), CLICKSTREAM, fresh)
    dg.materialize([LAND[f"bronze_{CLICKSTREAM.name}"]], instance=booked, resources=resources)
    stream_lane = "key:silver/clickstream or key:gold/fact_clickstream or key:warehouse/fact_clickstream"
    stream_lane += " or key:warehouse/live_daily_orders"
    assert build(code_location(), stream_lane, TO.date(), later.date(), **shop.unchecked).success
    live = live_view()
    for day in {*placed.values()}:
        assert live[day]["live_orders"] == sum(d == day for d in placed.values()), day
    assert all(r["orders"] == r["batch_orders"] + r["live_orders"] for r in live.values())
    assert {d: r for d, r in live.items() if d < TO.date()} == {
        d: r for d, r in synced.items() if d < TO.date()
    }
    # The batch lane catches up: each order now counted by batch, none by its checkout.
    assert build(code_location(), CLICKSTREAM_AND_ORDERS, TO.date(), later.date(), **shop.unchecked).success
    caught_up = live_view()
    assert sum(r["live_orders"] for r in caught_up.values()) == 0
    revenue_orders = warehouse.query(
        f"SELECT order_date, COUNT(*) AS n FROM {warehouse.table_ref(GOLD_FACTS['fact_orders'])}"
        " WHERE is_revenue_order GROUP BY order_date"
    ).to_pylist()
    assert {r["order_date"]: r["n"] for r in revenue_orders} == {
        d: r["orders"] for d, r in caught_up.items() if r["orders"]
    }
