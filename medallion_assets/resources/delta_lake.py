"""The lake: Delta tables written by delta-rs on a local folder or S3/MinIO, read into Spark via Arrow.

Asset key [layer, table] lives at <MEDALLION_LAKE_URI>/<layer>/<table>. Every write is one Delta
commit, so a failed or killed write leaves the table at its previous version. How a
materialization is written comes from the asset's table spec (its definition metadata, see
`lake_metadata`): replace the partition window, insert the rows not yet present, or a keyed
latest-wins merge. Inputs are read back for exactly the partitions asked for, pruning the other
partitions' files, as Spark DataFrames (or as Arrow tables for assets that ask for `pa.Table`).

Storage credentials come only from the environment (settings) and never appear in metadata, logs
or error messages.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError
from pydantic import Field
from pyspark.sql import DataFrame, SparkSession

from medallion_assets.resources.spark import SparkResource
from medallion_assets.settings import Settings, get_settings
from medallion_assets.specs import LakeTable

WRITE_MODE = "medallion/write_mode"
PARTITION_COLUMN = "medallion/partition_column"
T = TypeVar("T")
PRIMARY_KEY = "medallion/primary_key"
VERSION_COLUMN = "medallion/version_column"


class LakeError(RuntimeError):
    """A lake table cannot be read or written; the message names the table, never a secret."""


def lake_metadata(table: LakeTable) -> dict[str, Any]:
    """The definition metadata through which an asset tells the IO manager how it is stored."""
    metadata: dict[str, Any] = {WRITE_MODE: table.write_mode, PRIMARY_KEY: list(table.primary_key)}
    if table.partition_column:
        metadata[PARTITION_COLUMN] = table.partition_column
    if table.version_column:
        metadata[VERSION_COLUMN] = table.version_column
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

    def read(self, asset_key: dg.AssetKey, columns: list[str] | None = None) -> pa.Table | None:
        """A whole table as Arrow (None if it does not exist yet), e.g. a parent table's keys."""
        uri = self.uri(asset_key)
        table = self.open(uri)
        if table is None:
            return None
        return self.guarded(uri, "read", lambda: table.to_pyarrow_dataset().to_table(columns=columns))

    def read_window(
        self, asset_key: dg.AssetKey, window: Window | None, columns: list[str] | None = None
    ) -> pa.Table:
        """The rows of a table inside a partition window (all rows for None), reading only the
        files the window can touch; a table not built yet is a clear error."""
        uri = self.uri(asset_key)
        table = self.open(uri)
        if table is None:
            raise LakeError(
                f"{asset_key.to_user_string()} has no Delta table at {uri} yet: materialize it first"
            )
        # The window also selects the files (partition values, else file statistics): a dataset of
        # every file of a ~700-partition table costs ~0.5 s to build, the window's ~10 ms.
        dataset = table.to_pyarrow_dataset(file_pruning_predicate=window.sql() if window else None)
        return self.guarded(
            uri,
            "read",
            lambda: dataset.to_table(columns=columns, filter=window.expression() if window else None),
        )

    def guarded(self, uri: str, action: str, operation: Callable[[], T]) -> T:
        try:
            return operation()
        except Exception as exc:
            raise LakeError(f"cannot {action} the Delta table at {uri}: {self.redact(str(exc))}") from None

    def redact(self, text: str) -> str:
        for name in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"):
            secret = self.storage_options.get(name)
            if secret:
                text = text.replace(secret, "***")
        return text


def read_spark(
    spark: SparkSession, lake: Lake, key: list[str], columns: list[str] | None = None
) -> DataFrame | None:
    """A whole lake table as a Spark DataFrame through Arrow (None if it does not exist yet)."""
    table = lake.read(dg.AssetKey(list(key)), columns)
    return None if table is None else spark.createDataFrame(table)


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
    """Delta Lake tables in the lake (local folder or s3://), one commit per write."""

    spark: SparkResource
    lakehouse: LakeResource

    def lake(self) -> Lake:
        return self.lakehouse.lake()

    # -------------------------------------------------------------------------------- write

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        lake = self.lake()
        data = obj if isinstance(obj, pa.Table) else obj.toArrow()  # a Spark DataFrame
        spec = context.definition_metadata
        window = Window.of(context, spec.get(PARTITION_COLUMN))
        uri = lake.uri(context.asset_key)
        if window is not None:
            check_inside(data, window, context.asset_key)
        existing = lake.open(uri)
        mode = spec.get(WRITE_MODE, "replace_partition")
        counts = lake.guarded(
            uri, "write", lambda: self._write(lake, uri, data, spec, mode, window, existing)
        )
        table = lake.open(uri)
        assert table is not None
        dataset = table.to_pyarrow_dataset(file_pruning_predicate=window.sql() if window else None)
        context.add_output_metadata(
            {
                "dagster/row_count": dataset.count_rows(filter=window.expression() if window else None),
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(f.name, str(f.type)) for f in data.schema]
                ),
                "dagster/uri": uri,
                "delta_version": table.version(),
                "write_mode": mode,
                **counts,
            }
        )

    def _write(
        self,
        lake: Lake,
        uri: str,
        data: pa.Table,
        spec: dict[str, Any],
        mode: str,
        window: Window | None,
        existing: DeltaTable | None,
    ) -> dict[str, int]:
        exists = existing is not None
        # merge_latest tables hold current state: a key's row moves to the day of its latest change,
        # so they are neither physically partitioned nor matched within the window.
        partition_by = [window.column] if window and mode != "merge_latest" else None
        if not exists or mode == "replace_partition":
            write_deltalake(
                uri,
                data,
                mode="overwrite" if exists else "append",
                predicate=window.sql() if (exists and window) else None,
                schema_mode="overwrite" if (exists and not window) else None,
                partition_by=partition_by if not exists else None,
                storage_options=lake.storage_options,
            )
            return {"rows_written": data.num_rows}
        if data.num_rows == 0:
            return {"rows_inserted": 0, "rows_updated": 0}
        keys = spec[PRIMARY_KEY]
        in_window = [window.sql("t")] if window and mode == "insert_new" else []
        match = " AND ".join([f"t.{k} = s.{k}" for k in keys] + in_window)
        merger = existing.merge(data, predicate=match, source_alias="s", target_alias="t")
        if mode == "merge_latest":
            version = spec[VERSION_COLUMN]
            merger = merger.when_matched_update_all(predicate=f"s.{version} > t.{version}")
        metrics = merger.when_not_matched_insert_all().execute()
        return {
            "rows_inserted": metrics["num_target_rows_inserted"],
            "rows_updated": metrics["num_target_rows_updated"],
            "rows_unchanged": data.num_rows
            - metrics["num_target_rows_inserted"]
            - metrics["num_target_rows_updated"],
        }

    # --------------------------------------------------------------------------------- read

    def load_input(self, context: dg.InputContext) -> Any:
        upstream = context.upstream_output.definition_metadata if context.upstream_output else {}
        window = Window.of(context, upstream.get(PARTITION_COLUMN))
        table = self.lake().read_window(context.asset_key, window)
        if context.dagster_type.typing_type is pa.Table:
            return table
        return self.spark.session().createDataFrame(table)


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
