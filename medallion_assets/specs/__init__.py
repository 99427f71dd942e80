"""Every table of the platform declared as data, one concern per module:

- types.py: the column types, one row per type with its Arrow, PostgreSQL, Spark, DuckDB and
  BigQuery names (`TYPES`), its text form and description;
- columns.py: `Column` (a column's type and contract), the column helpers and the domain values;
- sources.py: `SourceTable` and the nine Olist source tables (`OLIST_TABLES`, `TABLES_BY_NAME`);
- quality.py: what checks prove beyond key and contract (`Drift`, `Reference`, `Rule`);
- lake.py: `LakeTable`, the lineage columns, and the bronze, silver and quarantine tables derived
  from the source tables;
- events.py: the web shop's event streams on Kafka (`EventStream`) and their bronze and
  quarantine tables;
- gold.py: the gold dimensions, facts and reports, and the SCD2 dimensions' specs.

The generator, the CSV loader, the source database DDL, the replay of changes, the assets and their
checks are all built from these specs: adding a table is adding one spec. Import the names from
here (`from medallion_assets.specs import LakeTable`); this module assembles every lake table.
"""

from __future__ import annotations

from medallion_assets.specs.columns import (
    BRAZIL_STATES,
    ID_PATTERN,
    ORDER_STATUSES,
    PAYMENT_TYPES,
    Column,
    Normalize,
    Quoting,
)
from medallion_assets.specs.events import EVENT_BRONZE_TABLES, EVENT_QUARANTINE_TABLES, EVENT_SILVER_TABLES
from medallion_assets.specs.gold import (
    GOLD_DIMENSIONS,
    GOLD_FACTS,
    GOLD_REPORTS,
    GOLD_WIDE,
    MAX_AVERAGE_REVENUE,
    ORDER_DATE,
    ORDER_DATE_COLUMNS,
    PAYMENT_TOLERANCE,
    PAYMENT_TOLERANCE_BRL,
    SCD2_BY_NAME,
    SCD2_DIMENSIONS,
    UNKNOWN_CATEGORY,
    Scd2Dimension,
    gold_table,
)
from medallion_assets.specs.lake import (
    ATTRIBUTE_CHANGES,
    BRONZE_TABLES,
    CHANGE_DATE,
    CHANGE_TS,
    ENGLISH_CATEGORY,
    GEO_ROWS,
    INGESTED_AT,
    LANDED_LIVE,
    LINEAGE,
    MISSING_PARENTS,
    QUARANTINE_TABLES,
    RUN_ID,
    SILVER_TABLES,
    SOURCE,
    SOURCE_TIME,
    UNDECLARED_COLUMNS,
    LakeTable,
    Layer,
    WriteMode,
    bronze_table,
    quarantine_table,
    silver_columns,
    silver_table,
)
from medallion_assets.specs.quality import Drift, Reference, Rule, Severity
from medallion_assets.specs.sources import OLIST_TABLES, TABLES_BY_NAME, SourceTable
from medallion_assets.specs.types import (
    KAGGLE_TIMESTAMP_FORMAT,
    TYPES,
    ColumnType,
    TypeNames,
)

# Every lake table, in layer order: the assets, their checks and the tests iterate over this.
LAKE_TABLES: tuple[LakeTable, ...] = (
    *BRONZE_TABLES,
    ATTRIBUTE_CHANGES,
    *EVENT_BRONZE_TABLES,
    *SILVER_TABLES,
    *EVENT_SILVER_TABLES,
    *QUARANTINE_TABLES,
    *EVENT_QUARANTINE_TABLES,
    *GOLD_DIMENSIONS.values(),
    *GOLD_FACTS.values(),
    *GOLD_REPORTS.values(),
    *GOLD_WIDE.values(),
)
# The stream lane's tables: landed by the event-stream sensor's runs, not by `medallion build`.
STREAM_TABLES: tuple[LakeTable, ...] = (*EVENT_BRONZE_TABLES, *EVENT_QUARANTINE_TABLES)
TABLES_BY_PATH: dict[str, LakeTable] = {"/".join(t.asset_path): t for t in LAKE_TABLES}

__all__ = [
    "ATTRIBUTE_CHANGES",
    "BRAZIL_STATES",
    "BRONZE_TABLES",
    "CHANGE_DATE",
    "CHANGE_TS",
    "ENGLISH_CATEGORY",
    "EVENT_BRONZE_TABLES",
    "EVENT_QUARANTINE_TABLES",
    "GEO_ROWS",
    "GOLD_DIMENSIONS",
    "GOLD_FACTS",
    "GOLD_REPORTS",
    "GOLD_WIDE",
    "ID_PATTERN",
    "INGESTED_AT",
    "KAGGLE_TIMESTAMP_FORMAT",
    "LAKE_TABLES",
    "LANDED_LIVE",
    "LINEAGE",
    "MAX_AVERAGE_REVENUE",
    "MISSING_PARENTS",
    "OLIST_TABLES",
    "ORDER_DATE",
    "ORDER_DATE_COLUMNS",
    "ORDER_STATUSES",
    "PAYMENT_TOLERANCE",
    "PAYMENT_TOLERANCE_BRL",
    "PAYMENT_TYPES",
    "QUARANTINE_TABLES",
    "RUN_ID",
    "SCD2_BY_NAME",
    "SCD2_DIMENSIONS",
    "SILVER_TABLES",
    "SOURCE",
    "SOURCE_TIME",
    "STREAM_TABLES",
    "TABLES_BY_NAME",
    "TABLES_BY_PATH",
    "TYPES",
    "UNDECLARED_COLUMNS",
    "UNKNOWN_CATEGORY",
    "Column",
    "ColumnType",
    "Drift",
    "LakeTable",
    "Layer",
    "Normalize",
    "Quoting",
    "Reference",
    "Rule",
    "Scd2Dimension",
    "Severity",
    "SourceTable",
    "TypeNames",
    "WriteMode",
    "bronze_table",
    "gold_table",
    "quarantine_table",
    "silver_columns",
    "silver_table",
]
