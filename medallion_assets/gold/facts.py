"""Gold facts: orders and order items with the dimension versions valid at purchase time, and the
web shop's events with those valid at event time.

Facts and the daily reports are partitioned by order date and computed from silver's current
state, so recomputing a partition always gives what a build from scratch would. Silver is
partitioned by change date, though: a status change or a late review on day D changes the facts of
an older order date. `stale_dates` (wide.py) finds those dates by content: it computes every order's
fact rows and compares their row hashes with the stored ones; `medallion build` (and the
automation) then recomputes exactly those partitions. It also catches what no change date would
show: a dimension version that moved, an order whose purchase date was corrected.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
from deltalake import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from medallion_assets.gold.dimensions import UNKNOWN_CATEGORY, silver
from medallion_assets.gold.history import version_at
from medallion_assets.resources.delta_lake import Lake
from medallion_assets.resources.delta_lake import Window as LakeWindow
from medallion_assets.resources.spark import cached
from medallion_assets.silver.events import silver_schema
from medallion_assets.specs import GOLD_FACTS, ORDER_DATE
from medallion_assets.specs.events import EVENT_DATE, EVENT_SILVER_TABLES
from medallion_assets.specs.gold import EVENT_DATE as GOLD_EVENT_DATE

NOT_REVENUE_STATUSES = ("canceled", "unavailable")
ROW_HASH = "_row_hash"
PURCHASE = "order_purchase_timestamp"
ORDER_FACTS = (GOLD_FACTS["fact_orders"], GOLD_FACTS["fact_order_items"])


def money(column: Column | str) -> Column:
    return F.col(column).cast("decimal(18,2)") if isinstance(column, str) else column.cast("decimal(18,2)")


def date_key(column: str) -> Column:
    return (F.year(column) * 10000 + F.month(column) * 100 + F.dayofmonth(column)).cast("int")


def with_row_hash(frame: DataFrame) -> DataFrame:
    """A hash of the row's content (lineage columns aside): what `stale_dates` compares."""
    return frame.withColumn(ROW_HASH, F.xxhash64(*[c for c in frame.columns if not c.startswith("_")]))


def compute_facts(
    spark: SparkSession, lake: Lake, window: tuple[dt.date, dt.date] | None = None
) -> tuple[DataFrame, DataFrame]:
    """(fact_orders, fact_order_items) for orders purchased in [start, end), or for all orders.
    What they share is cached (`cached`): `release_cached` when both are read."""
    orders = silver(spark, lake, "orders").withColumn(ORDER_DATE, F.to_date(PURCHASE))
    if window is not None:
        orders = orders.filter((F.col(ORDER_DATE) >= window[0]) & (F.col(ORDER_DATE) < window[1]))
    dimension = {name: gold(spark, lake, name) for name in ("dim_customer", "dim_product", "dim_seller")}

    people = silver(spark, lake, "customers", ["customer_id", "customer_unique_id"])
    orders = version_at(
        orders.join(people, on="customer_id", how="left"),
        dimension["dim_customer"],
        "customer_unique_id",
        PURCHASE,
        "customer_key",
    ).withColumn("is_revenue_status", ~F.col("order_status").isin(*NOT_REVENUE_STATUSES))
    # Cached (the caller calls `release_cached` when done): both facts read the orders, and fact_orders
    # the items; Spark would compute each again for every fact that reads it.
    orders = cached(orders)

    # Items without a known order have no purchase time yet: they wait (counted in the metadata).
    items = silver(spark, lake, "order_items").join(
        orders.select("order_id", ORDER_DATE, PURCHASE, "customer_key", "is_revenue_status"), on="order_id"
    )
    items = version_at(items, dimension["dim_product"], "product_id", PURCHASE, "product_key")
    items = version_at(items, dimension["dim_seller"], "seller_id", PURCHASE, "seller_key")
    labels = dimension["dim_product"].select("product_key", "product_category")
    items = cached(
        items.join(F.broadcast(labels), on="product_key", how="left").select(
            "order_id",
            "order_item_id",
            ORDER_DATE,
            date_key(ORDER_DATE).alias("order_date_key"),
            "customer_key",
            "product_key",
            "seller_key",
            "product_id",
            "seller_id",
            F.coalesce("product_category", F.lit(UNKNOWN_CATEGORY)).alias("product_category"),
            "shipping_limit_date",
            "price",
            "freight_value",
            money(F.col("price") + F.col("freight_value")).alias("item_revenue"),
            F.col("is_revenue_status").alias("is_revenue_order"),  # it has an item, this one
        )
    )

    per_order = items.groupBy("order_id").agg(
        F.count("*").cast("int").alias("item_count"),
        money(F.sum("price")).alias("item_value"),
        money(F.sum("freight_value")).alias("freight_value"),
    )
    payments = (
        silver(spark, lake, "order_payments")
        .groupBy("order_id")
        .agg(
            money(F.sum("payment_value")).alias("payment_total"),
            F.count("*").cast("int").alias("payment_count"),
        )
    )
    latest_review = Window.partitionBy("order_id").orderBy(
        F.col("review_creation_date").desc(),
        F.col("review_answer_timestamp").desc_nulls_last(),
        F.col("review_id").desc(),
    )
    reviews = (
        silver(spark, lake, "order_reviews")
        .withColumn("_n", F.row_number().over(latest_review))
        .filter("_n = 1")
        .select("order_id", F.col("review_score").alias("latest_review_score"))
    )
    delivered = F.to_date("order_delivered_customer_date")
    zero = F.lit(0).cast("decimal(18,2)")
    fact_orders = (
        orders.join(per_order, on="order_id", how="left")
        .join(payments, on="order_id", how="left")
        .join(reviews, on="order_id", how="left")
        .select(
            "order_id",
            ORDER_DATE,
            date_key(ORDER_DATE).alias("order_date_key"),
            "customer_key",
            "customer_id",
            "customer_unique_id",
            "order_status",
            PURCHASE,
            "order_approved_at",
            "order_delivered_carrier_date",
            "order_delivered_customer_date",
            "order_estimated_delivery_date",
            F.coalesce("item_count", F.lit(0)).alias("item_count"),
            F.coalesce("item_value", zero).alias("item_value"),
            F.coalesce("freight_value", zero).alias("freight_value"),
            money(F.coalesce("item_value", zero) + F.coalesce("freight_value", zero)).alias("revenue"),
            F.coalesce("payment_total", zero).alias("payment_total"),
            F.coalesce("payment_count", F.lit(0)).alias("payment_count"),
            "latest_review_score",
            F.datediff(delivered, F.col(ORDER_DATE)).alias("delivery_days"),
            # Late when delivered after the estimated day; unknown (null) while not delivered.
            F.when(delivered.isNotNull(), delivered > F.to_date("order_estimated_delivery_date")).alias(
                "is_late"
            ),
            (F.col("is_revenue_status") & (F.coalesce("item_count", F.lit(0)) > 0)).alias("is_revenue_order"),
        )
    )
    return with_row_hash(fact_orders), with_row_hash(items)


def gold(spark: SparkSession, lake: Lake, name: str) -> DataFrame:
    return lake.table(spark, dg.AssetKey(["gold", name]))


def items_without_order(spark: SparkSession, lake: Lake) -> DataFrame:
    """Silver's items whose order is not in silver yet (order_id)."""
    items = silver(spark, lake, "order_items", ["order_id"])
    return items.join(silver(spark, lake, "orders", ["order_id"]), on="order_id", how="left_anti")


def order_fact_logs(lake: Lake) -> list[DeltaTable | None]:
    """The Delta logs of the order facts (None: no table yet), read once per search."""
    return [lake.open(lake.uri(dg.AssetKey(t.asset_path))) for t in ORDER_FACTS]


def purchase_dates_if_first_build(
    spark: SparkSession, lake: Lake, logs: list[DeltaTable | None]
) -> list[dt.date] | None:
    """Every purchase date, when no fact is stored yet (a first build: there is nothing to compare
    with, and an order date is its purchase date, so no fact needs computing); None otherwise."""
    if all(log is not None and Lake.rows_in(log, None) != 0 for log in logs):
        return None
    purchases = silver(spark, lake, "orders", [PURCHASE]).select(F.to_date(PURCHASE).alias("d"))
    return sorted(r[0] for r in purchases.distinct().collect() if r[0] is not None)


def differing_fact_dates(spark: SparkSession, lake: Lake, logs: list[DeltaTable | None]) -> DataFrame:
    """The order dates (column `d`) whose stored fact rows differ from what silver and the
    dimensions give now (rows changed, added, or gone; a row's date before and after), lazily. It
    caches the facts it computes (`release_cached` after the action)."""
    stored_facts = [
        lake.table(spark, dg.AssetKey(t.asset_path), columns=[*t.primary_key, ORDER_DATE, ROW_HASH], log=log)
        for t, log in zip(ORDER_FACTS, logs, strict=True)
    ]
    fresh_orders, fresh_items = compute_facts(spark, lake)
    # Both facts' differing dates in ONE action: the items' facts are built on the orders', and
    # Spark runs the shared part once (cached) instead of once per fact table.
    differing_dates: list[DataFrame] = []
    for fresh, table, stored_rows in zip((fresh_orders, fresh_items), ORDER_FACTS, stored_facts, strict=True):
        key = list(table.primary_key)
        now = fresh.select(*key, F.col(ORDER_DATE).alias("_date_now"), F.col(ROW_HASH).alias("_hash_now"))
        stored = stored_rows.select(
            *key, F.col(ORDER_DATE).alias("_date_was"), F.col(ROW_HASH).alias("_hash_was")
        )
        differing = now.join(stored, on=key, how="full_outer").filter(
            ~F.col("_hash_now").eqNullSafe(F.col("_hash_was"))
            | ~F.col("_date_now").eqNullSafe(F.col("_date_was"))
        )
        dates = differing.select(F.explode(F.array("_date_now", "_date_was")).alias("d"))
        differing_dates.append(dates.filter("d IS NOT NULL"))
    return differing_dates[0].unionByName(differing_dates[1])


def clickstream_facts(spark: SparkSession, lake: Lake, window: tuple[dt.date, dt.date]) -> DataFrame:
    """fact_clickstream for events of the event dates [start, end): each with the customer and
    product versions valid at the event's time, or their first version when the event came before
    it (the source records a customer or a product at its first order, the shop showed them
    earlier); -1 for a member gold does not know, null for none (an anonymous visitor, a page
    without a product)."""
    table = EVENT_SILVER_TABLES[0]
    events = lake.frame(spark, dg.AssetKey(table.asset_path), LakeWindow(EVENT_DATE, *window))
    if events is None:  # the clickstream has not reached silver here: no events
        events = spark.createDataFrame([], silver_schema(table))
    facts = events.withColumnRenamed(EVENT_DATE, GOLD_EVENT_DATE).withColumn(
        "event_date_key", date_key(GOLD_EVENT_DATE)
    )
    for dimension, member, key in (
        ("dim_customer", "customer_unique_id", "customer_key"),
        ("dim_product", "product_id", "product_key"),
    ):
        facts = version_at(facts, gold(spark, lake, dimension), member, "event_time", key, or_first=True)
        facts = facts.withColumn(key, F.when(F.col(member).isNotNull(), F.col(key)))  # none: no key
    return facts.select(*(c.name for c in GOLD_FACTS["fact_clickstream"].columns))
