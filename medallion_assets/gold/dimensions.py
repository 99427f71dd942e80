"""Gold dimensions: the three SCD2 dimensions built by one function from their specs
(`Scd2Dimension`, declared as data in specs/gold.py), plus the location and date dimensions.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import holidays
import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from medallion_assets.gold.history import IS_CURRENT, record_states, scd2
from medallion_assets.resources.delta_lake import Lake
from medallion_assets.specs import (
    SCD2_BY_NAME,
    SCD2_DIMENSIONS,
    TABLES_BY_NAME,
    UNKNOWN_CATEGORY,
    Scd2Dimension,
)

# The SCD2 specs live in specs/gold.py; importers of this module keep finding them here.
__all__ = [
    "SCD2_BY_NAME",
    "SCD2_DIMENSIONS",
    "UNKNOWN_CATEGORY",
    "Scd2Dimension",
    "build_dim_date",
    "build_dim_location",
    "build_scd2_dimension",
    "date_range_of_orders",
    "first_use",
    "silver",
    "version_changes",
    "with_category_label",
]


def silver(spark: SparkSession, lake: Lake, name: str, columns: list[str] | None = None) -> DataFrame:
    return lake.table(spark, dg.AssetKey(["silver", name]), columns=columns)


def first_use(spark: SparkSession, lake: Lake, table: str, column: str) -> DataFrame:
    """(record key, `_first_use`): the earliest purchase of an order that used the record."""
    orders = silver(spark, lake, "orders", ["order_id", "customer_id", "order_purchase_timestamp"])
    if table == "order_items":
        orders = silver(spark, lake, "order_items", ["order_id", column]).join(
            orders.drop("customer_id"), "order_id"
        )
    return orders.groupBy(column).agg(F.min("order_purchase_timestamp").alias("_first_use"))


def build_scd2_dimension(spec: Scd2Dimension, spark: SparkSession, lake: Lake) -> DataFrame:
    source = TABLES_BY_NAME[spec.source]
    (record,) = source.primary_key
    states = record_states(
        spark,
        lake,
        source,
        [*spec.record_attributes, *spec.attributes],
        first_use(spark, lake, *spec.used_by),
    )
    # Two records of one person at the same moment: the later customer_id wins, deterministically.
    tiebreak = [record] if record != spec.member else []
    versions = scd2(states, spec.member, spec.attributes, spec.surrogate_key, tiebreak)
    if spec.source == "products":
        versions = with_category_label(versions, spark, lake)
    return versions


def with_category_label(products: DataFrame, spark: SparkSession, lake: Lake) -> DataFrame:
    """`product_category`: the English name from the current translation, else the Portuguese name,
    else 'unknown'. A translation is a label for the same category, so it applies to every version."""
    translation = silver(
        spark,
        lake,
        "product_category_name_translation",
        ["product_category_name", "product_category_name_english"],
    )
    return products.join(F.broadcast(translation), on="product_category_name", how="left").select(
        *products.columns,
        F.coalesce("product_category_name_english", "product_category_name", F.lit(UNKNOWN_CATEGORY)).alias(
            "product_category"
        ),
    )


def version_changes(previous: DataFrame | None, current: DataFrame, key: str) -> dict[str, int]:
    """How a rebuild changed an SCD2 dimension: versions that are new, and versions that were
    current before and are not any more (closed by a newer one). Counted in Spark, in one action
    (each costs ~0.5 s on a day's build whatever its rows: three here before)."""
    if previous is None:
        totals = current.agg(F.count("*"), F.count_if(IS_CURRENT)).first()
        return {
            "versions_new": int(totals[0]),
            "versions_closed": 0,
            "versions": int(totals[0]),
            "members_current": int(totals[1]),
        }
    was = previous.select(key, F.col(IS_CURRENT).alias("_was_current"), F.lit(True).alias("_was"))
    both = current.select(key, F.col(IS_CURRENT).alias("_now_current"), F.lit(True).alias("_now")).join(
        was, on=key, how="full_outer"
    )
    now_current = F.coalesce(F.col("_now_current"), F.lit(False))
    totals = both.agg(
        F.count_if(F.col("_now") & F.col("_was").isNull()),
        F.count_if(F.coalesce(F.col("_was_current"), F.lit(False)) & ~now_current),
        F.count_if(F.col("_now")),
        F.count_if(now_current),
    ).first()
    return {
        "versions_new": int(totals[0]),
        "versions_closed": int(totals[1]),
        "versions": int(totals[2]),
        "members_current": int(totals[3]),
    }


def build_dim_location(spark: SparkSession, lake: Lake) -> DataFrame:
    return silver(spark, lake, "geolocation").select(
        F.col("geolocation_zip_code_prefix").alias("zip_code_prefix"),
        F.col("geolocation_lat").alias("latitude"),
        F.col("geolocation_lng").alias("longitude"),
        F.col("geolocation_city").alias("city"),
        F.col("geolocation_state").alias("state"),
        F.col("geolocation_rows").alias("source_rows"),
    )


def build_dim_date(first: dt.date, last: dt.date) -> pa.Table:
    """Every day from `first` to `last` with calendar attributes and Brazil's national holidays
    (the `holidays` package: computed locally, no network)."""
    days = pd.date_range(first, last, freq="D")
    national = holidays.Brazil(years=range(first.year, last.year + 1))
    names = pd.Series(days.date).map(national.get)
    iso = days.isocalendar()
    return pa.table(
        {
            "date_key": pa.array((days.year * 10000 + days.month * 100 + days.day).to_numpy(np.int32)),
            "date": pa.array(days.date, pa.date32()),
            "year": pa.array(days.year.to_numpy(np.int32)),
            "quarter": pa.array(days.quarter.to_numpy(np.int32)),
            "month": pa.array(days.month.to_numpy(np.int32)),
            "month_name": pa.array(days.month_name().to_numpy(object), pa.string()),
            "day_of_month": pa.array(days.day.to_numpy(np.int32)),
            "day_of_week": pa.array((days.dayofweek + 1).to_numpy(np.int32)),  # ISO: Monday = 1
            "day_name": pa.array(days.day_name().to_numpy(object), pa.string()),
            "iso_week": pa.array(iso.week.to_numpy(np.int32)),
            "is_weekend": pa.array(np.asarray(days.dayofweek >= 5)),
            "is_holiday": pa.array(names.notna().to_numpy(bool)),
            "holiday_name": pa.array(names.to_numpy(object), pa.string()),
        }
    )


def date_range_of_orders(spark: SparkSession, lake: Lake, start: dt.date) -> tuple[dt.date, dt.date]:
    """From the first partition day (or an earlier order) to the end of the year of the latest date
    any order mentions, estimated deliveries included."""
    columns = [
        "order_purchase_timestamp",
        "order_approved_at",
        "order_delivered_carrier_date",
        "order_delivered_customer_date",
        "order_estimated_delivery_date",
    ]
    row = (
        silver(spark, lake, "orders", columns)
        .select(F.least(*columns).alias("first"), F.greatest(*columns).alias("last"))
        .agg(F.min("first").alias("first"), F.max("last").alias("last"))
        .first()
    )
    first = min(start, row["first"].date()) if row["first"] else start
    last = row["last"].date() if row["last"] else start
    return first, dt.date(max(last.year, first.year), 12, 31)
