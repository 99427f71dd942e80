"""Every table of the platform declared as data, in one place.

A `SourceTable` says what the Olist source table is (columns, types, primary key, watermark) and
how it looks as a Kaggle CSV file. The generator, the CSV loader, the source database DDL, the
replay of changes (and, in later layers, the assets and checks) are all built from these specs:
adding a table is adding one spec.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

# "total" is a sum of money (DECIMAL(18,2)); "long" a 64-bit key; both appear in gold only.
ColumnType = Literal["string", "int", "long", "money", "total", "float", "timestamp", "date", "bool"]
# How the original Kaggle files quote a text value: most quote it when it starts with a digit (so
# an id column is quoted in one row and bare in the next) or has to be (comma, quote, newline);
# the review file quotes its ids always and its free text only when it has to.
Quoting = Literal["leading_digit", "always", "needed"]

ARROW_TYPES: dict[ColumnType, pa.DataType] = {
    "string": pa.string(),
    "int": pa.int32(),
    "long": pa.int64(),
    "money": pa.decimal128(12, 2),
    "total": pa.decimal128(18, 2),
    "float": pa.float64(),
    # Olist times are Brazil local time without a zone: timestamp without time zone.
    "timestamp": pa.timestamp("us"),
    "date": pa.date32(),
    "bool": pa.bool_(),
}
POSTGRES_TYPES: dict[ColumnType, str] = {
    "string": "text",
    "int": "integer",
    "long": "bigint",
    "money": "numeric(12,2)",
    "total": "numeric(18,2)",
    "float": "double precision",
    "timestamp": "timestamp without time zone",
    "date": "date",
    "bool": "boolean",
}
# Spark SQL's names of the same types (DataType.simpleString()): silver casts to them, the contract
# compares a frame's schema with them.
SPARK_TYPES: dict[ColumnType, str] = {
    "string": "string",
    "int": "int",
    "long": "bigint",
    "money": "decimal(12,2)",
    "total": "decimal(18,2)",
    "float": "double",
    "timestamp": "timestamp_ntz",
    "date": "date",
    "bool": "boolean",
}
# The warehouse types of gold's columns: exact decimals for money, zone-less times stay zone-less.
DUCKDB_TYPES: dict[ColumnType, str] = {
    "string": "VARCHAR",
    "int": "INTEGER",
    "long": "BIGINT",
    "money": "DECIMAL(12,2)",
    "total": "DECIMAL(18,2)",
    "float": "DOUBLE",
    "timestamp": "TIMESTAMP",
    "date": "DATE",
    "bool": "BOOLEAN",
}
BIGQUERY_TYPES: dict[ColumnType, str] = {
    "string": "STRING",
    "int": "INT64",
    "long": "INT64",
    "money": "NUMERIC",
    "total": "NUMERIC",
    "float": "FLOAT64",
    "timestamp": "DATETIME",
    "date": "DATE",
    "bool": "BOOL",
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


LINEAGE = (INGESTED_AT, SOURCE, RUN_ID, CHANGE_TS, CHANGE_DATE)
# Materialization metadata of bronze: the source's present when it was read.
SOURCE_TIME = "source_time"
# A change-date partition first landed within this long after its day is complete (the sensor
# lands a day within a poll, the daily catch-up the next night).
LANDED_LIVE = dt.timedelta(days=2)
# Columns silver adds to some tables (see silver/assets.py).
GEO_ROWS = "geolocation_rows"
ENGLISH_CATEGORY = "product_category_name_english"
MISSING_PARENTS = "_missing_parents"

Severity = Literal["ERROR", "WARN"]


# ------------------------------------------------------------------------------- quality declarations
# Every lake table declares what its asset checks prove (quality/checks.py builds them): key and
# not-null checks from primary_key and the required columns, the contract from `columns`, and the
# row-count drift, references and business rules below.


@dataclass(frozen=True)
class Drift:
    """A partition's row count against the median of the same weekday's previous materialized
    partitions. Bands are ratios of that median: outside `warn_band` warns (the band is never
    narrower than 3 x sqrt(median), a count's own noise), outside `error_band` is an error (never
    blocking: a quiet day is not bad data). Not judged while there are fewer than
    `min_history` such partitions or the median is below `min_expected` rows (small counts are noise),
    nor while the day is in progress: when it ends after the source time that `clock` (a bronze table,
    default this one) recorded at its latest materialization.

    `landed_within` (change-date tables): a day's count is complete only if the day was first
    landed within this long after it ended. A source holds each row's latest version only, so a
    history landed at once finds a row only on the day of its latest change: older days hold fewer
    rows (their orders changed again since), the last ones all their in-flight rows. Such days are
    neither judged nor used as history; a day landed live is compared only with days landed live."""

    clock: str | None = None
    landed_within: dt.timedelta | None = None
    weeks: int = 6
    min_history: int = 3
    min_expected: int = 20
    warn_band: tuple[float, float] = (0.5, 2.0)
    error_band: tuple[float, float] = (0.2, 10.0)


@dataclass(frozen=True)
class Reference:
    """`column` points to `key` of the lake table `table` ("layer/name"). A value found nowhere is an
    orphan (an error) unless `orphans_allowed` (silver keeps rows whose parent has not arrived yet);
    `unknown` is the value of the unknown member. Unknown members and allowed orphans together may
    be at most `max_unknown_share` of the rows (else a warning). `same_window`: the referenced rows
    share this table's partition window (an item's order has the item's order date)."""

    column: str
    table: str
    key: str
    unknown: int | None = -1
    max_unknown_share: float = 0.05
    orphans_allowed: bool = False
    same_window: bool = False

    @property
    def check_name(self) -> str:
        return f"references_{self.table.split('/')[-1]}_{self.column}"


@dataclass(frozen=True)
class Rule:
    """A business rule: Spark SQL selecting the rows that break it from the view `rows` (the checked
    table, restricted to the materialized window); `reads` are other lake tables ("layer/name")
    visible as views under their table name, restricted to the same window when partitioned alike."""

    name: str
    description: str
    violations: str
    reads: tuple[str, ...] = ()
    severity: Severity = "ERROR"
    blocking: bool = True


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
    # The contract: columns, types and value rules (silver and gold; bronze keeps raw source rows).
    columns: tuple[Column, ...] = ()
    # Columns that must never be null besides the key and the contract's required columns.
    required: tuple[str, ...] = ()
    drift: Drift | None = None
    references: tuple[Reference, ...] = ()
    rules: tuple[Rule, ...] = ()
    # Warehouse clustering (BigQuery, at most 4): the columns queries filter or join the table on.
    cluster_by: tuple[str, ...] = ()

    @property
    def asset_path(self) -> list[str]:
        return [self.layer, self.name]

    @property
    def pool(self) -> str:
        """The Dagster concurrency pool of the step writing this table: with a pool limit of 1 (the
        PostgreSQL instance's dagster.yaml), two runs never write the same table at once."""
        return "/".join(self.asset_path)

    @property
    def not_null_columns(self) -> tuple[str, ...]:
        names = [*self.primary_key, *self.required, *(c.name for c in self.columns if c.required)]
        return tuple(dict.fromkeys(names))


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
        required=LINEAGE,
        drift=Drift(landed_within=LANDED_LIVE),
    )


BRONZE_TABLES: tuple[LakeTable, ...] = tuple(bronze_table(t) for t in OLIST_TABLES)


def silver_columns(source: SourceTable) -> tuple[Column, ...]:
    """The contract columns of a silver table: its source columns, reshaped where silver reshapes."""
    columns = [c for c in source.all_columns if c.name != "geolocation_id"]
    if source.name == "geolocation":
        columns.append(Column(GEO_ROWS, "int", required=True, min_value=1))
    if source.name == "products":
        columns.append(Column(ENGLISH_CATEGORY, max_length=100))
    return (
        *columns,
        Column("created_at", "timestamp", required=True),
        Column("updated_at", "timestamp", required=True),
    )


def silver_table(source: SourceTable) -> LakeTable:
    """Silver holds the current state: one row per key, a change applies only if newer.

    No row-count drift: a silver partition holds the rows whose latest change fell on that day, so
    its count falls as its rows change again; bronze measures what landed each day."""
    # Geolocation has many rows per zip prefix: silver collapses them to one row per prefix.
    key = ("geolocation_zip_code_prefix",) if source.name == "geolocation" else source.primary_key
    parents = tuple(
        # Kept and flagged in _missing_parents while the parent has not arrived: a share, not an error.
        Reference(
            column,
            f"silver/{parent}",
            TABLES_BY_NAME[parent].primary_key[0],
            unknown=None,
            max_unknown_share=0.01,
            orphans_allowed=True,
        )
        for column, parent in source.parents
    )
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
        columns=silver_columns(source),
        required=(CHANGE_TS, CHANGE_DATE, RUN_ID),
        references=parents,
    )


def quarantine_table(source: SourceTable) -> LakeTable:
    return LakeTable(
        layer="quarantine",
        name=source.name,
        primary_key=(),
        partition_column=CHANGE_DATE,
        source=source,
        description=f"Bronze rows of {source.name} that broke the silver contract, with the rule and reason.",
        # Every quarantined row says which rule it broke, why, and what the bronze row was.
        required=("rule", "reason", "_raw", CHANGE_TS, CHANGE_DATE, RUN_ID),
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
    required=LINEAGE,
    drift=Drift(landed_within=LANDED_LIVE),
)


# ------------------------------------------------------------------------------------ gold tables

ORDER_DATE = "order_date"


def gold_table(
    name: str,
    primary_key: tuple[str, ...],
    description: str,
    columns: tuple[Column, ...],
    by_order_date: bool = False,
    **quality,
) -> LakeTable:
    """Gold tables are rebuilt whole (dimensions, features) or per order-date partition (facts, reports)."""
    return LakeTable(
        layer="gold",
        name=name,
        primary_key=primary_key,
        partition_column=ORDER_DATE if by_order_date else None,
        description=description,
        columns=columns,
        **quality,
    )


def _key(name: str) -> Column:
    return Column(name, "long", required=True)


def _total(name: str, required: bool = False) -> Column:
    return Column(name, "total", required=required, min_value=0)


def _flag(name: str, required: bool = False) -> Column:
    return Column(name, "bool", required=required)


def _member_id(name: str) -> Column:
    # Null only in the unknown member's row.
    return Column(name, pattern=ID_PATTERN)


def _versions() -> tuple[Column, ...]:
    return (
        Column("valid_from", "timestamp", required=True),
        Column("valid_to", "timestamp"),
        _flag("is_current", required=True),
    )


def _scd2_rules(key: str, member: str) -> tuple[Rule, ...]:
    """SCD2 invariants: per member, versions neither overlap nor leave gaps, and exactly the last one
    is current (open-ended); one unknown member."""
    return (
        Rule(
            "versions_contiguous",
            "Per member, each version ends where the next begins; only the last is open and current.",
            f"""SELECT {member}, {key}, valid_from, valid_to, is_current, next_from FROM (
                  SELECT *, LEAD(valid_from) OVER (PARTITION BY {member} ORDER BY valid_from) AS next_from
                  FROM rows WHERE {key} <> -1)
                WHERE (next_from IS NULL AND (valid_to IS NOT NULL OR NOT is_current))
                   OR (next_from IS NOT NULL AND (valid_to IS DISTINCT FROM next_from OR is_current))""",
        ),
        Rule(
            "one_unknown_member",
            "Exactly one row with key -1, valid over all time, so a fact always finds a version.",
            f"""SELECT COUNT(*) AS unknown_members FROM rows WHERE {key} = -1
                HAVING COUNT(*) <> 1 OR MAX(valid_to) IS NOT NULL""",
        ),
    )


def _place(prefix: str) -> tuple[Column, ...]:
    return (_zip(f"{prefix}_zip_code_prefix"), _city(f"{prefix}_city"), _state(f"{prefix}_state"))


MAX_AVERAGE_REVENUE = 100_000  # R$: an average above this is a unit or duplication error, not a sale
# Payments may differ from price + freight (installment interest, vouchers): a day reconciles when
# the difference is within 5 % of its revenue or R$ 10.
PAYMENT_TOLERANCE, PAYMENT_TOLERANCE_BRL = 0.05, 10

GOLD_DIMENSIONS: dict[str, LakeTable] = {
    t.name: t
    for t in (
        gold_table(
            "dim_customer",
            ("customer_key",),
            "SCD2 on customer_unique_id: one version per address a person had, from the customer_ids "
            "they used (by purchase time) and the source's attribute changes. Key -1: unknown customer.",
            (_key("customer_key"), _member_id("customer_unique_id"), *_place("customer"), *_versions()),
            rules=_scd2_rules("customer_key", "customer_unique_id"),
            cluster_by=("customer_unique_id",),
        ),
        gold_table(
            "dim_product",
            ("product_key",),
            "SCD2 on product_id: category, weight and size as they were over time; product_category is "
            "the English name (current translation), else the Portuguese name, else 'unknown'.",
            (
                _key("product_key"),
                _member_id("product_id"),
                Column("product_category_name", max_length=100),
                *(_count(f"product_{m}") for m in ("weight_g", "length_cm", "height_cm", "width_cm")),
                *_versions(),
                Column("product_category", required=True, max_length=100),
            ),
            rules=_scd2_rules("product_key", "product_id"),
            cluster_by=("product_id",),
        ),
        gold_table(
            "dim_seller",
            ("seller_key",),
            "SCD2 on seller_id: the seller's address over time.",
            (_key("seller_key"), _member_id("seller_id"), *_place("seller"), *_versions()),
            rules=_scd2_rules("seller_key", "seller_id"),
            cluster_by=("seller_id",),
        ),
        gold_table(
            "dim_location",
            ("zip_code_prefix",),
            "One row per zip prefix: median position, usual city and state.",
            (
                Column("zip_code_prefix", required=True, pattern=r"^\d{5}$"),
                Column("latitude", "float", min_value=-34.0, max_value=5.5),
                Column("longitude", "float", min_value=-74.0, max_value=-28.5),
                Column("city", max_length=100),
                Column("state", allowed=BRAZIL_STATES),
                Column("source_rows", "int", required=True, min_value=1),
            ),
        ),
        gold_table(
            "dim_date",
            ("date_key",),
            "Calendar days over the whole range, with Brazilian national holidays.",
            (
                Column("date_key", "int", required=True, min_value=19000101, max_value=29991231),
                Column("date", "date", required=True),
                Column("year", "int", required=True),
                Column("quarter", "int", required=True, min_value=1, max_value=4),
                Column("month", "int", required=True, min_value=1, max_value=12),
                Column("month_name", required=True),
                Column("day_of_month", "int", required=True, min_value=1, max_value=31),
                Column("day_of_week", "int", required=True, min_value=1, max_value=7),
                Column("day_name", required=True),
                Column("iso_week", "int", required=True, min_value=1, max_value=53),
                _flag("is_weekend", required=True),
                _flag("is_holiday", required=True),
                Column("holiday_name"),
            ),
        ),
    )
}


def _to_dimension(column: str, dimension: str, key: str) -> Reference:
    return Reference(column, f"gold/{dimension}", key)


ORDER_DATE_COLUMNS = (
    Column(ORDER_DATE, "date", required=True),
    Column("order_date_key", "int", required=True),
)

GOLD_FACTS: dict[str, LakeTable] = {
    t.name: t
    for t in (
        gold_table(
            "fact_orders",
            ("order_id",),
            "One row per order (all statuses) with the dimension versions valid at purchase time.",
            (
                _id("order_id"),
                *ORDER_DATE_COLUMNS,
                _key("customer_key"),
                _id("customer_id"),
                _member_id("customer_unique_id"),
                Column("order_status", required=True, allowed=ORDER_STATUSES),
                Column("order_purchase_timestamp", "timestamp", required=True),
                *(
                    Column(f"order_{moment}", "timestamp")
                    for moment in (
                        "approved_at",
                        "delivered_carrier_date",
                        "delivered_customer_date",
                        "estimated_delivery_date",
                    )
                ),
                _count("item_count"),
                _total("item_value", required=True),
                _total("freight_value", required=True),
                _total("revenue"),
                _total("payment_total", required=True),
                _count("payment_count"),
                Column("latest_review_score", "int", min_value=1, max_value=5),
                Column("delivery_days", "int"),
                _flag("is_late"),
                _flag("is_revenue_order", required=True),
            ),
            by_order_date=True,
            drift=Drift(clock="bronze/orders"),
            references=(
                _to_dimension("customer_key", "dim_customer", "customer_key"),
                Reference("order_date_key", "gold/dim_date", "date_key", unknown=None),
            ),
            cluster_by=("order_status", "customer_key"),
            rules=(
                Rule(
                    "payments_reconcile_with_revenue",
                    f"Per order date, the payments of revenue orders equal their revenue within "
                    f"{PAYMENT_TOLERANCE:.0%} or R$ {PAYMENT_TOLERANCE_BRL} (interest and vouchers differ).",
                    f"""SELECT {ORDER_DATE}, SUM(revenue) AS revenue, SUM(payment_total) AS payments
                        FROM rows WHERE is_revenue_order GROUP BY {ORDER_DATE}
                        HAVING ABS(SUM(payment_total) - SUM(revenue))
                               > GREATEST({PAYMENT_TOLERANCE_BRL}, {PAYMENT_TOLERANCE} * SUM(revenue))""",
                    severity="WARN",
                    blocking=False,
                ),
            ),
        ),
        gold_table(
            "fact_order_items",
            ("order_id", "order_item_id"),
            "One row per order item with the product, seller and customer versions valid at purchase time.",
            (
                _id("order_id"),
                Column("order_item_id", "int", required=True, min_value=1),
                *ORDER_DATE_COLUMNS,
                _key("customer_key"),
                _key("product_key"),
                _key("seller_key"),
                _id("product_id"),
                _id("seller_id"),
                Column("product_category", required=True, max_length=100),
                Column("shipping_limit_date", "timestamp"),
                _amount("price"),
                _amount("freight_value"),
                _total("item_revenue"),
                _flag("is_revenue_order", required=True),
            ),
            by_order_date=True,
            drift=Drift(clock="bronze/orders"),
            references=(
                Reference("order_id", "gold/fact_orders", "order_id", unknown=None, same_window=True),
                _to_dimension("product_key", "dim_product", "product_key"),
                _to_dimension("seller_key", "dim_seller", "seller_key"),
                _to_dimension("customer_key", "dim_customer", "customer_key"),
            ),
            cluster_by=("product_category", "seller_key", "product_key"),
        ),
    )
}


def _average_below(column: str) -> Rule:
    return Rule(
        f"{column}_below_{MAX_AVERAGE_REVENUE}",
        f"{column} stays below R$ {MAX_AVERAGE_REVENUE:,}: more is a unit or duplication error.",
        f"SELECT * FROM rows WHERE {column} >= {MAX_AVERAGE_REVENUE}",
    )


GOLD_REPORTS: dict[str, LakeTable] = {
    t.name: t
    for t in (
        gold_table(
            "daily_order_report",
            (ORDER_DATE,),
            "Per order date over revenue orders: orders, total revenue, average order revenue.",
            (
                Column(ORDER_DATE, "date", required=True),
                Column("orders", "long", required=True, min_value=1),
                _total("total_revenue", required=True),
                _total("avg_order_revenue", required=True),
            ),
            by_order_date=True,
            rules=(
                _average_below("avg_order_revenue"),
                Rule(
                    "equals_fact_orders",
                    "Each day's orders and revenue equal the sums over fact_orders' revenue orders.",
                    f"""SELECT COALESCE(r.{ORDER_DATE}, f.{ORDER_DATE}) AS {ORDER_DATE},
                               r.orders, f.orders AS fact_orders, r.total_revenue, f.revenue AS fact_revenue
                        FROM rows r FULL JOIN (
                            SELECT {ORDER_DATE}, COUNT(*) AS orders, SUM(revenue) AS revenue
                            FROM fact_orders WHERE is_revenue_order GROUP BY {ORDER_DATE}) f
                          ON r.{ORDER_DATE} = f.{ORDER_DATE}
                        WHERE r.orders IS DISTINCT FROM f.orders
                           OR r.total_revenue IS DISTINCT FROM f.revenue""",
                    reads=("gold/fact_orders",),
                ),
            ),
        ),
        gold_table(
            "daily_category_report",
            (ORDER_DATE, "product_category"),
            "Per order date and product category over the items of revenue orders: items, orders, "
            "revenue, average and exact median item revenue.",
            (
                Column(ORDER_DATE, "date", required=True),
                Column("product_category", required=True, max_length=100),
                Column("items", "long", required=True, min_value=1),
                Column("orders", "long", required=True, min_value=1),
                _total("total_revenue", required=True),
                _total("avg_item_revenue", required=True),
                _total("median_item_revenue", required=True),
            ),
            by_order_date=True,
            rules=(_average_below("avg_item_revenue"),),
            cluster_by=("product_category",),
        ),
        gold_table(
            "customer_rfm",
            ("customer_unique_id",),
            "Recency, frequency and monetary value per known customer over revenue orders, "
            "quintile scores 1-5 (5 best) and a segment.",
            (
                _id("customer_unique_id"),
                Column("last_order_date", "date", required=True),
                Column("recency_days", "int", required=True, min_value=0),
                Column("frequency", "int", required=True, min_value=1),
                _total("monetary", required=True),
                *(Column(f"{m}_score", "int", required=True, min_value=1, max_value=5) for m in "rfm"),
                Column("segment", required=True),
            ),
            cluster_by=("segment",),
        ),
    )
}


# Every lake table, in layer order: the assets, their checks and the tests iterate over this.
LAKE_TABLES: tuple[LakeTable, ...] = (
    *BRONZE_TABLES,
    ATTRIBUTE_CHANGES,
    *SILVER_TABLES,
    *QUARANTINE_TABLES,
    *GOLD_DIMENSIONS.values(),
    *GOLD_FACTS.values(),
    *GOLD_REPORTS.values(),
)
TABLES_BY_PATH: dict[str, LakeTable] = {"/".join(t.asset_path): t for t in LAKE_TABLES}
