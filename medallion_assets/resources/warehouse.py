"""What both warehouse IO managers (DuckDB, BigQuery) share: the table contract and the replace.

A warehouse table `warehouse/<name>` is a copy of `gold/<name>` with exactly the gold contract's
columns and types (specs/). Storing an output replaces the rows of its partition window (or the
whole table when unpartitioned) with the output's rows in one atomic step, so a re-run never
duplicates a row and a failed write leaves the previous rows in place. Loading reads the window back
as Arrow in the contract's types.

Rows travel as bounded Arrow batches (gold's window streamed from the lake, `WindowRows`), never
as a whole table in the run process: DuckDB inserts the stream, BigQuery loads it from a Parquet
file written batch by batch, and the comparison with gold runs in a scratch DuckDB database that
spills to disk.

An unpartitioned table (the dimensions, customer_rfm) is rebuilt whole by every gold refresh, mostly
unchanged: its rows' content fingerprint is stored with the warehouse table (a BigQuery label, the
DuckDB table comment), and a write of the same content is skipped, so an unchanged table costs no
load and no MERGE. The blocking `equals_gold` check still compares the table with gold.

Schema evolution: a column the contract gained is added as NULLABLE (rows written before it read
NULL); a column whose type changed is a clear error, because converting stored values (say money to
text) is a migration for a person to decide.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from medallion_assets.resources.delta_lake import BATCH_ROWS, LakeError, Window, WindowRows
from medallion_assets.specs import TABLES_BY_PATH, LakeTable

LAYER = "warehouse"
# DuckDB's memory for a comparison with gold (and a DuckDB warehouse's writes): beyond it DuckDB
# spills to disk, so a table of any size fits the run process.
SCRATCH_MEMORY = "128MB"
# What a warehouse write or read takes: rows in memory (a test, a calendar) or a stream of batches.
Rows = pa.Table | pa.RecordBatchReader | WindowRows


class WarehouseError(RuntimeError):
    """A warehouse table cannot be written or read; the message names the table, never a secret."""


class WarehouseSchemaError(WarehouseError):
    """The warehouse table's columns cannot be brought to the contract without losing data."""


def gold_table(asset_key: dg.AssetKey) -> LakeTable:
    """The gold spec a warehouse asset copies (`warehouse/<name>` <- `gold/<name>`)."""
    return TABLES_BY_PATH[f"gold/{asset_key.path[-1]}"]


def contract_schema(table: LakeTable) -> pa.Schema:
    # Nullable in Arrow: NOT NULL is the warehouse table's constraint (a column added later holds
    # NULL in the rows written before it), enforced there and by gold's own checks.
    return pa.schema([(c.name, c.type_names.arrow) for c in table.columns])


def conform(rows: pa.Table, table: LakeTable) -> pa.Table:
    """The contract's columns, in its order and types (lineage columns such as `_run_id` stay in
    the lake). A missing column or a value that does not fit its type is an error naming it."""
    schema = contract_schema(table)
    require_columns(rows.schema, table)
    try:
        return rows.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise WarehouseError(f"gold/{table.name} does not fit its contract types: {exc}") from None


def require_columns(schema: pa.Schema, table: LakeTable) -> None:
    missing = [column.name for column in table.columns if column.name not in schema.names]
    if missing:
        raise WarehouseError(f"gold/{table.name} lacks the contract column(s) {', '.join(missing)}")


def batches_of(rows: Rows) -> pa.RecordBatchReader:
    if isinstance(rows, WindowRows):
        return rows.batches()
    if isinstance(rows, pa.Table):
        return pa.RecordBatchReader.from_batches(rows.schema, rows.to_batches(max_chunksize=BATCH_ROWS))
    return rows


class Conformed:
    """The rows as a stream in the contract's columns and types, counted as they pass. Given a
    window, a row outside it stops the stream with an error before the write it feeds can commit."""

    def __init__(self, rows: Rows, table: LakeTable, window: Window | None = None) -> None:
        source = batches_of(rows)
        require_columns(source.schema, table)  # before any batch: an empty stream is checked too
        self.rows = 0
        self.reader = pa.RecordBatchReader.from_batches(
            contract_schema(table), self._batches(source, table, window)
        )

    def _batches(
        self, source: pa.RecordBatchReader, table: LakeTable, window: Window | None
    ) -> Iterator[pa.RecordBatch]:
        for batch in source:
            conformed = conform(pa.Table.from_batches([batch]), table)
            if window is not None:
                check_inside(conformed, window, table)
            self.rows += conformed.num_rows
            yield from conformed.to_batches()


class Fingerprint(NamedTuple):
    digest: str
    rows: int


def content_fingerprint(rows: Rows, table: LakeTable) -> Fingerprint:
    """A digest of the rows' content whatever their order, schema included, in one streaming pass
    (`row_digest`), shortened to 40 hex digits: a BigQuery label value holds at most 63 characters.
    A new DuckDB may hash differently: the next sync then writes the table once more, nothing worse."""
    count, digest = row_digest(Conformed(rows, table).reader)
    return Fingerprint(digest[:40], count)


def row_digest(reader: pa.RecordBatchReader) -> tuple[int, str]:
    """The rows' count and a sha256 of their schema and of the count, sum and xor of a hash of every
    row: equal for the same rows in any order. DuckDB hashes one batch at a time (scanning the
    whole stream at once, it reads ahead on threads and held ~400 MB of a 1M-row table)."""
    row_hash = f"hash({', '.join(quoted(name) for name in reader.schema.names)})"
    count, total, xor = 0, 0, 0
    with duckdb.connect() as con:
        for batch in reader:
            con.register("batch", batch)
            rows, batch_total, batch_xor = con.execute(
                f"SELECT count(*), sum({row_hash}::HUGEINT), bit_xor({row_hash}) FROM batch"
            ).fetchall()[0]
            con.unregister("batch")
            count, total, xor = count + rows, total + (batch_total or 0), xor ^ (batch_xor or 0)
    digest = hashlib.sha256(reader.schema.remove_metadata().serialize())
    digest.update(f"{count}:{total}:{xor}".encode())
    return count, digest.hexdigest()


def insert_batches(con: duckdb.DuckDBPyConnection, target: str, reader: pa.RecordBatchReader) -> int:
    """Insert the stream into a DuckDB table one batch at a time (bounded memory, see `row_digest`);
    the rows inserted."""
    names = ", ".join(quoted(name) for name in reader.schema.names)
    inserted = 0
    for batch in reader:
        con.register("batch", batch)
        inserted += con.execute(f"INSERT INTO {target} ({names}) SELECT {names} FROM batch").fetchall()[0][0]
        con.unregister("batch")
    return inserted


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def columns_to_add(table: LakeTable, existing: Mapping[str, str], wanted: Mapping[str, str]) -> list[str]:
    """The contract's columns the stored table lacks; a stored column of another type is an error.
    `existing` and `wanted` map column names to the warehouse's (normalized) type names."""
    changed = [
        f"{name} is {existing[name]} in the warehouse but {kind} in the contract"
        for name, kind in wanted.items()
        if name in existing and existing[name] != kind
    ]
    if changed:
        raise WarehouseSchemaError(
            f"warehouse/{table.name}: incompatible column type(s): {'; '.join(changed)}. Convert or drop "
            "the warehouse table by hand, then re-sync its partitions from gold."
        )
    return [name for name in wanted if name not in existing]


def window_predicate(window: Window | None, alias: str = "") -> str:
    """SQL for the rows a write replaces: the window's dates, or every row of an unpartitioned table."""
    return window.sql(alias) if window else "TRUE"


def describe(window: Window | None) -> str:
    if window is None:
        return "whole table"
    return f"{window.start}..{window.end - dt.timedelta(days=1)}"


class WarehouseIOManager(dg.ConfigurableIOManager):
    """Stores a warehouse asset's rows by replacing its window; subclasses say where."""

    memory_limit: str = Field(
        SCRATCH_MEMORY,
        description="DuckDB's memory in the run process for a comparison with gold (and a DuckDB "
        "warehouse's writes); beyond it DuckDB spills to disk.",
    )

    def replace(
        self, table: LakeTable, rows: Rows, window: Window | None, fingerprint: str | None = None
    ) -> dict[str, Any]:
        """Replace the window's rows with `rows` (conformed with `Conformed`, streamed) atomically;
        return metadata of what was done. A whole table's write stores `fingerprint` with it, or
        forgets the stored one when None."""
        raise NotImplementedError

    def stored_fingerprint(self, table: LakeTable) -> str | None:
        """The content fingerprint the last whole-table write stored (None: none, or no table)."""
        raise NotImplementedError

    def table_ref(self, table: LakeTable) -> str:
        """How SQL names the table in this warehouse."""
        raise NotImplementedError

    def query_batches(self, sql: str) -> pa.RecordBatchReader:
        """One read-only SQL statement's result as a stream of bounded batches."""
        raise NotImplementedError

    def replace_view(self, name: str, description: str, sql: str, schema: str = "gold") -> dict[str, Any]:
        """Create or replace the view `schema.name` as `sql` (tables named by `table_ref`), and its
        schema if new; its metadata."""
        raise NotImplementedError

    def location(self) -> str:
        """Where the warehouse is, for people (never a secret)."""
        raise NotImplementedError

    def view_ref(self, name: str, schema: str = "gold") -> str:
        """How SQL names a view of ours in this warehouse (`schema` as specs/interface.py names it)."""
        raise NotImplementedError

    def query(self, sql: str) -> pa.Table:
        """One read-only SQL statement's result (`medallion warehouse sql`, tests)."""
        return self.query_batches(sql).read_all()

    def read_batches(self, table: LakeTable, window: Window | None) -> pa.RecordBatchReader:
        """The window's rows in the contract's types, streamed."""
        names = ", ".join(c.name for c in table.columns)
        sql = f"SELECT {names} FROM {self.table_ref(table)} WHERE {window_predicate(window)}"
        return Conformed(self.query_batches(sql), table).reader

    def read(self, table: LakeTable, window: Window | None) -> pa.Table:
        return self.read_batches(table, window).read_all()

    def handle_output(self, context: dg.OutputContext, obj: Rows) -> None:
        table = gold_table(context.asset_key)
        window = Window.of(context, table.partition_column)
        started = time.perf_counter()
        # A whole table is rebuilt by every gold refresh, mostly unchanged: compare content first.
        fingerprint = content_fingerprint(obj, table) if window is None else None
        unchanged = fingerprint is not None and fingerprint.digest == self.stored_fingerprint(table)
        if unchanged:
            rows, metadata = fingerprint.rows, {"rows_deleted": 0, "rows_inserted": 0}
        else:
            metadata = self.replace(table, obj, window, fingerprint.digest if fingerprint else None)
            rows = metadata["rows_inserted"]
        if fingerprint is not None:
            metadata |= {"content_fingerprint": fingerprint.digest, "skipped_unchanged": unchanged}
        context.add_output_metadata(
            {
                # The window now holds exactly these rows.
                "dagster/row_count": rows,
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(f.name, str(f.type)) for f in contract_schema(table)]
                ),
                "window": describe(window),
                "sync_seconds": round(time.perf_counter() - started, 3),
                **metadata,
            }
        )

    def load_input(self, context: dg.InputContext) -> pa.Table:
        table = gold_table(context.asset_key)
        return self.read(table, Window.of(context, table.partition_column))


def retry(operation: Callable[[], Any], retriable: Callable[[Exception], bool], seconds: float) -> Any:
    """Run `operation`, retrying for up to `seconds` while it fails in a way `retriable` accepts."""
    deadline = time.monotonic() + seconds
    delay = 0.2
    while True:
        try:
            return operation()
        except Exception as exc:
            if not retriable(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def check_inside(rows: pa.Table, window: Window, table: LakeTable) -> None:
    """Refuse rows outside the partition window being replaced (the write then does not commit)."""
    values = rows.column(window.column)
    outside = pc.or_(
        pc.less(values, pa.scalar(window.start)), pc.greater_equal(values, pa.scalar(window.end))
    )
    count = pc.sum(pc.fill_null(outside, True)).as_py() or 0
    if count:
        raise LakeError(
            f"warehouse/{table.name}: {count} row(s) have {window.column} outside the partition window "
            f"[{window.start}, {window.end}); nothing was written"
        )
