"""The Olist source tables, declared as data.

A `SourceTable` says what the Olist source table is (columns, types, primary key, watermark) and
how it looks as a Kaggle CSV file. The generator, the CSV loader, the source database DDL, the
replay of changes and the lake tables of every layer are all built from these specs: adding a
table is adding one spec to OLIST_TABLES.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from medallion_assets.specs.columns import (
    ID_PATTERN,
    ORDER_STATUSES,
    PAYMENT_TYPES,
    Column,
    _amount,
    _city,
    _count,
    _id,
    _place,
    _state,
)


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
    def landed_columns(self) -> tuple[str, ...]:
        """The columns bronze reads from the source: the table's, then its creation and change times."""
        return (*[c.name for c in self.all_columns], "created_at", "updated_at")

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema(
            [pa.field(c.name, c.type_names.arrow, nullable=not c.required) for c in self.all_columns]
        )

    def column(self, name: str) -> Column:
        return next(c for c in self.all_columns if c.name == name)


OLIST_TABLES: tuple[SourceTable, ...] = (
    SourceTable(
        name="customers",
        csv_file="olist_customers_dataset.csv",
        columns=(
            _id("customer_id"),
            _id("customer_unique_id"),
            *_place("customer"),
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
            *_place("seller"),
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
