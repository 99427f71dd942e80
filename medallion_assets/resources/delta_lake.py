"""The lake: Delta tables on a local folder or S3/MinIO, written and read by Spark (delta-spark).

Asset key [layer, table] lives at <MEDALLION_LAKE_URI>/<layer>/<table>. Every write is one Delta
commit, so a failed or killed write leaves the table at its previous version. How a
materialization is written comes from the asset's table spec (its definition metadata, see
`lake_metadata`): replace the partition window, insert the rows not yet present, or a keyed
latest-wins merge. Inputs are read for exactly the partitions asked for, pruning the other
partitions' files, as lazy Spark DataFrames: table data moves inside Spark (on a cluster, between
its executors and the store), never through the process that runs Dagster.

The run process reads only Delta logs itself (delta-rs: does the table exist, its version, the
metrics of its last commit), and the warehouse sync streams gold windows as bounded Arrow batches
(`WindowRows`), since its sink is outside Spark. Spark writes only table features other readers
support (see resources/spark.py).

Storage credentials come only from the environment (settings) and never appear in metadata, logs
or error messages.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError
from pydantic import Field
from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from medallion_assets.resources.retries import retry_when_unreachable
from medallion_assets.resources.spark import SparkResource
from medallion_assets.settings import Settings, get_settings
from medallion_assets.specs import LakeTable

WRITE_MODE = "medallion/write_mode"
PARTITION_COLUMN = "medallion/partition_column"
T = TypeVar("T")
PRIMARY_KEY = "medallion/primary_key"
ROWS_PER_FILE = 250_000  # bounds what a one-day replaceWhere rewrites in a large table
BATCH_ROWS = 16_384  # an Arrow batch read from the lake outside Spark (the warehouse sync)
VERSION_COLUMN = "medallion/version_column"
# A write may add columns to the table (bronze: what the source added lands; later layers keep
# their contract and fail a write that differs).
EVOLVE_SCHEMA = "medallion/evolve_schema"
# A write's count of the window's rows when the table's log cannot tell them after it (not metadata).
WINDOW_ROWS = "_window_rows"
# Output metadata: the rows an asset hands over, when it counted them anyway (silver's accounting).
OUTPUT_ROWS = "output_rows"


class LakeError(RuntimeError):
    """A lake table cannot be read or written; the message names the table, never a secret."""


def first_line(message: str, containing: str = "") -> str:
    """The line of a (JVM) error message that says what went wrong, without its stack trace."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    chosen = next((line for line in lines if containing and containing in line), lines[0] if lines else "")
    return chosen[:500]


def lake_metadata(table: LakeTable) -> dict[str, Any]:
    """The definition metadata through which an asset tells the IO manager how it is stored."""
    metadata: dict[str, Any] = {WRITE_MODE: table.write_mode, PRIMARY_KEY: list(table.primary_key)}
    if table.partition_column:
        metadata[PARTITION_COLUMN] = table.partition_column
    if table.version_column:
        metadata[VERSION_COLUMN] = table.version_column
    if table.layer == "bronze":
        metadata[EVOLVE_SCHEMA] = True
    return metadata


def lake_table_args(table: LakeTable, group: str, kinds: set[str], **metadata: Any) -> dict[str, Any]:
    """What every lake table's asset (`dg.asset`) or output (`dg.AssetOut`) declares alike: its key,
    description, group and kinds, stored by this IO manager as its spec says."""
    return {
        "key": table.asset_path,
        "description": table.description,
        "io_manager_key": "lake",
        "metadata": {**lake_metadata(table), **metadata},
        "group_name": group,
        "kinds": kinds,
    }


@dataclass(frozen=True)
class Lake:
    """Where the tables are and how to reach them (from settings; secrets stay in here)."""

    root: str
    storage_options: dict[str, str]

    @classmethod
    def from_settings(cls, settings: Settings, root: str | None = None) -> Lake:
        return LakeResource(root_uri=root).lake(settings)

    def uri(self, asset_key: dg.AssetKey) -> str:
        return "/".join([self.root, *asset_key.path])

    def open(self, uri: str) -> DeltaTable | None:
        """The table, or None when there is none at the URI (yet)."""
        try:
            return DeltaTable(uri, storage_options=self.storage_options)
        except TableNotFoundError:
            return None
        except Exception as exc:  # unreachable store, bad credentials, corrupt log...
            raise LakeError(f"cannot reach the Delta table at {uri}: {self.redact(str(exc))}") from None

    def files(self, uri: str) -> tuple[pafs.FileSystem, str]:
        """A filesystem and path for the small files kept beside the tables (a stream's checkpoint)."""
        scheme, _, path = uri.partition("://")
        if not path:
            return pafs.LocalFileSystem(), uri
        if scheme in ("s3", "s3a"):
            options = self.storage_options
            endpoint = options.get("AWS_ENDPOINT_URL")
            return pafs.S3FileSystem(
                access_key=options.get("AWS_ACCESS_KEY_ID"),
                secret_key=options.get("AWS_SECRET_ACCESS_KEY"),
                region=options.get("AWS_REGION") or "us-east-1",
                endpoint_override=endpoint.split("://")[-1] if endpoint else None,
                scheme="http" if endpoint and endpoint.startswith("http://") else "https",
            ), path
        return pafs.LocalFileSystem(), path

    def read_batches(
        self, asset_key: dg.AssetKey, window: Window | None, columns: list[str] | None = None
    ) -> pa.RecordBatchReader:
        """The rows of a table inside a partition window (all rows for None) as a stream of
        bounded Arrow batches, reading only the files the window can touch; a table not built yet
        is a clear error. Memory stays at a few batches whatever the window's size."""
        uri = self.uri(asset_key)
        table = self.open(uri)
        if table is None:
            raise LakeError(
                f"{asset_key.to_user_string()} has no Delta table at {uri} yet: materialize it first"
            )
        # The window also selects the files (partition values, else file statistics): a dataset of
        # every file of a ~700-partition table costs ~0.5 s to build, the window's ~10 ms.
        dataset = table.to_pyarrow_dataset(file_pruning_predicate=window.sql() if window else None)
        full = dataset.schema
        schema = pa.schema([full.field(name) for name in columns]) if columns else full

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                for fragment in dataset.get_fragments():
                    yield from _file_batches(dataset.filesystem, fragment, schema, window)
            except Exception as exc:  # the store went away mid-read: say so, without a secret
                message = first_line(self.redact(str(exc)))
                raise LakeError(f"cannot read the Delta table at {uri}: {message}") from None

        return pa.RecordBatchReader.from_batches(schema, batches())

    # ------------------------------------------------------------------- Spark: the data path

    def frame(
        self,
        spark: SparkSession,
        asset_key: dg.AssetKey,
        window: Window | None = None,
        columns: list[str] | None = None,
        log: DeltaTable | None = None,
    ) -> DataFrame | None:
        """The table's rows (inside the window, its files pruned by partition values or statistics)
        as a lazy Spark DataFrame, or None when there is no table yet. Only the Delta log is read
        here (unless the caller has it: `log`), to tell a missing table from an unreachable store."""
        uri = self.uri(asset_key)
        if log is None and self.open(uri) is None:
            return None
        frame = spark.read.format("delta").load(uri)
        if window is not None:
            frame = frame.filter(window.condition())
        return frame.select(*columns) if columns else frame

    def table(
        self,
        spark: SparkSession,
        asset_key: dg.AssetKey,
        window: Window | None = None,
        columns: list[str] | None = None,
        log: DeltaTable | None = None,
    ) -> DataFrame:
        """Like `frame`, but a table not built yet is a clear error."""
        frame = self.frame(spark, asset_key, window, columns, log)
        if frame is None:
            raise LakeError(
                f"{asset_key.to_user_string()} has no Delta table at {self.uri(asset_key)} yet:"
                " materialize it first"
            )
        return frame

    def write(
        self,
        spark: SparkSession,
        asset_key: dg.AssetKey,
        data: DataFrame,
        mode: str,
        window: Window | None,
        primary_key: Sequence[str] = (),
        version_column: str | None = None,
        evolve_schema: bool = False,
        known_rows: int | None = None,
    ) -> dict[str, int]:
        """Write `data` in one Delta commit, as the table's write mode says; the counts of the write.
        `known_rows`: the rows of `data` when its producer counted them already; none to write
        where the window holds none commits nothing (each commit is a Spark job of ~0.5 s, and a
        day of a quiet table, a quarantine of a clean day, is such a write).

        - replace_partition: the window's rows are replaced (`replaceWhere`: Delta refuses, before
          committing, any row outside the window, a null partition value included); unpartitioned
          tables are overwritten whole, schema included.
        - insert_new: rows whose key is not in the window yet are inserted (MERGE, insert only).
        - merge_latest: keyed MERGE, a key's row updated only by a newer version, never regressed.
          A key's row moves to the day of its latest change.
        With `evolve_schema`, columns of `data` the table lacks are added to it (Delta's schema
        merge); without it such a write fails and commits nothing.
        No table is physically partitioned by day: a windowed write is laid out in day ranges
        (`clustered`) and the window selects files by their statistics.
        """
        uri = self.uri(asset_key)
        existing = self.open(uri)
        exists = existing is not None
        if known_rows == 0 and existing is not None:
            if mode != "replace_partition":  # a MERGE of no rows changes nothing
                return {"rows_inserted": 0, "rows_updated": 0, "rows_unchanged": 0}
            if window is not None and self.rows_in(existing, window) == 0:
                return {"rows_written": 0, "rows_copied": 0}
        if window is not None and mode != "merge_latest":
            data = clustered(data, window.column)
        if not exists or mode == "replace_partition":
            writer = data.write.format("delta").option("maxRecordsPerFile", ROWS_PER_FILE)
            if evolve_schema:
                writer = writer.option("mergeSchema", "true")
            if not exists:
                writer = writer.mode("append")
            elif window is not None:
                writer = writer.mode("overwrite").option("replaceWhere", window.sql())
            else:
                writer = writer.mode("overwrite").option("overwriteSchema", "true")
            self.guarded(uri, "write", lambda: writer.save(uri), window)
            metrics = last_commit_metrics(self.open(uri))
            # A replaceWhere also rewrites the other days of the files it touched (copied rows).
            copied = int(metrics.get("numCopiedRows", 0))
            return {"rows_written": int(metrics.get("numOutputRows", 0)) - copied, "rows_copied": copied}
        in_window = [window.sql("t")] if window and mode == "insert_new" else []
        match = " AND ".join([f"t.`{k}` = s.`{k}`" for k in primary_key] + in_window)
        update = (
            f"WHEN MATCHED AND s.`{version_column}` > t.`{version_column}` THEN UPDATE SET * "
            if mode == "merge_latest"
            else ""
        )
        # A merge_latest MERGE moves every row it inserts or updates into the window (the batch's
        # rows are the window's changes): into a window that held no row, those are all its rows.
        # The log cannot tell after it (the MERGE rewrites files of other days), so this saves the
        # IO manager a Spark count (~0.6 s; a day of silver writes into a new day's window).
        window_was_empty = (
            mode == "merge_latest" and window is not None and self.rows_in(existing, window) == 0
        )
        # A temporary view per write: views are per session, and a Connect server serves many.
        view = f"_medallion_merge_{uuid.uuid4().hex}"
        data.createOrReplaceTempView(view)
        try:
            before = existing.version()  # type: ignore[union-attr]
            merged = self.guarded(
                uri,
                "write",
                lambda: spark.sql(
                    f"MERGE {'WITH SCHEMA EVOLUTION ' if evolve_schema else ''}"
                    f"INTO delta.`{uri}` t USING `{view}` s ON {match} "
                    f"{update}WHEN NOT MATCHED THEN INSERT *"
                ).first(),
            )
            table = self.open(uri)
            # Delta commits nothing when the MERGE changes no file: insert_new's keys all there
            # already (every source row unchanged). merge_latest, which can also update, rewrites
            # every file holding one of the batch's keys, updated or not (numTargetRowsCopied).
            committed = table is not None and table.version() > before
            source_rows = int(last_commit_metrics(table)["numSourceRows"]) if committed else data.count()
        finally:
            spark.catalog.dropTempView(view)
        inserted, updated = int(merged["num_inserted_rows"]), int(merged["num_updated_rows"])
        counts = {
            "rows_inserted": inserted,
            "rows_updated": updated,
            "rows_unchanged": source_rows - inserted - updated,
        }
        return counts | ({WINDOW_ROWS: inserted + updated} if window_was_empty else {})

    def rows_per_day(self, asset_key: dg.AssetKey, window: Window) -> dict[dt.date, int] | None:
        """Rows per day of the window's column, from the table's log (no data read); None when
        the table is not laid out by that column, {} when there is no table yet."""
        table = self.open(self.uri(asset_key))
        if table is None:
            return {}
        files = _files_in(table, window)
        if files is None:
            return None
        days = files.group_by(f"partition.{window.column}").aggregate([("num_records", "sum")])
        return dict(zip(days.column(0).to_pylist(), days.column(1).to_pylist(), strict=True))

    @staticmethod
    def rows_in(table: DeltaTable, window: Window | None) -> int | None:
        """Rows of the table (inside the window) from its log's file records, no data read (a Spark
        action costs ~0.5 s whatever it reads); None when the log cannot tell: a file without
        statistics, or a file of a day-range layout straddling the window's edge."""
        if window is None:
            return _records(pa.table(table.get_add_actions(flatten=True)))
        inside = _files_in(table, window)
        if inside is None:
            inside = _files_within(table, window)
        return None if inside is None else _records(inside)

    def guarded(self, uri: str, action: str, operation: Callable[[], T], window: Window | None = None) -> T:
        try:
            return operation()
        except Exception as exc:
            message = self.redact(str(exc))
            if "DELTA_REPLACE_WHERE_MISMATCH" in message and window is not None:
                raise LakeError(
                    f"{uri}: row(s) have {window.column} outside the partition window "
                    f"[{window.start}, {window.end}) or no {window.column}; nothing was written "
                    f"({first_line(message, 'DELTA_VIOLATE_CONSTRAINT')})"
                ) from None
            raise LakeError(f"cannot {action} the Delta table at {uri}: {first_line(message)}") from None

    def redact(self, text: str) -> str:
        for name in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"):
            secret = self.storage_options.get(name)
            if secret:
                text = text.replace(secret, "***")
        return text


def _file_batches(
    filesystem: Any, fragment: ds.ParquetFileFragment, schema: pa.Schema, window: Window | None
) -> Iterator[pa.RecordBatch]:
    """One file's rows inside the window, a batch at a time, in the table's schema. Read with
    Parquet's own batch reader, not a dataset scanner: the scanner decodes whole row groups ahead
    of its consumer (a 1.1M-row fact table peaked 300 MB above the process; this, 100 MB)."""
    constants = ds.get_partition_keys(fragment.partition_expression)  # a table partitioned by day
    with filesystem.open_input_file(fragment.path) as source:
        file = pq.ParquetFile(source, pre_buffer=False, buffer_size=1 << 20)
        stored = [name for name in schema.names if name in file.schema_arrow.names]
        for batch in file.iter_batches(batch_size=BATCH_ROWS, columns=stored, use_threads=False):
            rows = pa.Table.from_batches([batch])
            for field in schema:
                if field.name not in stored:  # a partition value, or a column added after this file
                    value = constants.get(field.name)
                    column = pa.array([value] * rows.num_rows).cast(field.type)  # a value may come as text
                    rows = rows.append_column(field.name, column)
            rows = rows.select(schema.names).cast(schema)
            yield from (rows.filter(window.expression()) if window else rows).to_batches()


def clustered(data: DataFrame, column: str) -> DataFrame:
    """The rows in files that each hold a stretch of days (range-partitioned, sorted), so the window
    filter skips files by their min/max statistics and a day's replaceWhere rewrites one file.

    Why not a physical partition per day: Spark pays ~10 ms per file written and ~5 ms per file
    read, and a daily partition is one file per day per table (measured: 100,000 rows over 725 days
    written in 11-13 s partitioned by day, 1-1.8 s unpartitioned; counted in 3.8 s). Tables made
    by an earlier version, partitioned by day, are read and written as they are."""
    return data.repartitionByRange(F.col(column)).sortWithinPartitions(column)


def _files_in(table: DeltaTable, window: Window) -> pa.Table | None:
    """The log's file records (partition value as a date, num_records) of the window's partitions;
    None when the table is not partitioned by the window's column."""
    files = pa.table(table.get_add_actions(flatten=True))
    column = f"partition.{window.column}"
    if column not in files.column_names:
        return None
    files = files.select([column, "num_records"]).set_column(0, column, files[column].cast(pa.date32()))
    days = files[column]
    inside = pc.and_(pc.greater_equal(days, pa.scalar(window.start)), pc.less(days, pa.scalar(window.end)))
    return files.filter(inside)


def _records(files: pa.Table) -> int | None:
    """The rows of these file records; None when a file lacks the statistics to tell."""
    if not files.num_rows:
        return 0
    records = files["num_records"]
    return None if records.null_count else int(pc.sum(records).as_py())


def _int_value(value: Any) -> int | None:
    """An int from metadata as given to Output (int) or as normalized (IntMetadataValue)."""
    value = getattr(value, "value", value)
    return value if isinstance(value, int) else None


def _files_within(table: DeltaTable, window: Window) -> pa.Table | None:
    """The log's file records of a day-range layout (`clustered`) that can hold rows of the window,
    judged by each file's min/max statistics; None unless every such file lies wholly inside the
    window (then their record counts are the window's rows: none at all when no file can hold one)."""
    files = pa.table(table.get_add_actions(flatten=True))
    low, high = f"min.{window.column}", f"max.{window.column}"
    if not files.num_rows:
        return files.select(["num_records"])
    if low not in files.column_names or files[low].null_count or files[high].null_count:
        return None  # a file without statistics could hold anything
    first, last = files[low].cast(pa.date32()), files[high].cast(pa.date32())
    start, end = pa.scalar(window.start), pa.scalar(window.end)
    overlapping = pc.and_(pc.less(first, end), pc.greater_equal(last, start))
    within = pc.and_(pc.greater_equal(first, start), pc.less(last, end))
    if not pc.all(pc.or_(pc.invert(overlapping), within)).as_py():
        return None
    return files.filter(overlapping).select(["num_records"])


def last_commit_metrics(table: DeltaTable | None) -> dict[str, str]:
    """The operation metrics Delta recorded with the table's latest commit (from its log)."""
    history = table.history(1) if table is not None else []
    return history[0].get("operationMetrics", {}) if history else {}


@dataclass(frozen=True)
class Window:
    """A partition window [start, end) on a date column."""

    column: str
    start: dt.date
    end: dt.date

    @classmethod
    def of(cls, context: dg.InputContext | dg.OutputContext, column: str | None) -> Window | None:
        if column is None or not context.has_asset_partitions:
            return None
        window = context.asset_partitions_time_window
        return cls(column, window.start.date(), window.end.date())

    def sql(self, alias: str = "") -> str:
        column = f"{alias}.{self.column}" if alias else self.column
        return f"{column} >= '{self.start.isoformat()}' AND {column} < '{self.end.isoformat()}'"

    def condition(self) -> SparkColumn:
        # As SQL text: a Python date literal of year 1 (the open start of a window) fails in py4j.
        return F.expr(self.sql())

    def expression(self) -> ds.Expression:
        return (ds.field(self.column) >= self.start) & (ds.field(self.column) < self.end)


class LakeResource(dg.ConfigurableResource):
    """The lake: where the Delta tables are and how to reach them. Assets, checks, sensors and the
    IO manager reach the lake only through it. A field left unset takes the settings' value; the
    code location sets the secrets as `dg.EnvVar`, so the UI shows the variable's name only."""

    root_uri: str | None = Field(None, description="MEDALLION_LAKE_URI: a path or s3://bucket/prefix.")
    aws_endpoint_url: str | None = Field(None, description="AWS_ENDPOINT_URL: MinIO or another S3 server.")
    aws_access_key_id: str | None = Field(None, description="AWS_ACCESS_KEY_ID.")
    aws_secret_access_key: str | None = Field(None, description="AWS_SECRET_ACCESS_KEY.")
    aws_region: str | None = Field(None, description="AWS_REGION.")

    def lake(self, settings: Settings | None = None) -> Lake:
        settings = settings or get_settings()
        secret = settings.aws_secret_access_key
        endpoint = self.aws_endpoint_url or settings.aws_endpoint_url
        options = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ALLOW_HTTP": "true" if endpoint and endpoint.startswith("http://") else None,
            "AWS_ACCESS_KEY_ID": self.aws_access_key_id or settings.aws_access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.aws_secret_access_key
            or (secret.get_secret_value() if secret else None),
            "AWS_REGION": self.aws_region or settings.aws_region,
        }
        root = (self.root_uri or settings.lake_uri).rstrip("/")
        return Lake(root, {name: value for name, value in options.items() if value})


class DeltaLakeIOManager(dg.ConfigurableIOManager):
    """Delta Lake tables in the lake (local folder or s3://), written and read by Spark (delta-spark),
    one commit per write. Table data stays in Spark: the run process only plans the work and reads
    the counts back."""

    spark: SparkResource
    lakehouse: LakeResource

    def lake(self) -> Lake:
        return self.lakehouse.lake()

    # -------------------------------------------------------------------------------- write

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        # The write is where an unreachable store (or the source a lazy frame reads) shows up.
        step = context.step_context
        with retry_when_unreachable(step.dagster_run.tags, step.previous_attempt_count):
            self._write(context, obj)

    def _write(self, context: dg.OutputContext, obj: Any) -> None:
        lake, spark = self.lake(), self.spark.session()
        # Arrow only from an asset whose rows start in Python (gold/dim_date: a generated calendar).
        data: DataFrame = spark.createDataFrame(obj) if isinstance(obj, pa.Table) else obj
        spec = context.definition_metadata
        window = Window.of(context, spec.get(PARTITION_COLUMN))
        mode = spec.get(WRITE_MODE, "replace_partition")
        uri = lake.uri(context.asset_key)
        counts = lake.write(
            spark,
            context.asset_key,
            data,
            mode,
            window,
            spec.get(PRIMARY_KEY, []),
            spec.get(VERSION_COLUMN),
            bool(spec.get(EVOLVE_SCHEMA)),
            _int_value(context.output_metadata.get(OUTPUT_ROWS)),
        )
        table = lake.open(uri)
        assert table is not None
        rows = lake.rows_in(table, window)
        window_rows = counts.pop(WINDOW_ROWS, None)  # what the write knew of the window, if anything
        if rows is None and mode == "replace_partition":  # the window holds what was just written
            rows = counts["rows_written"]
        if rows is None:
            rows = window_rows
        if rows is None:  # not laid out by the window's column (a day per file): Spark counts
            rows = lake.guarded(uri, "read", lake.table(spark, context.asset_key, window).count)
        context.add_output_metadata(
            {
                "dagster/row_count": rows,
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(f.name, f.dataType.simpleString()) for f in data.schema.fields]
                ),
                "dagster/uri": uri,
                "delta_version": table.version(),
                "write_mode": mode,
                **counts,
            }
        )

    # --------------------------------------------------------------------------------- read

    def load_input(self, context: dg.InputContext) -> Any:
        step = context.step_context
        with retry_when_unreachable(step.dagster_run.tags, step.previous_attempt_count):
            return self._read(context)

    def _read(self, context: dg.InputContext) -> Any:
        upstream = context.upstream_output.definition_metadata if context.upstream_output else {}
        window = Window.of(context, upstream.get(PARTITION_COLUMN))
        if context.dagster_type.typing_type is WindowRows:
            # The warehouse sync: its sink is outside Spark, so it streams the window's files itself.
            return WindowRows(self.lake(), context.asset_key, window)
        return self.lake().table(self.spark.session(), context.asset_key, window)


@dataclass(frozen=True)
class WindowRows:
    """A table's rows inside a window, read again as a bounded stream by every `batches()` (the
    warehouse sync passes over them twice: content fingerprint, then load)."""

    lake: Lake
    asset_key: dg.AssetKey
    window: Window | None

    def batches(self) -> pa.RecordBatchReader:
        return self.lake.read_batches(self.asset_key, self.window)
