"""The production warehouse: BigQuery, through our own IO manager around `bigquery.Client`
(dagster-gcp's BigQueryResource takes neither an API endpoint nor a credentials object).

Tables are created from the gold contract: NUMERIC(p,s) for money, DATE, DATETIME for Olist's
zone-less times, INT64, FLOAT64, BOOL, STRING; REQUIRED where the contract forbids nulls; DAY time
partitioning on the partition column (order_date) and the clustering the spec declares.

A write never shows a half-replaced window:
1. the rows, streamed batch by batch into a local Parquet file (bounded memory whatever the window),
   go through a resumable upload into a staging table of their own
   (`_staging_<table>_<random>`, expiring after a day in case the clean-up below never runs);
   a failed load stops here and the target is untouched;
2. one MERGE replaces the window: target rows of the window not in the staging table (all of
   them, the condition is FALSE) are deleted and every staged row is inserted, atomically. Its
   filter on the partition column prunes the target to the window's partitions, so a sync costs
   the BigQuery work of the partitions that changed, not of the table;
3. the staging table is dropped.
A whole table's content fingerprint (warehouse.py) is its label `medallion_content`: removed before
the MERGE (emptied: BigQuery allows an empty value, the emulator cannot delete a label) and set
after it, so a label with a value always describes the rows the table holds.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
from google.api_core import exceptions as google_errors
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import bigquery
from google.oauth2 import service_account
from pydantic import Field

from medallion_assets.resources.delta_lake import BATCH_ROWS, LakeError, Window
from medallion_assets.resources.warehouse import (
    Conformed,
    Rows,
    WarehouseError,
    WarehouseIOManager,
    columns_to_add,
    describe,
    window_predicate,
)
from medallion_assets.settings import Settings, get_settings
from medallion_assets.specs import LakeTable

STAGING_LIFETIME = dt.timedelta(days=1)
FINGERPRINT_LABEL = "medallion_content"
# The API names some types by their legacy names; compare by the standard SQL ones.
_LEGACY_TYPES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}


def schema_fields(table: LakeTable) -> list[bigquery.SchemaField]:
    not_null = set(table.not_null_columns)
    fields = []
    for column in table.columns:
        arrow = column.type_names.arrow
        decimal = {"precision": arrow.precision, "scale": arrow.scale} if pa.types.is_decimal(arrow) else {}
        mode = "REQUIRED" if column.name in not_null else "NULLABLE"
        fields.append(bigquery.SchemaField(column.name, column.type_names.bigquery, mode=mode, **decimal))
    return fields


def _type_name(field: bigquery.SchemaField) -> str:
    return _LEGACY_TYPES.get(field.field_type, field.field_type)


def _sql_type(field: bigquery.SchemaField) -> str:
    precision = f"({field.precision},{field.scale})" if field.precision is not None else ""
    return _type_name(field) + precision


def credentials(settings: Settings) -> Credentials | None:
    """A service account key given as JSON in the environment, anonymous for an emulator, else
    None: the client then finds Google's application default credentials itself."""
    if settings.bigquery_credentials_json is not None:
        try:
            info = json.loads(settings.bigquery_credentials_json.get_secret_value())
            return service_account.Credentials.from_service_account_info(info)
        except (ValueError, KeyError) as exc:
            # Never the key itself in the message.
            raise WarehouseError(
                f"MEDALLION_BIGQUERY_CREDENTIALS_JSON is not a service account key: {type(exc).__name__}"
            ) from None
    if settings.bigquery_endpoint:
        return AnonymousCredentials()
    return None


class BigQueryWarehouse(WarehouseIOManager):
    """Gold tables in a BigQuery dataset, one MERGE per partition window."""

    project: str | None = Field(None, description="Override MEDALLION_BIGQUERY_PROJECT.")
    dataset: str | None = Field(None, description="Override MEDALLION_BIGQUERY_DATASET.")
    endpoint: str | None = Field(None, description="Override MEDALLION_BIGQUERY_ENDPOINT (an emulator).")
    credentials_json: str | None = Field(
        None, description="Override MEDALLION_BIGQUERY_CREDENTIALS_JSON (set as dg.EnvVar: a secret)."
    )

    def settings(self) -> Settings:
        overrides = {
            name: value
            for name, value in (
                ("bigquery_project", self.project),
                ("bigquery_dataset", self.dataset),
                ("bigquery_endpoint", self.endpoint),
                ("bigquery_credentials_json", self.credentials_json),
            )
            if value
        }
        settings = get_settings(**overrides)
        if not settings.bigquery_project:
            raise WarehouseError("MEDALLION_WAREHOUSE=bigquery needs MEDALLION_BIGQUERY_PROJECT")
        return settings

    def client(self) -> bigquery.Client:
        settings = self.settings()
        options = (
            ClientOptions(api_endpoint=settings.bigquery_endpoint) if settings.bigquery_endpoint else None
        )
        return bigquery.Client(
            project=settings.bigquery_project,
            credentials=credentials(settings),
            location=settings.bigquery_location,
            client_options=options,
        )

    def table_id(self, table: LakeTable) -> str:
        settings = self.settings()
        return f"{settings.bigquery_project}.{settings.bigquery_dataset}.{table.name}"

    def console_url(self, table: LakeTable) -> str:
        project, dataset, name = self.table_id(table).split(".")
        return (
            f"https://console.cloud.google.com/bigquery?project={project}"
            f"&ws=!1m5!1m4!4m3!1s{project}!2s{dataset}!3s{name}"
        )

    def replace(
        self, table: LakeTable, rows: Rows, window: Window | None, fingerprint: str | None = None
    ) -> dict[str, Any]:
        stream = Conformed(rows, table, window)
        client = self.client()
        target = self.table_id(table)
        try:
            fields = schema_fields(table)
            added = self._ensure_table(client, table, fields)
            if window is None:
                self._label(client, target, "")  # the rows are about to change
            staging = f"{target.rsplit('.', 1)[0]}._staging_{table.name}_{uuid.uuid4().hex[:12]}"
            try:
                load, parquet_bytes = self._load(client, table, fields, stream, staging, window)
                merge = client.query(self._merge_sql(table, target, staging, window))
                try:
                    merge.result()
                except google_errors.GoogleAPICallError as exc:
                    raise WarehouseError(
                        f"replacing warehouse/{table.name} ({describe(window)}) failed in job "
                        f"{merge.job_id}, the table is unchanged: {exc.message}"
                    ) from None
            finally:
                client.delete_table(staging, not_found_ok=True)
            if window is None and fingerprint:
                self._label(client, target, fingerprint)
        except google_errors.GoogleAPICallError as exc:
            raise WarehouseError(f"BigQuery refused warehouse/{table.name}: {exc.message}") from None
        finally:
            client.close()
        stats = merge.dml_stats  # None on the emulator, which gives only the affected total
        deleted = stats.deleted_row_count if stats else merge.num_dml_affected_rows - stream.rows
        metadata = {
            "rows_deleted": deleted,
            "rows_inserted": stream.rows,
            "columns_added": ", ".join(added) or "none",
            "load_job_id": load.job_id,
            "merge_job_id": merge.job_id,
            "parquet_bytes": parquet_bytes,
            "bytes_processed": merge.total_bytes_processed,
            "bytes_billed": merge.total_bytes_billed,
            "dagster/table_name": target,
            "console_url": dg.MetadataValue.url(self.console_url(table)),
        }
        return {name: value for name, value in metadata.items() if value is not None}

    def table_ref(self, table: LakeTable) -> str:
        return f"`{self.table_id(table)}`"

    def dataset_of(self, schema: str) -> str:
        """The dataset of a schema of specs/interface.py: `gold` is the tables' own."""
        settings = self.settings()
        dataset = settings.bigquery_dataset if schema == "gold" else settings.bigquery_analytics_dataset
        return f"{settings.bigquery_project}.{dataset}"

    def location(self) -> str:
        return f"BigQuery {self.dataset_of('gold')}, {self.dataset_of('analytics')}"

    def view_ref(self, name: str, schema: str = "gold") -> str:
        return f"`{self.dataset_of(schema)}.{name}`"

    def replace_view(self, name: str, description: str, sql: str, schema: str = "gold") -> dict[str, Any]:
        client = self.client()
        # BigQuery's string literal: a raw triple-quoted one, so a description needs no escaping but this.
        text = description.replace('"""', "'''")
        view = self.view_ref(name, schema)
        try:
            dataset = bigquery.Dataset(self.dataset_of(schema))
            dataset.location = self.settings().bigquery_location
            client.create_dataset(dataset, exists_ok=True)
            client.query(
                f'CREATE OR REPLACE VIEW {view} OPTIONS (description = r"""{text}""") AS {sql}'
            ).result()
        except google_errors.GoogleAPICallError as exc:
            raise WarehouseError(f"BigQuery refused creating the view {view}: {exc.message}") from None
        finally:
            client.close()
        return {"dagster/table_name": view.strip("`")}

    def stored_fingerprint(self, table: LakeTable) -> str | None:
        client = self.client()
        try:
            return client.get_table(self.table_id(table)).labels.get(FINGERPRINT_LABEL) or None
        except google_errors.NotFound:
            return None
        except google_errors.GoogleAPICallError as exc:
            raise WarehouseError(f"BigQuery refused reading warehouse/{table.name}: {exc.message}") from None
        finally:
            client.close()

    @staticmethod
    def _label(client: bigquery.Client, table_id: str, fingerprint: str) -> None:
        stored = client.get_table(table_id)
        if stored.labels.get(FINGERPRINT_LABEL, "") != fingerprint:
            stored.labels = {FINGERPRINT_LABEL: fingerprint}
            client.update_table(stored, ["labels"])

    def query_batches(self, sql: str) -> pa.RecordBatchReader:
        client = self.client()
        try:
            # REST pages, no BigQuery Storage API client: reads here are one window of one table.
            job = client.query(sql)
            pages = job.result(page_size=BATCH_ROWS).to_arrow_iterable(bqstorage_client=None)
            first = next(pages, None)
            if first is None:  # no page at all: the (empty) result still has its schema
                return job.to_arrow(create_bqstorage_client=False).to_reader()
        except google_errors.GoogleAPICallError as exc:
            client.close()
            raise WarehouseError(f"the BigQuery query failed: {exc.message}") from None

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                yield first
                yield from pages
            finally:
                client.close()

        return pa.RecordBatchReader.from_batches(first.schema, batches())

    def _ensure_table(
        self, client: bigquery.Client, table: LakeTable, wanted: list[bigquery.SchemaField]
    ) -> list[str]:
        """Create the dataset and table from the contract, or add the columns the contract gained."""
        settings = self.settings()
        dataset = bigquery.Dataset(f"{settings.bigquery_project}.{settings.bigquery_dataset}")
        dataset.location = settings.bigquery_location
        client.create_dataset(dataset, exists_ok=True)
        try:
            existing = client.get_table(self.table_id(table))
        except google_errors.NotFound:
            created = bigquery.Table(self.table_id(table), schema=wanted)
            created.description = table.description
            if table.partition_column:
                created.time_partitioning = bigquery.TimePartitioning(
                    type_=bigquery.TimePartitioningType.DAY, field=table.partition_column
                )
            if table.cluster_by:
                created.clustering_fields = list(table.cluster_by)
            client.create_table(created, exists_ok=True)
            return []
        added = columns_to_add(
            table, {f.name: _type_name(f) for f in existing.schema}, {f.name: _type_name(f) for f in wanted}
        )
        # DDL rather than update_table: one statement, NULLABLE by definition, and the emulator applies it.
        types = {f.name: _sql_type(f) for f in wanted}
        for column in added:
            client.query(
                f"ALTER TABLE `{self.table_id(table)}` ADD COLUMN IF NOT EXISTS {column} {types[column]}"
            ).result()
        return added

    def _load(
        self,
        client: bigquery.Client,
        table: LakeTable,
        fields: list[bigquery.SchemaField],
        stream: Conformed,
        staging: str,
        window: Window | None,
    ) -> tuple[bigquery.LoadJob, int]:
        """Rows into a fresh staging table as Parquet; a failure leaves the target untouched."""
        created = bigquery.Table(staging, schema=fields)
        created.expires = dt.datetime.now(dt.UTC) + STAGING_LIFETIME
        client.create_table(created)
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            schema=fields,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
        )
        with tempfile.TemporaryDirectory(prefix="medallion-bigquery-") as folder:
            parquet = Path(folder) / f"{table.name}.parquet"
            try:
                with pq.ParquetWriter(parquet, stream.reader.schema) as writer:
                    for batch in stream.reader:  # a row group each: write_batch buffers up to 1M rows
                        writer.write_table(pa.Table.from_batches([batch]))
            except (LakeError, WarehouseError) as exc:  # a row gold cannot give or the contract refuses
                raise WarehouseError(
                    f"warehouse/{table.name} ({describe(window)}): {exc}; the table is unchanged"
                ) from None
            with parquet.open("rb") as file:
                # size=None: a resumable upload, which retries a dropped connection (and the emulator takes).
                job = client.load_table_from_file(file, staging, job_config=config, size=None)
                try:
                    job.result()
                except google_errors.GoogleAPICallError as exc:
                    raise WarehouseError(
                        f"loading {stream.rows} row(s) of warehouse/{table.name} ({describe(window)}) into "
                        f"staging failed in job {job.job_id}, the table is unchanged: {exc.message}"
                    ) from None
            return job, parquet.stat().st_size

    @staticmethod
    def _merge_sql(table: LakeTable, target: str, staging: str, window: Window | None) -> str:
        names = ", ".join(c.name for c in table.columns)
        return (
            f"MERGE `{target}` AS t USING `{staging}` AS s ON FALSE\n"
            f"WHEN NOT MATCHED BY SOURCE AND {window_predicate(window, 't')} THEN DELETE\n"
            f"WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({names})"
        )
