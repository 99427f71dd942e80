"""The column types of the platform: one row per type, with its name in every system that holds it.

Arrow (the source's schemas, the CSV reader, the warehouse loads), PostgreSQL (the source database
DDL), Spark (silver's casts, the contract), DuckDB and BigQuery (the warehouse), plus the text a
value must be before it is cast and how the type is named in error messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

# "total" is a sum of money (DECIMAL(18,2)); "long" a 64-bit key; both appear in gold only.
ColumnType = Literal["string", "int", "long", "money", "total", "float", "timestamp", "date", "bool"]


@dataclass(frozen=True)
class TypeNames:
    """One column type as each system names it."""

    arrow: pa.DataType
    postgres: str
    # Spark SQL's name (DataType.simpleString()): silver casts to it, the contract compares a
    # frame's schema with it.
    spark: str
    # The warehouse types of gold's columns: exact decimals for money, zone-less times stay zone-less.
    duckdb: str
    bigquery: str
    # The text a value of the type must be before it is cast (CSV reader, silver), so a cast never
    # fails half-way or rounds silently; and how the type is named in error messages.
    text_form: str | None = None
    description: str | None = None


TYPES: dict[ColumnType, TypeNames] = {
    "string": TypeNames(pa.string(), "text", "string", "VARCHAR", "STRING"),
    "int": TypeNames(
        pa.int32(),
        "integer",
        "int",
        "INTEGER",
        "INT64",
        text_form=r"^[+-]?\d{1,9}$",
        description="an integer",
    ),
    "long": TypeNames(pa.int64(), "bigint", "bigint", "BIGINT", "INT64"),
    "money": TypeNames(
        pa.decimal128(12, 2),
        "numeric(12,2)",
        "decimal(12,2)",
        "DECIMAL(12,2)",
        "NUMERIC",
        text_form=r"^[+-]?\d{1,10}(\.\d{1,2})?$",
        description="an amount with at most 2 decimals",
    ),
    "total": TypeNames(pa.decimal128(18, 2), "numeric(18,2)", "decimal(18,2)", "DECIMAL(18,2)", "NUMERIC"),
    "float": TypeNames(
        pa.float64(),
        "double precision",
        "double",
        "DOUBLE",
        "FLOAT64",
        text_form=r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$",
        description="a number",
    ),
    # Olist times are Brazil local time without a zone: timestamp without time zone.
    "timestamp": TypeNames(
        pa.timestamp("us"),
        "timestamp without time zone",
        "timestamp_ntz",
        "TIMESTAMP",
        "DATETIME",
        description="a timestamp YYYY-MM-DD HH:MM:SS",
    ),
    "date": TypeNames(pa.date32(), "date", "date", "DATE", "DATE"),
    "bool": TypeNames(pa.bool_(), "boolean", "boolean", "BOOLEAN", "BOOL"),
}
# The text form of a timestamp (Kaggle files, bronze's text).
KAGGLE_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
