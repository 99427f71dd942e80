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
# The text a value of each type must be before it is cast (CSV reader, silver), so a cast never
# fails half-way or rounds silently; and how each type is named in error messages.
TEXT_FORMS: dict[ColumnType, str] = {
    "int": r"^[+-]?\d{1,9}$",
    "money": r"^[+-]?\d{1,10}(\.\d{1,2})?$",
    "float": r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$",
}
TYPE_DESCRIPTIONS: dict[ColumnType, str] = {
    "int": "an integer",
    "money": "an amount with at most 2 decimals",
    "float": "a number",
    "timestamp": "a timestamp YYYY-MM-DD HH:MM:SS",
}


# How silver cleans a text value before checking it (every text is trimmed, "" becomes null).
Normalize = Literal["city", "upper", "lower", "zip"]
ID_PATTERN = r"^[0-9a-f]{32}$"
ORDER_STATUSES = (
    "created",
    "approved",
    "invoiced",
    "processing",
    "shipped",
    "delivered",
    "canceled",
    "unavailable",
)
PAYMENT_TYPES = ("credit_card", "boleto", "voucher", "debit_card", "not_defined")
BRAZIL_STATES = (
    "AC",
    "AL",
    "AM",
    "AP",
    "BA",
    "CE",
    "DF",
    "ES",
    "GO",
    "MA",
    "MG",
    "MS",
    "MT",
    "PA",
    "PB",
    "PE",
    "PI",
    "PR",
    "RJ",
    "RN",
    "RO",
    "RR",
    "RS",
    "SC",
    "SE",
    "SP",
    "TO",
)


@dataclass(frozen=True)
class Column:
    """A column: its type, and the contract silver holds it to (quarantining the rows that break it)."""

    name: str
    type: ColumnType = "string"
    required: bool = False
    quoting: Quoting = "leading_digit"
    pattern: str | None = None
    allowed: tuple[str, ...] | None = None
    min_value: float | None = None
    max_value: float | None = None
    max_length: int | None = None
    normalize: Normalize | None = None

    @property
    def arrow_type(self) -> pa.DataType:
        return ARROW_TYPES[self.type]

    @property
    def postgres_type(self) -> str:
        return POSTGRES_TYPES[self.type]


def _id(name: str) -> Column:
    return Column(name, "string", required=True, pattern=ID_PATTERN)


def _zip(name: str) -> Column:
    # Zip prefixes are 5-character strings with leading zeros ("01037"), never integers.
    return Column(name, "string", pattern=r"^\d{5}$", normalize="zip")


def _city(name: str) -> Column:
    return Column(name, max_length=100, normalize="city")


def _state(name: str) -> Column:
    return Column(name, allowed=BRAZIL_STATES, normalize="upper")


def _amount(name: str) -> Column:
    return Column(name, "money", min_value=0)


def _count(name: str, maximum: float | None = None) -> Column:
    return Column(name, "int", min_value=0, max_value=maximum)


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
    # (column, parent table) pairs: silver flags rows whose parent is not known (yet), never drops them.
    parents: tuple[tuple[str, str], ...] = ()

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
            _city("customer_city"),
            _state("customer_state"),
        ),
        primary_key=("customer_id",),
    ),
    SourceTable(
        name="geolocation",
        csv_file="olist_geolocation_dataset.csv",
        columns=(
            Column("geolocation_zip_code_prefix", required=True, pattern=r"^\d{5}$", normalize="zip"),
            # Brazil lies within these bounds; Olist has a few points elsewhere (quarantined).
            Column("geolocation_lat", "float", required=True, min_value=-34.0, max_value=5.5),
            Column("geolocation_lng", "float", required=True, min_value=-74.0, max_value=-28.5),
            _city("geolocation_city"),
            _state("geolocation_state"),
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
            Column("order_status", required=True, allowed=ORDER_STATUSES, normalize="lower"),
            Column("order_purchase_timestamp", "timestamp", required=True),
            Column("order_approved_at", "timestamp"),
            Column("order_delivered_carrier_date", "timestamp"),
            Column("order_delivered_customer_date", "timestamp"),
            Column("order_estimated_delivery_date", "timestamp"),
        ),
        primary_key=("order_id",),
        parents=(("customer_id", "customers"),),
    ),
    SourceTable(
        name="order_items",
        csv_file="olist_order_items_dataset.csv",
        columns=(
            _id("order_id"),
            Column("order_item_id", "int", required=True, min_value=1),
            _id("product_id"),
            _id("seller_id"),
            Column("shipping_limit_date", "timestamp"),
            _amount("price"),
            _amount("freight_value"),
        ),
        primary_key=("order_id", "order_item_id"),
        parents=(("order_id", "orders"), ("product_id", "products"), ("seller_id", "sellers")),
    ),
    SourceTable(
        name="order_payments",
        csv_file="olist_order_payments_dataset.csv",
        columns=(
            _id("order_id"),
            Column("payment_sequential", "int", required=True, min_value=1),
            Column("payment_type", allowed=PAYMENT_TYPES, normalize="lower"),
            _count("payment_installments", 24),
            _amount("payment_value"),
        ),
        primary_key=("order_id", "payment_sequential"),
        parents=(("order_id", "orders"),),
    ),
    SourceTable(
        name="order_reviews",
        csv_file="olist_order_reviews_dataset.csv",
        columns=(
            # The review file quotes every id; Olist reuses some review_ids across orders.
            Column("review_id", required=True, quoting="always", pattern=ID_PATTERN),
            Column("order_id", required=True, quoting="always", pattern=ID_PATTERN),
            Column("review_score", "int", min_value=1, max_value=5),
            Column("review_comment_title", quoting="needed", max_length=200),
            Column("review_comment_message", quoting="needed", max_length=5000),
            Column("review_creation_date", "timestamp", required=True),
            Column("review_answer_timestamp", "timestamp"),
        ),
        primary_key=("review_id", "order_id"),
        csv_line_terminator="\r\n",
        parents=(("order_id", "orders"),),
    ),
    SourceTable(
        name="products",
        csv_file="olist_products_dataset.csv",
        columns=(
            _id("product_id"),
            Column("product_category_name", max_length=100, pattern=r"^[a-z0-9_]+$"),
            # The original misspellings are part of the format.
            _count("product_name_lenght"),
            _count("product_description_lenght"),
            _count("product_photos_qty"),
            _count("product_weight_g"),
            _count("product_length_cm"),
            _count("product_height_cm"),
            _count("product_width_cm"),
        ),
        primary_key=("product_id",),
    ),
    SourceTable(
        name="sellers",
        csv_file="olist_sellers_dataset.csv",
        columns=(
            _id("seller_id"),
            _zip("seller_zip_code_prefix"),
            _city("seller_city"),
            _state("seller_state"),
        ),
        primary_key=("seller_id",),
    ),
    SourceTable(
        name="product_category_name_translation",
        csv_file="product_category_name_translation.csv",
        columns=(
            Column("product_category_name", required=True, max_length=100, pattern=r"^[a-z0-9_]+$"),
            Column("product_category_name_english", max_length=100),
        ),
        primary_key=("product_category_name",),
        csv_line_terminator="\r\n",
        csv_bom=True,
        csv_quoted_header=False,
    ),
)

TABLES_BY_NAME: dict[str, SourceTable] = {t.name: t for t in OLIST_TABLES}


# ------------------------------------------------------------------------------------ lake tables

Layer = Literal["bronze", "silver", "gold", "quarantine"]
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


def silver_table(source: SourceTable) -> LakeTable:
    """Silver holds the current state: one row per key, a change applies only if newer."""
    # Geolocation has many rows per zip prefix: silver collapses them to one row per prefix.
    key = ("geolocation_zip_code_prefix",) if source.name == "geolocation" else source.primary_key
    return LakeTable(
        layer="silver",
        name=source.name,
        primary_key=key,
        partition_column=CHANGE_DATE,
        write_mode="merge_latest",
        version_column=CHANGE_TS,
        source=source,
        description=(
            f"Current state of olist.{source.name}: typed, normalised, deduplicated, contract-checked; "
            "each day's bronze changes merged latest-wins."
        ),
    )


def quarantine_table(source: SourceTable) -> LakeTable:
    return LakeTable(
        layer="quarantine",
        name=source.name,
        primary_key=(),
        partition_column=CHANGE_DATE,
        source=source,
        description=f"Bronze rows of {source.name} that broke the silver contract, with the rule and reason.",
    )


SILVER_TABLES: tuple[LakeTable, ...] = tuple(silver_table(t) for t in OLIST_TABLES)
QUARANTINE_TABLES: tuple[LakeTable, ...] = tuple(quarantine_table(t) for t in OLIST_TABLES)


# The source's own audit trail of attribute changes (the Olist replay keeps one in
# olist_replay.attribute_changes). Bronze keeps it like any source table; gold's SCD2 dimensions
# read history from it, so a build from scratch sees the same versions as one that watched them.
ATTRIBUTE_CHANGES = LakeTable(
    layer="bronze",
    name="attribute_changes",
    primary_key=("table_name", "row_key", "column_name", CHANGE_TS),
    partition_column=CHANGE_DATE,
    write_mode="insert_new",
    description=(
        "The source's audit trail of attribute changes (table, row key, column, old and new value, "
        "changed_at), append-only, partitioned by the date of the change."
    ),
)


# ------------------------------------------------------------------------------------ gold tables

ORDER_DATE = "order_date"


def gold_table(
    name: str, primary_key: tuple[str, ...], description: str, by_order_date: bool = False
) -> LakeTable:
    """Gold tables are rebuilt whole (dimensions, features) or per order-date partition (facts, reports)."""
    return LakeTable(
        layer="gold",
        name=name,
        primary_key=primary_key,
        partition_column=ORDER_DATE if by_order_date else None,
        description=description,
    )


GOLD_DIMENSIONS: dict[str, LakeTable] = {
    t.name: t
    for t in (
        gold_table(
            "dim_customer",
            ("customer_key",),
            "SCD2 on customer_unique_id: one version per address a person had, from the customer_ids "
            "they used (by purchase time) and the source's attribute changes. Key -1: unknown customer.",
        ),
        gold_table(
            "dim_product",
            ("product_key",),
            "SCD2 on product_id: category, weight and size as they were over time; product_category is "
            "the English name (current translation), else the Portuguese name, else 'unknown'.",
        ),
        gold_table("dim_seller", ("seller_key",), "SCD2 on seller_id: the seller's address over time."),
        gold_table(
            "dim_location",
            ("zip_code_prefix",),
            "One row per zip prefix: median position, usual city and state.",
        ),
        gold_table(
            "dim_date", ("date_key",), "Calendar days over the whole range, with Brazilian national holidays."
        ),
    )
}
GOLD_FACTS: dict[str, LakeTable] = {
    t.name: t
    for t in (
        gold_table(
            "fact_orders",
            ("order_id",),
            "One row per order (all statuses) with the dimension versions valid at purchase time.",
            by_order_date=True,
        ),
        gold_table(
            "fact_order_items",
            ("order_id", "order_item_id"),
            "One row per order item with the product, seller and customer versions valid at purchase time.",
            by_order_date=True,
        ),
    )
}
GOLD_REPORTS: dict[str, LakeTable] = {
    t.name: t
    for t in (
        gold_table(
            "daily_order_report",
            (ORDER_DATE,),
            "Per order date over revenue orders: orders, total revenue, average order revenue.",
            by_order_date=True,
        ),
        gold_table(
            "daily_category_report",
            (ORDER_DATE, "product_category"),
            "Per order date and product category over the items of revenue orders: items, orders, "
            "revenue, average and exact median item revenue.",
            by_order_date=True,
        ),
        gold_table(
            "customer_rfm",
            ("customer_unique_id",),
            "Recency, frequency and monetary value per known customer over revenue orders, "
            "quintile scores 1-5 (5 best) and a segment.",
        ),
    )
}
