"""Bronze's source read (Spark JDBC against the real PostgreSQL): a change window reads exactly the
rows changed inside it, also when it is split into parallel queries, at every boundary to the
microsecond; money stays an exact decimal and times stay without a zone."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import adbc_driver_postgresql.dbapi as adbc_dbapi

from medallion_assets.resources.spark import SparkResource
from medallion_assets.sources.olist_db import DAYS_PER_READ, read_changes
from medallion_assets_tests.helpers import scratch_database

START = dt.datetime(2017, 1, 1)
END = START + 2 * DAYS_PER_READ + dt.timedelta(days=30)  # three queries
TICK = dt.timedelta(microseconds=1)


def test_a_window_reads_exactly_its_rows_across_splits(pg_url: str, spark_resource: SparkResource) -> None:
    split = START + DAYS_PER_READ
    moments = {
        "before_start": START - TICK,
        "at_start": START,
        "before_split": split - TICK,
        "at_split": split,
        "second_split": split + DAYS_PER_READ,
        "before_end": END - TICK,
        "at_end": END,
        "long_after": END + dt.timedelta(days=400),
    }
    url = scratch_database(pg_url, "jdbc_window")
    with adbc_dbapi.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE changes (id text PRIMARY KEY, amount numeric(12,2), updated_at timestamp)")
        for n, (name, moment) in enumerate(moments.items()):
            cur.execute(
                "INSERT INTO changes VALUES ($1, $2, $3)", (name, Decimal(f"{n}0000000.0{n}"), moment)
            )

    columns = [("id", "string"), ("amount", "decimal(12,2)"), ("updated_at", "timestamp_ntz")]
    frame = read_changes(spark_resource.session(), url, "changes", columns, "updated_at", START, END)
    rows = {row["id"]: row for row in frame.collect()}

    assert sorted(rows) == sorted(["at_start", "before_split", "at_split", "second_split", "before_end"])
    assert {name: row["updated_at"] for name, row in rows.items()} == {name: moments[name] for name in rows}
    assert rows["before_end"]["amount"] == Decimal("50000000.05")  # exact to the cent at 12 digits
    assert dict(frame.dtypes) == {"id": "string", "amount": "decimal(12,2)", "updated_at": "timestamp_ntz"}
