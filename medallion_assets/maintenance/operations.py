"""Time travel and maintenance of the lake's Delta tables, each a function of a `Lake` and a Spark
session (local or Spark Connect alike: everything goes through Spark SQL or the DataFrame reader).

- history: the table's versions, newest first, from `DESCRIBE HISTORY`: its timestamps are the
  ones Spark's time travel resolves `--as-of` against (a commit file's time, which can be later
  than the time the commit records inside it, the one delta-rs shows).
- show: rows at a version or a time, limited in Spark before they reach this process.
- restore: `RESTORE TABLE ... TO VERSION AS OF`, refused while a run writes the table.
- optimize: `OPTIMIZE` with `ZORDER BY` (see `zorder_columns`); files and bytes from the log.
- vacuum: `VACUUM ... RETAIN n HOURS`, never below Delta's safety minimum of 7 days. Delta's own
  check (`spark.databricks.delta.retentionDurationCheck.enabled`) is never switched off.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from medallion_assets.maintenance.runs import describe_runs, runs_writing
from medallion_assets.resources.delta_lake import ROWS_PER_FILE, Lake, LakeError
from medallion_assets.specs import TABLES_BY_PATH, LakeTable

# Delta's default `delta.deletedFileRetentionDuration`: VACUUM with less deletes files that a
# reader still reading an older snapshot, a writer committing, or a time travel within 7 days needs.
MIN_RETENTION_HOURS = 168
RETENTION_VARIABLE = "MEDALLION_VACUUM_RETENTION_HOURS"

# What `history` shows of a commit: Delta's operation parameters and metrics, under short names.
PARAMETERS = {
    "mode": "mode",
    "predicate": "predicate",
    "version": "to_version",  # RESTORE
    "timestamp": "to_time",  # RESTORE ... TIMESTAMP AS OF
    "zOrderBy": "zorder_by",  # OPTIMIZE
    "specifiedRetentionMillis": "retention_ms",  # VACUUM START
}
METRICS = {
    "numOutputRows": "rows_written",
    "numCopiedRows": "rows_copied",  # of rows_written: a replaceWhere rewrites the rest of its files
    "numTargetRowsInserted": "rows_inserted",
    "numTargetRowsUpdated": "rows_updated",
    "numTargetRowsDeleted": "rows_deleted",
    "numDeletedRows": "rows_deleted",
    "numFiles": "files_added",
    "numAddedFiles": "files_added",
    "numTargetFilesAdded": "files_added",
    "numRemovedFiles": "files_removed",
    "numTargetFilesRemoved": "files_removed",
    "numRestoredFiles": "files_restored",
    "numFilesToDelete": "files_to_delete",  # VACUUM START
    "numDeletedFiles": "files_deleted",  # VACUUM END
}
MAX_DETAIL = 80  # a replaceWhere predicate can be long


class RestoreRefusedError(LakeError):
    """A restore while a run writes the table: one of the two commits would undo the other."""


class RetentionTooShortError(LakeError):
    """A VACUUM retention below Delta's safety minimum."""


def lake_table(name: str) -> LakeTable:
    """The table spec of `layer/name` (e.g. gold/fact_orders); an unknown name lists the known ones."""
    table = TABLES_BY_PATH.get(name.strip().strip("/"))
    if table is None:
        close = difflib.get_close_matches(name, TABLES_BY_PATH, n=3)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise ValueError(
            f"no lake table {name!r}: {hint}the tables are layer/name, one of {', '.join(TABLES_BY_PATH)}"
        )
    return table


def opened(lake: Lake, key: dg.AssetKey) -> tuple[str, DeltaTable]:
    """The table's URI and its Delta log; a table not built yet is a clear error."""
    uri = lake.uri(key)
    table = lake.open(uri)
    if table is None:
        raise LakeError(f"{key.to_user_string()} has no Delta table at {uri} yet: materialize it first")
    return uri, table


# ----------------------------------------------------------------------------------- time travel


@dataclass(frozen=True)
class Commit:
    version: int
    timestamp: str  # UTC, to the millisecond: what `show --as-of` takes
    operation: str
    parameters: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)

    def details(self) -> str:
        """The commit's key parameters and metrics, e.g. `rows_written=50 files_added=2 mode=Overwrite`."""
        shown: dict[str, str] = {}
        for names, values in ((METRICS, self.metrics), (PARAMETERS, self.parameters)):
            for name, label in names.items():
                value = values.get(name)
                if value not in (None, "", "[]") and label not in shown:
                    shown[label] = value if len(value) <= MAX_DETAIL else value[: MAX_DETAIL - 3] + "..."
        return " ".join(f"{label}={value}" for label, value in shown.items())


def history(lake: Lake, spark: SparkSession, key: dg.AssetKey, limit: int = 20) -> list[Commit]:
    """The table's latest `limit` versions, newest first (only the log is read)."""
    uri, _ = opened(lake, key)
    rows = lake.guarded(
        uri,
        "read the history of",
        lambda: (
            spark.sql(f"DESCRIBE HISTORY delta.`{uri}` LIMIT {int(limit)}")
            .select(
                "version",
                # As text in the session's zone (UTC): a timestamp collected into Python would take the
                # zone of this process.
                F.date_format("timestamp", "yyyy-MM-dd HH:mm:ss.SSS").alias("timestamp"),
                "operation",
                "operationParameters",
                "operationMetrics",
            )
            .collect()
        ),
    )
    return [
        Commit(
            int(row.version),
            row.timestamp,
            row.operation,
            dict(row.operationParameters or {}),
            dict(row.operationMetrics or {}),
        )
        for row in rows
    ]


def as_of_text(moment: dt.datetime) -> str:
    """A moment as Spark's time travel reads it in the session's zone (UTC): a naive moment is UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment.isoformat(sep=" ", timespec="milliseconds")


def show(
    lake: Lake,
    spark: SparkSession,
    key: dg.AssetKey,
    version: int | None = None,
    as_of: dt.datetime | None = None,
    limit: int = 20,
) -> pa.Table:
    """At most `limit` rows of the table at a version, at a moment (the latest version committed
    then), or now; the limit applies in Spark, so no more rows reach this process."""
    if version is not None and as_of is not None:
        raise ValueError("give a version or a time, not both")
    uri, _ = opened(lake, key)
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", int(version))
    elif as_of is not None:
        reader = reader.option("timestampAsOf", as_of_text(as_of))
    return lake.guarded(uri, "read", lambda: reader.load(uri).limit(int(limit)).toArrow())


@dataclass(frozen=True)
class Restored:
    before: int  # the latest version before the restore
    after: int  # the RESTORE commit's version
    metrics: dict[str, int]


def refuse_while_written(instance: dg.DagsterInstance, key: dg.AssetKey) -> None:
    writers = runs_writing(instance, key)
    if writers:
        raise RestoreRefusedError(
            f"not restoring {key.to_user_string()}: run(s) in progress write it: {describe_runs(writers)};"
            " restore once they have finished"
        )


def restore(
    lake: Lake, spark: SparkSession, instance: dg.DagsterInstance, key: dg.AssetKey, version: int
) -> Restored:
    """Make `version` the table's latest state (a new RESTORE commit; history is kept). Refused
    while a run of the instance writes the table."""
    uri, table = opened(lake, key)
    refuse_while_written(instance, key)
    before = table.version()
    statement = f"RESTORE TABLE delta.`{uri}` TO VERSION AS OF {int(version)}"
    result = lake.guarded(uri, "restore", lambda: spark.sql(statement).first())
    _, after = opened(lake, key)
    metrics = {name: int(value) for name, value in result.asDict().items() if value is not None}
    return Restored(before, after.version(), metrics)


# ----------------------------------------------------------------------------------- maintenance


@dataclass(frozen=True)
class Layout:
    """The table's live files, from its log: what a reader of the latest version opens."""

    version: int
    files: int
    bytes: int
    rows: int


def layout(table: DeltaTable) -> Layout:
    files = pa.table(table.get_add_actions(flatten=True))
    if not files.num_rows:
        return Layout(table.version(), 0, 0, 0)
    total = [int(pc.sum(files[column]).as_py() or 0) for column in ("size_bytes", "num_records")]
    return Layout(table.version(), files.num_rows, *total)


def zorder_columns(spec: LakeTable, partitioned_by: Sequence[str]) -> tuple[str, ...]:
    """What OPTIMIZE Z-orders a table by: the spec's `zorder_by`, led by the table's window column
    when the table is not physically partitioned by it. Compaction alone bins files by size and so
    mixes days, and a window read skips files by their min/max of that column; Z-ordering keeps
    the days together. Never a physical partition column (Delta refuses those)."""
    window = (spec.partition_column,) if spec.partition_column else ()
    columns = dict.fromkeys((*window, *spec.zorder_by))
    return tuple(c for c in columns if c not in partitioned_by)


# OPTIMIZE's target file size (Delta's default: 1 GiB), kept within these bounds.
MIN_TARGET_BYTES, MAX_TARGET_BYTES = 16 * 2**20, 2**30


def optimize_settings(before: Layout, rows_per_file: int) -> dict[str, str]:
    """Session settings for one OPTIMIZE: files of about `rows_per_file` rows (sized from the
    table's bytes per row) and never more, as the lake's writes cap them, so a later one-day
    replaceWhere rewrites a bounded file rather than a compacted gigabyte."""
    per_row = before.bytes / before.rows if before.rows else 0
    target = int(min(max(per_row * rows_per_file, MIN_TARGET_BYTES), MAX_TARGET_BYTES))
    return {
        "spark.databricks.delta.optimize.maxFileSize": str(target),
        "spark.sql.files.maxRecordsPerFile": str(rows_per_file),
    }


@contextmanager
def session_conf(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    """Session settings for the duration of one statement, then back to what they were."""
    previous = {name: spark.conf.get(name) for name in settings}
    for name, value in settings.items():
        spark.conf.set(name, value)
    try:
        yield
    finally:
        for name, value in previous.items():
            spark.conf.set(name, value)


@dataclass(frozen=True)
class Compaction:
    before: Layout
    after: Layout
    zorder_by: tuple[str, ...]


def optimize(
    lake: Lake, spark: SparkSession, spec: LakeTable, rows_per_file: int = ROWS_PER_FILE
) -> Compaction:
    """Compact the table's files (`OPTIMIZE`, Z-ordered as `zorder_columns` says, files of at most
    `rows_per_file` rows): one commit, or none when there is nothing to compact; the rows are
    unchanged."""
    key = dg.AssetKey(spec.asset_path)
    uri, table = opened(lake, key)
    before = layout(table)
    columns = zorder_columns(spec, table.metadata().partition_columns)
    zorder = f" ZORDER BY ({', '.join(f'`{c}`' for c in columns)})" if columns else ""
    with session_conf(spark, optimize_settings(before, rows_per_file)):
        lake.guarded(uri, "optimize", lambda: spark.sql(f"OPTIMIZE delta.`{uri}`{zorder}").collect())
    return Compaction(before, layout(opened(lake, key)[1]), columns)


def check_retention(hours: int) -> int:
    if hours < MIN_RETENTION_HOURS:
        raise RetentionTooShortError(
            f"refusing to VACUUM with a retention of {hours} h: below Delta's safety minimum of"
            f" {MIN_RETENTION_HOURS} h (7 days), files that a running reader, a concurrent writer or a"
            f" time travel may still need would be deleted; set {RETENTION_VARIABLE} to"
            f" {MIN_RETENTION_HOURS} or more"
        )
    return hours


# VACUUM lists the table's folder in this many Spark tasks; Spark's default of 10,000 tasks took
# 30-40 s for a table of 24 files on 2 cores, 16 tasks 4 s (the listing of one table needs few).
VACUUM_SETTINGS = {"spark.sql.sources.parallelPartitionDiscovery.parallelism": "16"}


@dataclass(frozen=True)
class Vacuumed:
    version: int  # the table's version after it (VACUUM logs its start and end as commits)
    retention_hours: int
    files_deleted: int | None  # None: Delta did not log the VACUUM (its logging is switched off)
    bytes_deleted: int | None


def vacuum(lake: Lake, spark: SparkSession, key: dg.AssetKey, retention_hours: int) -> Vacuumed:
    """Delete the files that no version younger than the retention needs (versions older than the
    retention can no longer be read). What was deleted comes from the VACUUM START/END commits."""
    hours = check_retention(retention_hours)
    uri, table = opened(lake, key)
    before = table.version()
    with session_conf(spark, VACUUM_SETTINGS):
        statement = f"VACUUM delta.`{uri}` RETAIN {hours} HOURS"
        lake.guarded(uri, "vacuum", lambda: spark.sql(statement).collect())
    _, table = opened(lake, key)
    commits = [c for c in table.history(2) if c["version"] > before]
    logged = {c["operation"]: c.get("operationMetrics", {}) for c in commits}
    deleted = logged.get("VACUUM END", {}).get("numDeletedFiles")
    size = logged.get("VACUUM START", {}).get("sizeOfDataToDelete")
    return Vacuumed(
        table.version(),
        hours,
        int(deleted) if deleted is not None else None,
        int(size) if size is not None and deleted is not None else None,
    )
