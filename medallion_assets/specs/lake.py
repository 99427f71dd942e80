"""Lake tables: the `LakeTable` spec, the lineage and extra columns of the lake, and the bronze,
silver and quarantine tables derived from the source tables (one of each per source table), plus
the bronze table of the source's audit trail of attribute changes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from medallion_assets.specs.columns import Column
from medallion_assets.specs.quality import Drift, Reference, Rule
from medallion_assets.specs.sources import OLIST_TABLES, TABLES_BY_NAME, SourceTable

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
# Materialization metadata of bronze: source columns its spec does not declare (landed all the same).
UNDECLARED_COLUMNS = "undeclared_source_columns"
# A change-date partition first landed within this long after its day is complete (the sensor
# lands a day within a poll, the daily catch-up the next night).
LANDED_LIVE = dt.timedelta(days=2)
# Columns silver adds to some tables (see silver/assets.py).
GEO_ROWS = "geolocation_rows"
ENGLISH_CATEGORY = "product_category_name_english"
MISSING_PARENTS = "_missing_parents"


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
    # Lake clustering: the weekly maintenance's OPTIMIZE Z-orders the table's files by these columns,
    # so a filter on them skips files (after the partition column when the table is not physically
    # partitioned by it: maintenance/operations.py, zorder_columns).
    zorder_by: tuple[str, ...] = ()

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
