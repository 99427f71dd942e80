"""The Olist source system as the pipeline sees it: reads only, never writes.

Schema `olist` holds the nine tables as a production database would (primary keys, `created_at`
and an indexed `updated_at` on every row); it is all that bronze reads. A replayed source (the
simulator in `olist_source`) also has schema `olist_replay` with its clock and the audit trail of
attribute changes, which bronze reads as one more change feed.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from medallion_assets.resources.postgres import Jdbc, connect
from medallion_assets.specs import OLIST_TABLES, TABLES_BY_NAME, SourceTable

SOURCE_SCHEMA = "olist"
# A longer change window is read as parallel JDBC queries of this many days each (a backfill).
DAYS_PER_READ = dt.timedelta(days=120)
REPLAY_SCHEMA = "olist_replay"
# The replay's audit trail of attribute changes (a customer moving, a product recategorised).
ATTRIBUTE_CHANGES_SCHEMA = pa.schema(
    [
        ("table_name", pa.string()),
        ("row_key", pa.string()),
        ("column_name", pa.string()),
        ("old_value", pa.string()),
        ("new_value", pa.string()),
        ("changed_at", pa.timestamp("us")),
    ]
)


class SourceStateError(RuntimeError):
    """The source is not in a state that allows the operation (not loaded, clock would go back...)."""


def read_source_table(
    url: str, name: str, changed_from: dt.datetime | None = None, changed_before: dt.datetime | None = None
) -> pa.Table:
    """One source table as Arrow, typed like the spec, optionally only rows changed in [from, before)."""
    spec = TABLES_BY_NAME[name]
    # ADBC hands NUMERIC over as an opaque text extension type: read it as text, cast in Arrow.
    columns = [f"{c.name}::text" if c.type == "money" else c.name for c in spec.all_columns]
    window = " WHERE updated_at >= $1 AND updated_at < $2" if changed_from or changed_before else ""
    parameters = (
        (changed_from or dt.datetime(1, 1, 1), changed_before or dt.datetime(9999, 1, 1)) if window else ()
    )
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT {', '.join(columns)}, created_at, updated_at FROM {SOURCE_SCHEMA}.{name}{window}"
            f" ORDER BY {', '.join(spec.primary_key)}",
            parameters or None,
        )
        table = cur.fetch_arrow_table()
    table = table.rename_columns([c.name for c in spec.all_columns] + ["created_at", "updated_at"])
    return table.cast(_typed_schema(spec))


def read_changes(
    spark: SparkSession,
    url: str,
    relation: str,
    columns: list[tuple[str, str]],
    changed_at: str,
    start: dt.datetime,
    end: dt.datetime,
) -> DataFrame:
    """The rows of `relation` changed in [start, end), read by Spark over JDBC: the window is the
    WHERE clause PostgreSQL runs (on the indexed change column), split into one query per stretch
    of `DAYS_PER_READ` days, read in parallel, when the window is longer. `columns` are (name,
    Spark type): NUMERIC stays an exact decimal, timestamps stay without a zone. A column the
    source has and `columns` does not (added to the source since) comes after them, as JDBC types
    it: bronze lands it (schema evolution) and reports it."""
    jdbc = Jdbc.of(url)
    bounds = [start]
    while bounds[-1] + DAYS_PER_READ < end:
        bounds.append(bounds[-1] + DAYS_PER_READ)
    bounds.append(end)
    predicates = [
        f"{changed_at} >= '{low.isoformat(sep=' ')}' AND {changed_at} < '{high.isoformat(sep=' ')}'"
        for low, high in itertools.pairwise(bounds)
    ]
    frame = spark.read.jdbc(
        jdbc.url,
        relation,
        predicates=predicates,
        properties={**jdbc.options, "preferTimestampNTZ": "true", "fetchsize": "10000"},
    )
    declared = [F.col(name).cast(kind).alias(name) for name, kind in columns]
    known = {name for name, _ in columns}
    return frame.select(*declared, *[F.col(f"`{c}`") for c in frame.columns if c not in known])


def source_columns(spec: SourceTable) -> list[tuple[str, str]]:
    """A source table's columns as bronze lands them: the spec's, then created_at and updated_at."""
    types = {c.name: c.type_names.spark for c in spec.all_columns}
    return [(name, types.get(name, "timestamp_ntz")) for name in spec.landed_columns]


def read_table_changes(
    spark: SparkSession, url: str, name: str, start: dt.datetime, end: dt.datetime
) -> DataFrame:
    spec = TABLES_BY_NAME[name]
    return read_changes(spark, url, f"{SOURCE_SCHEMA}.{name}", source_columns(spec), "updated_at", start, end)


def read_attribute_trail(spark: SparkSession, url: str, start: dt.datetime, end: dt.datetime) -> DataFrame:
    """The replay's audit trail of attribute changes in [start, end); empty for a source without one."""
    columns = [
        (f.name, "timestamp_ntz" if f.name == "changed_at" else "string") for f in ATTRIBUTE_CHANGES_SCHEMA
    ]
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2",
            (REPLAY_SCHEMA, "attribute_changes"),
        )
        exists = cur.fetchone()[0] > 0
    if not exists:
        return spark.createDataFrame([], ", ".join(f"{name} {kind}" for name, kind in columns))
    return read_changes(spark, url, f"{REPLAY_SCHEMA}.attribute_changes", columns, "changed_at", start, end)


def source_time(url: str) -> dt.datetime:
    """The source's present: the replay clock where the source is a replay, else the database's
    local time (Olist times are local and without a zone). Changes up to it are visible."""
    with connect(url) as conn, conn.cursor() as cur:
        if (clock := _replay_clock(cur)) is not None:
            return clock["as_of"]
        cur.execute("SELECT localtimestamp::timestamp(0) AS now")
        return cur.fetch_arrow_table().to_pylist()[0]["now"]


def history_end(url: str) -> dt.datetime | None:
    """The last moment a replayed source can ever reach (its clock's `end_at`), None for a live
    source (no replay clock: its history grows with the days)."""
    with connect(url) as conn, conn.cursor() as cur:
        clock = _replay_clock(cur)
    return clock["end_at"] if clock is not None else None


def source_change_dates(url: str) -> tuple[dt.date, dt.date] | None:
    """First and last date on which any source row changed (None for an empty source)."""
    union = " UNION ALL ".join(
        f"SELECT min(updated_at) AS first, max(updated_at) AS last FROM {SOURCE_SCHEMA}.{spec.name}"
        for spec in OLIST_TABLES
    )
    with connect(url) as conn, conn.cursor() as cur:
        read_clock(cur)  # a clear error when the source was never loaded
        cur.execute(f"SELECT min(first), max(last) FROM ({union}) AS changes")
        first, last = cur.fetchone()
    return (first.date(), last.date()) if first else None


@dataclass(frozen=True)
class NewChanges:
    """Rows of one source table changed after a watermark: how many, and the first and last change."""

    rows: int
    first: dt.datetime
    last: dt.datetime


# What the source-row sensor watches: each bronze table's source relation and its change column.
CHANGE_FEEDS: dict[str, tuple[str, str]] = {
    **{spec.name: (f"{SOURCE_SCHEMA}.{spec.name}", "updated_at") for spec in OLIST_TABLES},
    "attribute_changes": (f"{REPLAY_SCHEMA}.attribute_changes", "changed_at"),
}


def changes_since(
    url: str, watermarks: dict[str, dt.datetime | None], before: dt.datetime
) -> dict[str, NewChanges]:
    """Per watched table, the rows changed after its watermark (None: ever) and before `before`,
    counted on the indexed change column in one read-only transaction; tables without any are left
    out. The replay's audit trail only counts changes its clock has reached, as bronze reads it."""
    found: dict[str, NewChanges] = {}
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("SET TRANSACTION READ ONLY")
        cur.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables"
            " WHERE table_schema IN ($1, $2)",
            (SOURCE_SCHEMA, REPLAY_SCHEMA),
        )
        present = {row[0] for row in cur.fetchall()}
        if not present:
            read_clock(cur)  # a clear error: the source was never loaded
        for name, watermark in watermarks.items():
            relation, column = CHANGE_FEEDS[name]
            if relation not in present:
                continue
            upper = before
            if relation.startswith(REPLAY_SCHEMA):
                upper = min(before, read_clock(cur)["as_of"] + dt.timedelta(microseconds=1))
            cur.execute(
                f"SELECT count(*), min({column}), max({column}) FROM {relation}"
                f" WHERE {column} > $1 AND {column} < $2",
                (watermark or dt.datetime(1, 1, 1), upper),
            )
            rows, first, last = cur.fetchone()
            if rows:
                found[name] = NewChanges(rows, first, last)
    return found


def read_attribute_changes(
    url: str, changed_from: dt.datetime | None = None, changed_before: dt.datetime | None = None
) -> pa.Table:
    """The source's audit trail of attribute changes that have happened by its clock, optionally
    only those in [from, before). A source without such a trail gives an empty table."""
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2",
            (REPLAY_SCHEMA, "attribute_changes"),
        )
        if cur.fetchone()[0] == 0:
            return ATTRIBUTE_CHANGES_SCHEMA.empty_table()
        clock = read_clock(cur)
        cur.execute(
            f"SELECT * FROM {REPLAY_SCHEMA}.attribute_changes"
            " WHERE changed_at <= $1 AND changed_at >= $2 AND changed_at < $3"
            " ORDER BY changed_at, table_name, row_key, column_name",
            (
                clock["as_of"],
                changed_from or dt.datetime(1, 1, 1),
                changed_before or dt.datetime(9999, 1, 1),
            ),
        )
        return cur.fetch_arrow_table().cast(ATTRIBUTE_CHANGES_SCHEMA)


def _typed_schema(spec: SourceTable) -> pa.Schema:
    ts = pa.timestamp("us")
    fields = [pa.field(f.name, f.type) for f in spec.arrow_schema]
    return pa.schema([*fields, pa.field("created_at", ts, False), pa.field("updated_at", ts, False)])


def _replay_clock(cur) -> dict | None:
    """The replay clock, None for a source that is not a replay (no clock table)."""
    cur.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2",
        (REPLAY_SCHEMA, "clock"),
    )
    return read_clock(cur) if cur.fetchone()[0] else None


def read_clock(cur, lock: bool = False) -> dict:
    try:
        cur.execute(f"SELECT * FROM {REPLAY_SCHEMA}.clock{' FOR UPDATE' if lock else ''}")
    except Exception as exc:  # ADBC raises ProgrammingError for a missing relation
        if "does not exist" in str(exc):
            raise SourceStateError(
                "the source has not been loaded yet: run `medallion source load` first"
            ) from None
        raise
    row = cur.fetch_arrow_table().to_pylist()
    if not row:
        raise SourceStateError("the source clock is missing: run `medallion source load --replace`")
    return row[0]
