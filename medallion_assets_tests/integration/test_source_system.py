"""The live source system against a real PostgreSQL: as-of loads, advancing, history, safety. (An
unreachable source: unit/test_source_unreachable.py.)"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from medallion_assets.resources.postgres import Jdbc, connect, embedded_server_url
from medallion_assets.settings import get_settings
from medallion_assets.sources.olist_db import (
    SourceStateError,
    read_attribute_changes,
    read_source_table,
    source_time,
)
from medallion_assets.specs import OLIST_TABLES, TABLES_BY_NAME
from medallion_assets.specs.events import CLICKSTREAM
from olist_source.events import clickstream_events, review_events
from olist_source.kaggle_csv import read_directory
from olist_source.system import advance_source, load_source, source_status

AS_OF = dt.datetime(2017, 9, 15, 12, 0, 0)


def snapshot(url: str) -> dict[str, pa.Table]:
    return {spec.name: read_source_table(url, spec.name) for spec in OLIST_TABLES}


def without_audit_columns(table: pa.Table) -> pa.Table:
    return table.drop_columns(["created_at", "updated_at"])


def sorted_by_key(name: str, table: pa.Table) -> pa.Table:
    return table.sort_by([(k, "ascending") for k in TABLES_BY_NAME[name].primary_key])


def apply_recorded_changes(name: str, table: pa.Table, changes: pa.Table) -> pa.Table:
    """The file table with the recorded attribute changes applied (computed here, independently)."""
    spec = TABLES_BY_NAME[name]
    rows = {tuple(r[k] for k in spec.primary_key): r for r in table.to_pylist()}
    for change in changes.filter(pc.equal(changes["table_name"], name)).to_pylist():
        row = rows[(change["row_key"],)]
        column = spec.column(change["column_name"])
        new = change["new_value"]
        row[column.name] = int(new) if column.type == "int" and new is not None else new
    return pa.Table.from_pylist(list(rows.values()), schema=table.schema)


def test_steps_of_advance_end_equal_to_one_load_at_the_end(pg_url: str, small_generated_dir: Path) -> None:
    load_source(pg_url, small_generated_dir, as_of=AS_OF, replace=True)
    for to in (dt.datetime(2017, 9, 16), dt.datetime(2017, 12, 24, 18, 30), dt.datetime(2018, 6, 1)):
        advance_source(pg_url, to=to)
    advance_source(pg_url, days=30)
    advance_source(pg_url)  # to the end of history
    stepped = snapshot(pg_url)

    load_source(pg_url, small_generated_dir, replace=True)
    at_once = snapshot(pg_url)
    for name in at_once:
        assert stepped[name].equals(at_once[name]), name  # including created_at and updated_at


def test_end_state_is_the_files_plus_the_recorded_changes(pg_url: str, small_generated_dir: Path) -> None:
    load_source(pg_url, small_generated_dir, replace=True)
    files, _ = read_directory(small_generated_dir)
    changes = read_attribute_changes(pg_url)
    assert set(pc.unique(changes["table_name"]).to_pylist()) == {"customers", "products", "sellers"}
    for spec in OLIST_TABLES:
        expected = sorted_by_key(spec.name, apply_recorded_changes(spec.name, files[spec.name], changes))
        actual = without_audit_columns(read_source_table(pg_url, spec.name))
        assert actual.cast(expected.schema).equals(expected), spec.name


def test_without_attribute_changes_the_source_equals_the_files(
    pg_url: str, small_generated_dir: Path
) -> None:
    load_source(pg_url, small_generated_dir, as_of=AS_OF, attribute_changes="none", replace=True)
    advance_source(pg_url)
    files, _ = read_directory(small_generated_dir)
    assert read_attribute_changes(pg_url).num_rows == 0
    for spec in OLIST_TABLES:
        expected = sorted_by_key(spec.name, files[spec.name])
        actual = without_audit_columns(read_source_table(pg_url, spec.name))
        assert actual.cast(expected.schema).equals(expected), spec.name


def test_as_of_holds_what_the_business_knew_then(pg_url: str, small_generated_dir: Path) -> None:
    load_source(pg_url, small_generated_dir, as_of=AS_OF, replace=True)
    assert source_time(pg_url) == AS_OF  # a replay's present is its clock
    files, _ = read_directory(small_generated_dir)
    final = files["orders"]
    orders = read_source_table(pg_url, "orders")

    purchased = final.filter(pc.less_equal(final["order_purchase_timestamp"], pa.scalar(AS_OF)))
    assert sorted(orders["order_id"].to_pylist()) == sorted(purchased["order_id"].to_pylist())
    # Each order shows the status and timestamps it had at AS_OF.
    by_id = {r["order_id"]: r for r in purchased.to_pylist()}
    for row in orders.to_pylist():
        truth = by_id[row["order_id"]]
        for column in ("order_approved_at", "order_delivered_carrier_date", "order_delivered_customer_date"):
            if row[column] is not None:
                assert row[column] == truth[column]
        if truth["order_delivered_customer_date"] and truth["order_delivered_customer_date"] > AS_OF:
            assert row["order_delivered_customer_date"] is None
            assert row["order_status"] != "delivered" or truth["order_status"] == "delivered"
        if row["updated_at"] > AS_OF or row["created_at"] > row["updated_at"]:
            pytest.fail(f"order {row['order_id']} changed after the clock or before it was created")
    statuses = set(orders["order_status"].to_pylist())
    assert {"approved", "shipped", "delivered"} <= statuses  # orders caught mid-way

    reviews = read_source_table(pg_url, "order_reviews")
    assert pc.all(pc.less_equal(reviews["review_creation_date"], pa.scalar(AS_OF))).as_py()
    unanswered = reviews.filter(pc.is_null(reviews["review_answer_timestamp"]))
    assert unanswered.num_rows > 0

    items = read_source_table(pg_url, "order_items")
    assert set(items["order_id"].to_pylist()) <= set(orders["order_id"].to_pylist())
    for spec in OLIST_TABLES:
        table = read_source_table(pg_url, spec.name)
        assert pc.all(pc.less_equal(table["updated_at"], pa.scalar(AS_OF))).as_py(), spec.name


def test_advance_stamps_changes_inside_the_window(pg_url: str, small_generated_dir: Path) -> None:
    load_source(pg_url, small_generated_dir, as_of=AS_OF, replace=True)
    before = read_source_table(pg_url, "orders")
    to = AS_OF + dt.timedelta(days=10)
    report = advance_source(pg_url, to=to)
    after = read_source_table(pg_url, "orders")
    assert report.changes["orders"].inserted == after.num_rows - before.num_rows > 0
    assert report.changes["orders"].updated > 0
    changed = after.filter(pc.greater(after["updated_at"], pa.scalar(AS_OF)))
    assert changed.num_rows == report.changes["orders"].inserted + report.changes["orders"].updated
    assert pc.all(pc.less_equal(changed["updated_at"], pa.scalar(to))).as_py()
    status = source_status(pg_url)
    assert status.as_of == to and status.rows["orders"] == after.num_rows
    assert sum(status.pending_versions.values()) > 0

    with pytest.raises(SourceStateError, match="cannot go back"):
        advance_source(pg_url, to=AS_OF)


def test_clickstream_sessions_end_in_the_orders_of_the_stretch(
    pg_url: str, small_generated_dir: Path
) -> None:
    """The web shop's clickstream of a stretch: one session per order placed in it, ending in the
    order's checkout at its purchase time, abandoned sessions beside them; the same events again
    for the same stretch; every event valid against the stream's spec."""
    load_source(pg_url, small_generated_dir, as_of=AS_OF, replace=True)
    to = AS_OF + dt.timedelta(days=10)
    advance_source(pg_url, to=to)
    events = list(clickstream_events(pg_url, AS_OF, to))
    assert events == list(clickstream_events(pg_url, AS_OF, to))  # deterministic per seed
    assert [e["event_time"] for e in events] == sorted(e["event_time"] for e in events)
    with connect(pg_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT order_id, order_purchase_timestamp FROM olist.orders"
            " WHERE order_purchase_timestamp > $1 AND order_purchase_timestamp <= $2",
            (AS_OF, to),
        )
        placed = dict(cur.fetchall())
    checkouts = {e["order_id"]: e for e in events if e["event_type"] == "checkout"}
    assert placed and set(checkouts) == set(placed)
    assert all(checkouts[order].get("event_time") == placed[order].replace(microsecond=0) for order in placed)
    sessions: dict[str, list[dict]] = {}
    for event in events:
        sessions.setdefault(event["session_id"], []).append(event)
    abandoned = [s for s in sessions.values() if not any(e["event_type"] == "checkout" for e in s)]
    assert 1.5 < len(abandoned) / len(placed) < 2.5  # ABANDONED_PER_ORDER on average
    assert len({e["event_id"] for e in events}) == len(events)
    for event in events:
        assert set(event) == set(CLICKSTREAM.column_names)
        for column in CLICKSTREAM.columns:
            value = event[column.name]
            assert value is not None or not column.required, (column.name, event)
            if value is not None and column.pattern:
                assert re.fullmatch(column.pattern, str(value)), (column.name, value)
            if value is not None and column.allowed:
                assert value in column.allowed, (column.name, value)


def test_review_events_carry_the_rows_the_database_holds(pg_url: str, small_generated_dir: Path) -> None:
    """Each review's latest event of a stretch is its row in the source database, times included:
    the stream and the change feed carry the same versions (silver keeps one)."""
    load_source(pg_url, small_generated_dir, as_of=AS_OF, replace=True)
    to = AS_OF + dt.timedelta(days=10)
    advance_source(pg_url, to=to)
    latest: dict[tuple[str, str], dict] = {}
    for event in review_events(pg_url, AS_OF, to):
        assert event["updated_at"] == event["event_time"]
        latest[(event["review_id"], event["order_id"])] = event  # in event-time order
    rows = read_source_table(pg_url, "order_reviews").to_pylist()
    changed = {(r["review_id"], r["order_id"]): r for r in rows if r["updated_at"] > AS_OF}
    assert latest and set(latest) == set(changed)
    for key, row in changed.items():
        assert {name: latest[key][name] for name in row} == row, key


def test_attribute_changes_give_entities_history(pg_url: str, small_generated_dir: Path) -> None:
    load_source(pg_url, small_generated_dir, replace=True)
    changes = read_attribute_changes(pg_url)
    moved = changes.filter(pc.equal(changes["column_name"], "customer_zip_code_prefix")).to_pylist()[0]
    # Just before the move the customer lives at the old address, just after at the new one.
    load_source(
        pg_url, small_generated_dir, as_of=moved["changed_at"] - dt.timedelta(seconds=1), replace=True
    )
    customers = read_source_table(pg_url, "customers")
    row = customers.filter(pc.equal(customers["customer_id"], moved["row_key"])).to_pylist()[0]
    assert row["customer_zip_code_prefix"] == moved["old_value"]
    advance_source(pg_url, to=moved["changed_at"])
    customers = read_source_table(pg_url, "customers")
    row = customers.filter(pc.equal(customers["customer_id"], moved["row_key"])).to_pylist()[0]
    assert row["customer_zip_code_prefix"] == moved["new_value"]
    assert row["updated_at"] == moved["changed_at"] and row["created_at"] < row["updated_at"]


def test_real_sample_loads_with_its_orphans(pg_url: str, sample_dir: Path) -> None:
    load_source(pg_url, sample_dir, as_of=dt.datetime(2017, 1, 1), replace=True)
    advance_source(pg_url)
    status = source_status(pg_url)
    files, _ = read_directory(sample_dir)
    assert status.rows == {name: t.num_rows for name, t in files.items()}
    items = read_source_table(pg_url, "order_items")
    orders = set(read_source_table(pg_url, "orders")["order_id"].to_pylist())
    orphans = [o for o in items["order_id"].to_pylist() if o not in orders]
    assert len(orphans) > 0  # items of orders the partial sample lacks are kept
    money = pc.sum(items["price"]).as_py()
    assert money == pc.sum(files["order_items"]["price"]).as_py()  # to the cent


def test_load_refuses_to_overwrite_without_replace(pg_url: str, small_generated_dir: Path) -> None:
    load_source(pg_url, small_generated_dir, replace=True)
    with pytest.raises(SourceStateError, match="--replace"):
        load_source(pg_url, small_generated_dir)


def test_foreign_olist_schema_is_never_dropped(pg_url: str, small_generated_dir: Path) -> None:
    with connect(pg_url) as conn, conn.cursor() as cur:
        cur.execute("DROP SCHEMA IF EXISTS olist CASCADE")
        cur.execute("DROP SCHEMA IF EXISTS olist_replay CASCADE")
        cur.execute("CREATE SCHEMA olist")
        cur.execute("CREATE TABLE olist.precious (id int)")
    with pytest.raises(SourceStateError, match="not created by medallion"):
        load_source(pg_url, small_generated_dir, replace=True)
    with pytest.raises(SourceStateError, match="not been loaded"):
        source_status(pg_url)
    # Without a replay clock, the source's present is the database's local time (any zone).
    assert abs(source_time(pg_url) - dt.datetime.now(dt.UTC).replace(tzinfo=None)) < dt.timedelta(hours=15)
    with connect(pg_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM olist.precious")
        assert cur.fetchone() == (0,)
        cur.execute("DROP SCHEMA olist CASCADE")


def test_the_embedded_server_listens_on_loopback_once(pg_url: str, medallion_home: Path) -> None:
    """Spark's JDBC reader needs TCP: the embedded server listens on a loopback port, moved there
    once, and every later caller (another command, a run) gets the same address."""
    if os.environ.get("MEDALLION_TEST_SOURCE_URL"):
        pytest.skip("the source is not the embedded server")
    settings = get_settings(home=medallion_home)
    assert embedded_server_url(settings) == embedded_server_url(settings) == pg_url
    port = int(Jdbc.of(pg_url).url.split(":")[-1].split("/")[0])
    socket.create_connection(("127.0.0.1", port), timeout=5).close()
    with connect(pg_url) as conn, conn.cursor() as cur:  # and on its socket, as before
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
