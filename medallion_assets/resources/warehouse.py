"""What both warehouse IO managers (DuckDB, BigQuery) share: the table contract and the replace.

A warehouse table `warehouse/<name>` is a copy of `gold/<name>` with exactly the gold contract's
columns and types (specs/). Storing an output replaces the rows of its partition window (or the
whole table when unpartitioned) with the output's rows in one atomic step, so a re-run never
duplicates a row and a failed write leaves the previous rows in place. Loading reads the window back
as Arrow in the contract's types.

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
from collections.abc import Callable, Mapping
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from medallion_assets.resources.delta_lake import LakeError, Window
from medallion_assets.specs import TABLES_BY_PATH, LakeTable

LAYER = "warehouse"


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
    missing = [name for name in schema.names if name not in rows.column_names]
    if missing:
        raise WarehouseError(f"gold/{table.name} lacks the contract column(s) {', '.join(missing)}")
    selected = rows.select(schema.names)
    try:
        return selected.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise WarehouseError(f"gold/{table.name} does not fit its contract types: {exc}") from None


def content_fingerprint(rows: pa.Table, table: LakeTable) -> str:
    """sha256 of the rows' content whatever their order (sorted by the primary key, or every column),
    schema included, shortened to 40 hex digits: a BigQuery label value holds at most 63 characters."""
    keys = list(table.primary_key) or rows.column_names
    ordered = rows.sort_by([(key, "ascending") for key in keys])
    digest = hashlib.sha256(ordered.schema.serialize())
    for batch in ordered.to_batches(max_chunksize=65_536):  # bounded memory on a big dimension
        digest.update(batch.serialize())
    return digest.hexdigest()[:40]


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
    """Stores a warehouse asset's Arrow rows by replacing its window; subclasses say where."""

    def replace(
        self, table: LakeTable, rows: pa.Table, window: Window | None, fingerprint: str | None = None
    ) -> dict[str, Any]:
        """Replace the window's rows with `rows` atomically; return metadata of what was done. A whole
        table's write stores `fingerprint` with it, or forgets the stored one when None."""
        raise NotImplementedError

    def stored_fingerprint(self, table: LakeTable) -> str | None:
        """The content fingerprint the last whole-table write stored (None: none, or no table)."""
        raise NotImplementedError

    def table_ref(self, table: LakeTable) -> str:
        """How SQL names the table in this warehouse."""
        raise NotImplementedError

    def query(self, sql: str) -> pa.Table:
        """One read-only SQL statement's result (`medallion warehouse sql`, reads, tests)."""
        raise NotImplementedError

    def read(self, table: LakeTable, window: Window | None) -> pa.Table:
        """The window's rows in the contract's types."""
        names = ", ".join(c.name for c in table.columns)
        rows = self.query(f"SELECT {names} FROM {self.table_ref(table)} WHERE {window_predicate(window)}")
        return conform(rows, table)

    def handle_output(self, context: dg.OutputContext, obj: pa.Table) -> None:
        table = gold_table(context.asset_key)
        window = Window.of(context, table.partition_column)
        rows = conform(obj, table)
        if window is not None:
            check_inside(rows, window, context.asset_key)
        started = time.perf_counter()
        fingerprint = content_fingerprint(rows, table) if window is None else None
        unchanged = fingerprint is not None and fingerprint == self.stored_fingerprint(table)
        metadata = (
            {"rows_deleted": 0, "rows_inserted": 0}
            if unchanged
            else self.replace(table, rows, window, fingerprint)
        )
        if fingerprint is not None:
            metadata |= {"content_fingerprint": fingerprint, "skipped_unchanged": unchanged}
        context.add_output_metadata(
            {
                # The window now holds exactly these rows.
                "dagster/row_count": rows.num_rows,
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(f.name, str(f.type)) for f in rows.schema]
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


def check_inside(data: pa.Table, window: Window, key: dg.AssetKey) -> None:
    """Refuse, before writing anything, rows outside the partition window being replaced."""
    values = data.column(window.column)
    outside = pc.or_(
        pc.less(values, pa.scalar(window.start)), pc.greater_equal(values, pa.scalar(window.end))
    )
    count = pc.sum(pc.fill_null(outside, True)).as_py() or 0
    if count:
        raise LakeError(
            f"{key.to_user_string()}: {count} row(s) have {window.column} outside the partition window "
            f"[{window.start}, {window.end}); nothing was written"
        )
