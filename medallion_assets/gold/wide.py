"""Gold's wide tables (one big table each, specs/gold.py GOLD_WIDE): a fact's rows with the
attributes an analyst filters by, joined once in Spark so a BI tool needs no join.

orders_wide and order_items_wide are partitioned by order date like their facts and read the facts'
stored rows of the window, with the dimensions whole. The attributes as of purchase come with the
facts' version keys, so they only change with the facts; the current ones (orders_wide's
current_customer_*) and a zip's position change without them: `stale_dates` finds the order
dates whose stored wide rows differ from what the stored facts and dimensions give now, in the
same Spark action as the facts' stale order dates.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from medallion_assets.gold.facts import (
    ROW_HASH,
    differing_fact_dates,
    gold,
    order_fact_logs,
    purchase_dates_if_first_build,
    with_row_hash,
)
from medallion_assets.resources.delta_lake import Lake
from medallion_assets.resources.delta_lake import Window as LakeWindow
from medallion_assets.resources.spark import release_cached
from medallion_assets.specs import GOLD_WIDE, ORDER_DATE
from medallion_assets.specs.gold import ORDER_CALENDAR_NAMES

PLACE = ("zip_code_prefix", "city", "state")


def _facts(spark: SparkSession, lake: Lake, name: str, window: tuple[dt.date, dt.date] | None) -> DataFrame:
    return lake.table(spark, dg.AssetKey(["gold", name]), LakeWindow(ORDER_DATE, *window) if window else None)


def orders_wide(spark: SparkSession, lake: Lake, window: tuple[dt.date, dt.date] | None) -> DataFrame:
    """orders_wide for the order dates of `window` (None: all)."""
    customers = gold(spark, lake, "dim_customer")
    at_purchase = customers.select("customer_key", *(f"customer_{p}" for p in PLACE))
    current = customers.filter("is_current").select(
        "customer_unique_id", *(F.col(f"customer_{p}").alias(f"current_customer_{p}") for p in PLACE)
    )
    position = gold(spark, lake, "dim_location").select(
        F.col("zip_code_prefix").alias("customer_zip_code_prefix"),
        F.col("latitude").alias("customer_latitude"),
        F.col("longitude").alias("customer_longitude"),
    )
    calendar = gold(spark, lake, "dim_date").select(
        F.col("date_key").alias("order_date_key"),
        *(F.col(ours).alias(theirs) for ours, theirs in ORDER_CALENDAR_NAMES.items()),
    )
    moved = F.lit(False)
    for p in PLACE:
        moved = moved | ~F.col(f"customer_{p}").eqNullSafe(F.col(f"current_customer_{p}"))
    rows = (
        _facts(spark, lake, "fact_orders", window)
        .join(at_purchase, "customer_key", "left")
        .join(current, "customer_unique_id", "left")
        .join(position, "customer_zip_code_prefix", "left")
        .join(calendar, "order_date_key", "left")
        # The unknown customer (key -1) has no address: it moved nowhere.
        .withColumn(
            "customer_moved", F.coalesce(moved & F.col("customer_unique_id").isNotNull(), F.lit(False))
        )
    )
    return with_row_hash(rows.select(*(c.name for c in GOLD_WIDE["orders_wide"].columns)))


def order_items_wide(spark: SparkSession, lake: Lake, window: tuple[dt.date, dt.date] | None) -> DataFrame:
    """order_items_wide for the order dates of `window` (None: all)."""
    product = gold(spark, lake, "dim_product").select(
        "product_key",
        "product_category_name",
        *(f"product_{m}" for m in ("weight_g", "length_cm", "height_cm", "width_cm")),
    )
    seller = gold(spark, lake, "dim_seller").select("seller_key", *(f"seller_{p}" for p in PLACE))
    customer = gold(spark, lake, "dim_customer").select("customer_key", "customer_state")
    order = _facts(spark, lake, "fact_orders", window).select(
        "order_id", "order_status", "latest_review_score", "delivery_days", "is_late"
    )
    rows = (
        _facts(spark, lake, "fact_order_items", window)
        .join(order, "order_id", "left")
        .join(product, "product_key", "left")
        .join(seller, "seller_key", "left")
        .join(customer, "customer_key", "left")
    )
    return with_row_hash(rows.select(*(c.name for c in GOLD_WIDE["order_items_wide"].columns)))


@dataclass(frozen=True)
class WideTable:
    """How a wide table is built: its rows for a window of order dates, and the gold tables they
    read (the facts of the same order dates, the dimensions whole)."""

    compute: Callable[[SparkSession, Lake, tuple[dt.date, dt.date] | None], DataFrame]
    facts: tuple[str, ...]
    dimensions: tuple[str, ...]
    # Reads a member's current state (not only the version at purchase the facts' keys name), so
    # its rows can go stale while its facts do not: `stale_dates` looks for such dates.
    reads_current: bool = False


WIDE_TABLES: dict[str, WideTable] = {
    "orders_wide": WideTable(
        orders_wide, ("fact_orders",), ("dim_customer", "dim_location", "dim_date"), reads_current=True
    ),
    "order_items_wide": WideTable(
        order_items_wide, ("fact_order_items", "fact_orders"), ("dim_product", "dim_seller", "dim_customer")
    ),
}


def differing_wide_dates(spark: SparkSession, lake: Lake) -> dict[str, DataFrame]:
    """Per wide table that reads current attributes, the order dates (column `d`, lazily) whose
    stored rows differ from what the stored facts and the dimensions give now (a customer moved
    since, a zip's position changed). Rows of stale facts are found with the facts' own; a wide
    table of versions at purchase only changes with its facts. A table never built is left out."""
    differing: dict[str, DataFrame] = {}
    for name, wide in WIDE_TABLES.items():
        if not wide.reads_current:
            continue
        table = GOLD_WIDE[name]
        key = list(table.primary_key)
        log = lake.open(lake.uri(dg.AssetKey(table.asset_path)))
        if log is None or Lake.rows_in(log, None) == 0:
            continue
        stored = lake.table(
            spark, dg.AssetKey(table.asset_path), columns=[*key, ORDER_DATE, ROW_HASH], log=log
        )
        was = stored.select(*key, F.col(ORDER_DATE).alias("_date_was"), F.col(ROW_HASH).alias("_hash_was"))
        now = wide.compute(spark, lake, None).select(
            *key, F.col(ORDER_DATE).alias("_date_now"), F.col(ROW_HASH).alias("_hash_now")
        )
        rows = now.join(was, key, "full_outer").filter(~F.col("_hash_now").eqNullSafe(F.col("_hash_was")))
        dates = rows.select(F.explode(F.array("_date_now", "_date_was")).alias("d"))
        differing[name] = dates.filter("d IS NOT NULL")
    return differing


FACTS = "_facts"  # the facts' label among the searches' rows (no wide table's name)


def stale_dates(spark: SparkSession, lake: Lake) -> tuple[list[dt.date], dict[str, set[dt.date]]]:
    """(order dates whose facts are stale, in order; per wide table reading current attributes, the
    order dates of its stale rows): every search in ONE Spark action, since at this size each
    action costs a fixed 0.5-1.5 s whatever it reads. Empty when gold is up to date."""
    logs = order_fact_logs(lake)
    first_build = purchase_dates_if_first_build(spark, lake, logs)
    searches = differing_wide_dates(spark, lake)
    if first_build is None:
        searches[FACTS] = differing_fact_dates(spark, lake, logs)
    found: dict[str, set[dt.date]] = {name: set() for name in searches}
    if searches:
        labelled = [dates.select(F.lit(name).alias("_of"), "d") for name, dates in searches.items()]
        try:
            for row in functools.reduce(DataFrame.unionByName, labelled).distinct().collect():
                found[row["_of"]].add(row["d"])
        finally:
            release_cached()
    stale = first_build if first_build is not None else sorted(found.pop(FACTS))
    return stale, found
