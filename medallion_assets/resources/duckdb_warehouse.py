"""The default warehouse: a DuckDB file ($MEDALLION_HOME/warehouse.duckdb), schema `gold`.

Any SQL client opens it (`duckdb .medallion/warehouse.duckdb -readonly`, DBeaver, Python). A write
deletes the window's rows and inserts the new ones inside one transaction: a reader sees the old
rows or the new ones, and a failure rolls back to the old. A whole table's comment is its description
followed by its content fingerprint (see warehouse.py), changed in the same transaction. DuckDB lets
one process write a file at a time; a write waits (up to `lock_timeout_seconds`) for another run or
a SQL client to let go.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from pydantic import Field

from medallion_assets.resources.delta_lake import BATCH_ROWS, LakeError, Window
from medallion_assets.resources.warehouse import (
    Conformed,
    Rows,
    WarehouseError,
    WarehouseIOManager,
    columns_to_add,
    describe,
    retry,
    window_predicate,
)
from medallion_assets.settings import get_settings
from medallion_assets.specs import LakeTable

SCHEMA = "gold"
FINGERPRINT_NOTE = "\n\ncontent fingerprint: "  # ends a whole table's comment, after its description


def _is_lock_conflict(exc: Exception) -> bool:
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class DuckDBWarehouse(WarehouseIOManager):
    """Gold tables in a local DuckDB file, one transaction per partition window."""

    path: str | None = Field(None, description="Override MEDALLION_DUCKDB_PATH.")
    lock_timeout_seconds: float = Field(
        120.0, description="How long a write waits for another process holding the file."
    )

    def file(self) -> Path:
        return Path(self.path) if self.path else get_settings().duckdb_path

    def connect(self, reading: bool = False) -> duckdb.DuckDBPyConnection:
        """A connection to the file; `reading`: the file must exist already. Always read-write: a
        run's steps run side by side in threads, and DuckDB refuses a read-only connection to a file
        this process has open read-write (and the reverse)."""
        file = self.file()
        if reading and not file.exists():
            raise WarehouseError(f"no DuckDB warehouse at {file} yet: materialize the warehouse assets first")
        file.parent.mkdir(parents=True, exist_ok=True)
        try:
            return retry(
                # Beyond the limit DuckDB spills to disk: a big window's write fits the run process.
                lambda: duckdb.connect(str(file), config={"memory_limit": self.memory_limit}),
                _is_lock_conflict,
                self.lock_timeout_seconds,
            )
        except duckdb.Error as exc:
            raise WarehouseError(f"cannot open the DuckDB warehouse {file}: {exc}") from None

    def replace(
        self, table: LakeTable, rows: Rows, window: Window | None, fingerprint: str | None = None
    ) -> dict[str, Any]:
        name = self.table_ref(table)
        columns = ", ".join(c.name for c in table.columns)
        stream = Conformed(rows, table, window)
        with self.connect() as con:
            added = self._ensure_table(con, table)
            # One INSERT pulls the whole stream (batch by batch INSERTs in one transaction held every
            # batch in memory until the commit: 2M rows +250 MB).
            con.register("batches", stream.reader)
            con.execute("BEGIN TRANSACTION")
            try:
                (deleted,) = con.execute(f"DELETE FROM {name} WHERE {window_predicate(window)}").fetchall()[0]
                (inserted,) = con.execute(
                    f"INSERT INTO {name} ({columns}) SELECT {columns} FROM batches"
                ).fetchall()[0]
                if window is None:  # the fingerprint changes with the rows, in the same transaction
                    note = FINGERPRINT_NOTE + fingerprint if fingerprint else ""
                    con.execute(f"COMMENT ON TABLE {name} IS {_quote(table.description + note)}")
                con.execute("COMMIT")
            except (duckdb.Error, LakeError, WarehouseError) as exc:
                con.execute("ROLLBACK")
                raise WarehouseError(
                    f"writing warehouse/{table.name} ({describe(window)}) failed after {stream.rows} "
                    f"row(s), the table is unchanged: {exc}"
                ) from None
            finally:
                con.unregister("batches")
        file = self.file()
        return {
            "rows_deleted": deleted,
            "rows_inserted": inserted,
            "columns_added": ", ".join(added) or "none",
            "dagster/table_name": f"{file.stem}.{name}",
            "dagster/uri": str(file),
            "file_bytes": file.stat().st_size,
        }

    def table_ref(self, table: LakeTable) -> str:
        return f"{SCHEMA}.{table.name}"

    def location(self) -> str:
        return f"DuckDB {self.file()}"

    def view_ref(self, name: str, schema: str = SCHEMA) -> str:
        return f"{schema}.{name}"

    def replace_view(self, name: str, description: str, sql: str, schema: str = SCHEMA) -> dict[str, Any]:
        view = self.view_ref(name, schema)
        with self.connect() as con:
            try:
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
                con.execute(f"CREATE OR REPLACE VIEW {view} AS {sql}")
                con.execute(f"COMMENT ON VIEW {view} IS {_quote(description)}")
            except duckdb.Error as exc:
                raise WarehouseError(f"cannot create the view {view} in {self.file()}: {exc}") from None
        file = self.file()
        return {"dagster/table_name": f"{file.stem}.{view}", "dagster/uri": str(file)}

    def stored_fingerprint(self, table: LakeTable) -> str | None:
        if not self.file().exists():
            return None
        with self.connect(reading=True) as con:
            found = con.execute(
                "SELECT comment FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
                [SCHEMA, table.name],
            ).fetchall()
        comment = (found[0][0] if found else None) or ""
        return comment.rpartition(FINGERPRINT_NOTE)[2] if FINGERPRINT_NOTE in comment else None

    def query_batches(self, sql: str) -> pa.RecordBatchReader:
        con = self.connect(reading=True)
        try:
            result = con.sql(sql).to_arrow_reader(BATCH_ROWS)
        except duckdb.Error as exc:
            con.close()
            raise WarehouseError(f"the query on {self.file()} failed: {exc}") from None

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                yield from result
            finally:  # read to the end (or abandoned): let go of the file
                con.close()

        return pa.RecordBatchReader.from_batches(result.schema, batches())

    def _ensure_table(self, con: duckdb.DuckDBPyConnection, table: LakeTable) -> list[str]:
        """Create the table from the contract, or add the columns the contract gained; the names added."""
        wanted = {c.name: c.type_names.duckdb for c in table.columns}
        existing = dict(
            con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                [SCHEMA, table.name],
            ).fetchall()
        )
        name = self.table_ref(table)
        if not existing:
            not_null = set(table.not_null_columns)
            columns = ",\n  ".join(
                f"{column} {kind}{' NOT NULL' if column in not_null else ''}"
                for column, kind in wanted.items()
            )
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            con.execute(f"CREATE TABLE IF NOT EXISTS {name} (\n  {columns}\n)")
            con.execute(f"COMMENT ON TABLE {name} IS {_quote(table.description)}")
            return []
        added = columns_to_add(table, existing, wanted)
        for column in added:
            con.execute(f"ALTER TABLE {name} ADD COLUMN {column} {wanted[column]}")
        return added
