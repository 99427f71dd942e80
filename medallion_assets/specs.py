"""Every table of the platform declared as data, in one place.

A `SourceTable` says what the Olist source table is (columns, types, primary key, watermark) and
how it looks as a Kaggle CSV file. The generator, the CSV loader, the source database DDL, the
replay of changes (and, in later layers, the assets and checks) are all built from these specs:
adding a table is adding one spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

ColumnType = Literal["string", "int", "money", "float", "timestamp"]
# How the original Kaggle files quote a text value: most quote it when it starts with a digit (so
# an id column is quoted in one row and bare in the next) or has to be (comma, quote, newline);
# the review file quotes its ids always and its free text only when it has to.
Quoting = Literal["leading_digit", "always", "needed"]

ARROW_TYPES: dict[ColumnType, pa.DataType] = {
    "string": pa.string(),
    "int": pa.int32(),
    "money": pa.decimal128(12, 2),
    "float": pa.float64(),
    # Olist times are Brazil local time without a zone: timestamp without time zone.
    "timestamp": pa.timestamp("us"),
}
POSTGRES_TYPES: dict[ColumnType, str] = {
    "string": "text",
    "int": "integer",
    "money": "numeric(12,2)",
    "float": "double precision",
    "timestamp": "timestamp without time zone",
}
KAGGLE_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType = "string"
    required: bool = False
    quoting: Quoting = "leading_digit"

    @property
    def arrow_type(self) -> pa.DataType:
        return ARROW_TYPES[self.type]

    @property
    def postgres_type(self) -> str:
        return POSTGRES_TYPES[self.type]


def _id(name: str) -> Column:
    return Column(name, "string", required=True)


def _zip(name: str) -> Column:
    # Zip prefixes are 5-character strings with leading zeros ("01037"), never integers.
    return Column(name, "string")


@dataclass(frozen=True)
class SourceTable:
    name: str
    csv_file: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    # A table without a natural key gets a surrogate key column numbered by file position
    # (1 = first data row); it is not a column of the CSV file.
    row_number_key: str | None = None
    watermark_column: str = "updated_at"
    # Kaggle quirks of this file that the generator reproduces.
    csv_line_terminator: str = "\n"
    csv_bom: bool = False
    csv_quoted_header: bool = True

    @property
    def csv_columns(self) -> tuple[Column, ...]:
        return self.columns

    @property
    def key_columns(self) -> tuple[Column, ...]:
        by_name = {c.name: c for c in self.all_columns}
        return tuple(by_name[k] for k in self.primary_key)

    @property
    def all_columns(self) -> tuple[Column, ...]:
        """The table's columns as loaded: the CSV columns, plus the surrogate row key if any."""
        if self.row_number_key is None:
            return self.columns
        return (Column(self.row_number_key, "int", required=True), *self.columns)

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.arrow_type, nullable=not c.required) for c in self.all_columns])

    def column(self, name: str) -> Column:
        return next(c for c in self.all_columns if c.name == name)


OLIST_TABLES: tuple[SourceTable, ...] = (
    SourceTable(
        name="customers",
        csv_file="olist_customers_dataset.csv",
        columns=(
            _id("customer_id"),
            _id("customer_unique_id"),
            _zip("customer_zip_code_prefix"),
            Column("customer_city"),
            Column("customer_state"),
        ),
        primary_key=("customer_id",),
    ),
    SourceTable(
        name="geolocation",
        csv_file="olist_geolocation_dataset.csv",
        columns=(
            _zip("geolocation_zip_code_prefix"),
            Column("geolocation_lat", "float"),
            Column("geolocation_lng", "float"),
            Column("geolocation_city"),
            Column("geolocation_state"),
        ),
        # Olist geolocation has many rows per zip prefix, some exactly alike: no natural key.
        primary_key=("geolocation_id",),
        row_number_key="geolocation_id",
    ),
    SourceTable(
        name="orders",
        csv_file="olist_orders_dataset.csv",
        columns=(
            _id("order_id"),
            _id("customer_id"),
            Column("order_status", required=True),
            Column("order_purchase_timestamp", "timestamp", required=True),
            Column("order_approved_at", "timestamp"),
            Column("order_delivered_carrier_date", "timestamp"),
            Column("order_delivered_customer_date", "timestamp"),
            Column("order_estimated_delivery_date", "timestamp"),
        ),
        primary_key=("order_id",),
    ),
    SourceTable(
        name="order_items",
        csv_file="olist_order_items_dataset.csv",
        columns=(
            _id("order_id"),
            Column("order_item_id", "int", required=True),
            _id("product_id"),
            _id("seller_id"),
            Column("shipping_limit_date", "timestamp"),
            Column("price", "money"),
            Column("freight_value", "money"),
        ),
        primary_key=("order_id", "order_item_id"),
    ),
    SourceTable(
        name="order_payments",
        csv_file="olist_order_payments_dataset.csv",
        columns=(
            _id("order_id"),
            Column("payment_sequential", "int", required=True),
            Column("payment_type"),
            Column("payment_installments", "int"),
            Column("payment_value", "money"),
        ),
        primary_key=("order_id", "payment_sequential"),
    ),
    SourceTable(
        name="order_reviews",
        csv_file="olist_order_reviews_dataset.csv",
        columns=(
            # The review file quotes every id; Olist reuses some review_ids across orders.
            Column("review_id", required=True, quoting="always"),
            Column("order_id", required=True, quoting="always"),
            Column("review_score", "int"),
            Column("review_comment_title", quoting="needed"),
            Column("review_comment_message", quoting="needed"),
            Column("review_creation_date", "timestamp", required=True),
            Column("review_answer_timestamp", "timestamp"),
        ),
        primary_key=("review_id", "order_id"),
        csv_line_terminator="\r\n",
    ),
    SourceTable(
        name="products",
        csv_file="olist_products_dataset.csv",
        columns=(
            _id("product_id"),
            Column("product_category_name"),
            # The original misspellings are part of the format.
            Column("product_name_lenght", "int"),
            Column("product_description_lenght", "int"),
            Column("product_photos_qty", "int"),
            Column("product_weight_g", "int"),
            Column("product_length_cm", "int"),
            Column("product_height_cm", "int"),
            Column("product_width_cm", "int"),
        ),
        primary_key=("product_id",),
    ),
    SourceTable(
        name="sellers",
        csv_file="olist_sellers_dataset.csv",
        columns=(
            _id("seller_id"),
            _zip("seller_zip_code_prefix"),
            Column("seller_city"),
            Column("seller_state"),
        ),
        primary_key=("seller_id",),
    ),
    SourceTable(
        name="product_category_name_translation",
        csv_file="product_category_name_translation.csv",
        columns=(
            Column("product_category_name", required=True),
            Column("product_category_name_english"),
        ),
        primary_key=("product_category_name",),
        csv_line_terminator="\r\n",
        csv_bom=True,
        csv_quoted_header=False,
    ),
)

TABLES_BY_NAME: dict[str, SourceTable] = {t.name: t for t in OLIST_TABLES}


# ------------------------------------------------------------------------------------ lake tables

Layer = Literal["bronze", "silver", "gold"]
# How the Delta IO manager writes a materialization (see resources/delta_lake.py):
# - replace_partition: the partition window (or the whole table, unpartitioned) is replaced;
# - insert_new: rows whose key is not in the window yet are appended, nothing else changes;
# - merge_latest: keyed upsert where a row only replaces an older version (by version_column).
WriteMode = Literal["replace_partition", "insert_new", "merge_latest"]

# Lineage columns every bronze row carries.
INGESTED_AT = "_ingested_at"
SOURCE = "_source"
RUN_ID = "_run_id"
CHANGE_TS = "_change_ts"
CHANGE_DATE = "_change_date"


@dataclass(frozen=True)
class LakeTable:
    layer: Layer
    name: str
    primary_key: tuple[str, ...]
    partition_column: str | None
    write_mode: WriteMode = "replace_partition"
    version_column: str | None = None
    source: SourceTable | None = None
    description: str = ""

    @property
    def asset_path(self) -> list[str]:
        return [self.layer, self.name]


def bronze_table(source: SourceTable) -> LakeTable:
    """Bronze keeps every version of every source row: the key is the row's key plus its change time."""
    return LakeTable(
        layer="bronze",
        name=source.name,
        primary_key=(*source.primary_key, CHANGE_TS),
        partition_column=CHANGE_DATE,
        write_mode="insert_new",
        source=source,
        description=(
            f"Every change of olist.{source.name} as the source showed it, append-only, "
            f"partitioned by the date of its updated_at."
        ),
    )


BRONZE_TABLES: tuple[LakeTable, ...] = tuple(bronze_table(t) for t in OLIST_TABLES)
