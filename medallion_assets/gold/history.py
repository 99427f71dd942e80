"""History for the SCD2 dimensions: what a source row looked like at each moment, and versions from that.

Silver keeps only the current state, so the past comes from two places: every version bronze
captured (a full row from its change time on), and the source's audit trail of attribute changes
(bronze/attribute_changes: one column's old and new value at a moment). `record_states` merges
both, column by column: at moment t a column holds the latest value known at or before t, else
the old value of the first change after t. A build from scratch (bronze holds the final rows only)
and one that watched every change therefore agree wherever the source keeps its trail.

`scd2` turns states into versions: one per change of the tracked attributes, valid_from = the
moment, valid_to = the next version's valid_from (null while current), a surrogate key hashed from
(member, valid_from) so keys stay stable across rebuilds, and the unknown member with key -1.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

import dagster as dg
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from medallion_assets.resources.delta_lake import Lake
from medallion_assets.silver.transform import RULE, conform, latest_rows
from medallion_assets.specs import ATTRIBUTE_CHANGES, CHANGE_DATE, CHANGE_TS, INGESTED_AT, SourceTable

VALID_FROM, VALID_TO, IS_CURRENT = "valid_from", "valid_to", "is_current"
UNKNOWN_KEY = -1
# The unknown member is valid over all time, so a fact can always point at it.
BEGINNING_OF_TIME = dt.datetime(1900, 1, 1)


def record_states(
    spark: SparkSession,
    lake: Lake,
    source: SourceTable,
    tracked: Sequence[str],
    first_use: DataFrame | None = None,
) -> DataFrame:
    """(record key, `valid_from`, tracked columns typed and normalised as silver has them) at every
    moment a tracked column of a record may have changed. A record's first moment is the earlier of
    its creation and its first use (`first_use`: record key, `_first_use`), so an order always finds
    the customer, product or seller it used. States that break the silver contract are left out."""
    (record,) = source.primary_key
    bronze = lake.table(spark, dg.AssetKey(["bronze", source.name]))
    rows = conform(bronze, source).filter(F.col(RULE).isNull())
    # Checkpointed: every later step reads these few columns, and Spark would otherwise plan and run
    # the conform and ranking above again inside each of them (dim_customer at scale 1: 17 s, not 41).
    captured = latest_rows(rows, (record, CHANGE_TS), ["created_at", *tracked]).localCheckpoint()

    # Every observation as (record, column, at, value after, value before, preference at a tie).
    observed = captured.select(
        record,
        F.col(CHANGE_TS).alias("_at"),
        F.explode(
            F.array(
                *[
                    F.struct(F.lit(c).alias("_column"), F.col(c).cast("string").alias("_value"))
                    for c in tracked
                ]
            )
        ).alias("_o"),
    ).select(
        record,
        "_at",
        "_o._column",
        F.col("_o._value").alias("_after"),
        F.col("_o._value").alias("_before"),
        # At a tie a captured row gives the value after the moment, the trail the value before it.
        F.lit(1).alias("_rank"),
    )
    trail = lake.frame(spark, dg.AssetKey(ATTRIBUTE_CHANGES.asset_path))
    if trail is not None:
        logged = trail.filter(
            (F.col("table_name") == source.name) & F.col("column_name").isin(*tracked)
        ).select(
            F.col("row_key").alias(record),
            F.col(CHANGE_TS).alias("_at"),
            F.col("column_name").alias("_column"),
            F.col("new_value").alias("_after"),
            F.col("old_value").alias("_before"),
            F.lit(0).alias("_rank"),
        )
        known = captured.select(record).distinct()
        observed = observed.unionByName(logged.join(known, on=record, how="left_semi"))

    start = captured.groupBy(record).agg(F.min("created_at").alias("_created"))
    if first_use is not None:
        start = start.join(first_use, on=record, how="left").select(
            record, F.least("_created", "_first_use").alias("_created")
        )
    moments = (
        observed.select(record, F.col("_at").alias(VALID_FROM))
        .unionByName(start.select(record, F.col("_created").alias(VALID_FROM)))
        .distinct()
    )
    # Per moment and column: the latest value at or before it, else the old value of the next change.
    at_or_before = F.col("_at") <= F.col(VALID_FROM)
    values = (
        moments.join(observed, on=record)
        .groupBy(record, VALID_FROM, "_column")
        .agg(
            F.max(at_or_before.cast("int")).alias("_known"),
            F.max_by("_after", F.when(at_or_before, F.struct("_at", "_rank"))).alias("_after"),
            F.min_by("_before", F.when(~at_or_before, F.struct("_at", "_rank"))).alias("_before"),
        )
        .select(
            record,
            VALID_FROM,
            "_column",
            F.when(F.col("_known") == 1, F.col("_after")).otherwise(F.col("_before")).alias("_value"),
        )
    )
    wide = values.groupBy(record, VALID_FROM).pivot("_column", list(tracked)).agg(F.first("_value"))
    # Typed and normalised by silver's own rules (the trail holds values as the source wrote them).
    subset = dataclasses.replace(
        source, columns=tuple(source.column(c) for c in (record, *tracked)), row_number_key=None
    )
    stamped = (
        wide.withColumn("created_at", F.col(VALID_FROM))
        .withColumn("updated_at", F.col(VALID_FROM))
        .withColumn(CHANGE_TS, F.col(VALID_FROM))
        .withColumn(CHANGE_DATE, F.to_date(VALID_FROM))
        .withColumn(INGESTED_AT, F.lit(None).cast("timestamp"))
    )
    return (
        conform(stamped, subset)
        .filter(F.col(RULE).isNull())
        .select(record, F.col(CHANGE_TS).alias(VALID_FROM), *tracked)
    )


def scd2(
    states: DataFrame,
    member: str,
    attributes: Sequence[str],
    surrogate_key: str,
    tiebreak: Sequence[str] = (),
) -> DataFrame:
    """SCD2 versions of each member from its states (member, `valid_from`, attributes, tiebreak...).

    At one moment the last state by `tiebreak` counts; a state equal to the one before adds nothing.
    """
    at_moment = Window.partitionBy(member, VALID_FROM).orderBy(
        *[F.col(c).desc() for c in tiebreak] or [F.lit(1)]
    )
    in_time = Window.partitionBy(member).orderBy(VALID_FROM)
    unchanged = F.lit(True)
    for column in attributes:
        unchanged = unchanged & F.lag(column).over(in_time).eqNullSafe(F.col(column))
    versions = (
        states.filter(F.col(member).isNotNull())
        .withColumn("_n", F.row_number().over(at_moment))
        .filter("_n = 1")
        .withColumn("_keep", (F.row_number().over(in_time) == 1) | ~unchanged)
        .filter("_keep")
        .select(
            F.xxhash64(member, VALID_FROM).alias(surrogate_key),
            member,
            *attributes,
            VALID_FROM,
            F.lead(VALID_FROM).over(in_time).alias(VALID_TO),
        )
        .withColumn(IS_CURRENT, F.col(VALID_TO).isNull())
    )
    unknown = versions.sparkSession.createDataFrame(
        [(UNKNOWN_KEY, BEGINNING_OF_TIME)], f"{surrogate_key} long, {VALID_FROM} timestamp_ntz"
    )
    return versions.unionByName(unknown, allowMissingColumns=True).withColumn(
        IS_CURRENT, F.coalesce(IS_CURRENT, F.lit(True))
    )


def version_at(
    facts: DataFrame,
    dimension: DataFrame,
    member: str,
    at: str,
    surrogate_key: str,
    prefix: str = "",
    or_first: bool = False,
) -> DataFrame:
    """`facts` with the surrogate key of the member's version valid at `at` (-1 when there is none):
    a range join on valid_from <= at < valid_to, never the current version by default.

    `or_first`: a known member seen before its first version gets that first version, not -1 (the
    source records a customer or product at its first order; the shop showed it before that)."""
    versions = dimension.filter(F.col(surrogate_key) != UNKNOWN_KEY).select(
        F.col(member).alias("_member"),
        F.col(surrogate_key).alias("_version_key"),
        F.col(VALID_FROM).alias("_from"),
        F.col(VALID_TO).alias("_to"),
    )
    valid = (
        (F.col(member) == F.col("_member"))
        & (F.col("_from") <= F.col(at))
        & (F.col("_to").isNull() | (F.col(at) < F.col("_to")))
    )
    keyed = facts.join(versions, on=valid, how="left")
    if or_first:
        first = versions.groupBy(F.col("_member").alias(member)).agg(
            F.min_by("_version_key", "_from").alias("_first_key"), F.min("_from").alias("_first_from")
        )
        before_first = F.col("_version_key").isNull() & (F.col(at) < F.col("_first_from"))
        keyed = (
            keyed.join(first, on=member, how="left")
            .withColumn(
                "_version_key", F.when(before_first, F.col("_first_key")).otherwise(F.col("_version_key"))
            )
            .drop("_first_key", "_first_from")
        )
    return keyed.withColumn(prefix + surrogate_key, F.coalesce("_version_key", F.lit(UNKNOWN_KEY))).drop(
        "_member", "_version_key", "_from", "_to"
    )
