"""Gold reports and features, to the letter of DESIGN.md's gold semantics.

Money is summed as DECIMAL(18,2). Averages and medians are rounded half-up to the cent with
integer arithmetic on cents, never through floating point: (10.05 + 10.10) / 2 = 10.075 must give
10.08, which a double (10.074999...) would round to 10.07.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from medallion_assets.gold.facts import money
from medallion_assets.specs import ORDER_DATE
from medallion_assets.specs.gold import EVENT_DATE


def cents(column: str | Column) -> Column:
    value = F.col(column) if isinstance(column, str) else column
    return (value * 100).cast("long")


def from_cents(column: Column) -> Column:
    return money(column.cast("decimal(20,0)") / F.lit(100))


def integer_division(numerator: Column, denominator: Column) -> Column:
    """floor(numerator / denominator) for longs, exactly (no floating-point rounding)."""
    return ((numerator - F.pmod(numerator, denominator)) / denominator).cast("long")


def half_up_ratio(total_cents: Column, count: Column) -> Column:
    """total / count rounded half-up to the cent, for non-negative totals: floor((2t + n) / 2n)."""
    return from_cents(integer_division(2 * total_cents + count, 2 * count))


def daily_order_report(fact_orders: DataFrame) -> DataFrame:
    return (
        fact_orders.filter("is_revenue_order")
        .groupBy(ORDER_DATE)
        .agg(F.count("*").alias("orders"), money(F.sum("revenue")).alias("total_revenue"))
        .select(
            ORDER_DATE,
            "orders",
            "total_revenue",
            half_up_ratio(cents("total_revenue"), F.col("orders")).alias("avg_order_revenue"),
        )
    )


def daily_category_report(fact_order_items: DataFrame) -> DataFrame:
    group = [ORDER_DATE, "product_category"]
    by_revenue = Window.partitionBy(*group).orderBy("_cents")
    items = (
        fact_order_items.filter("is_revenue_order")
        .withColumn("_cents", cents("item_revenue"))
        .withColumn("_n", F.count("*").over(Window.partitionBy(*group)))
        .withColumn("_rank", F.row_number().over(by_revenue))
    )
    # The middle item (odd count) counts twice; otherwise the two middle items once each.
    lower_middle = integer_division(F.col("_n") + 1, F.lit(2))
    upper_middle = integer_division(F.col("_n"), F.lit(2)) + 1
    middle_cents = F.when(F.col("_rank") == lower_middle, F.col("_cents")).otherwise(0) + F.when(
        F.col("_rank") == upper_middle, F.col("_cents")
    ).otherwise(0)
    return (
        items.groupBy(*group)
        .agg(
            F.count("*").alias("items"),
            F.countDistinct("order_id").alias("orders"),
            money(F.sum("item_revenue")).alias("total_revenue"),
            F.sum("_cents").alias("_total_cents"),
            F.sum(middle_cents).alias("_middle_cents"),
        )
        .select(
            *group,
            "items",
            "orders",
            "total_revenue",
            half_up_ratio(F.col("_total_cents"), F.col("items")).alias("avg_item_revenue"),
            half_up_ratio(F.col("_middle_cents"), F.lit(2).cast("long")).alias("median_item_revenue"),
        )
    )


# RFM segments from the recency and frequency scores, first match wins (the common R-F grid).
SEGMENTS: tuple[tuple[str, str, str], ...] = (  # (recency scores, frequency scores, segment)
    ("5", "45", "champions"),
    ("34", "45", "loyal customers"),
    ("45", "23", "potential loyalists"),
    ("5", "1", "new customers"),
    ("4", "1", "promising"),
    ("3", "3", "need attention"),
    ("3", "12", "about to sleep"),
    ("12", "5", "cannot lose them"),
    ("12", "34", "at risk"),
    ("12", "12", "hibernating"),
)


def quintile_score(value: str, best_is_high: bool) -> Column:
    """1-5 (5 best): 1 + floor(5 * (customers strictly worse) / customers). Equal values score
    equally (most customers order once, so they share a frequency score)."""
    order = F.col(value).asc() if best_is_high else F.col(value).desc()
    worse = F.rank().over(Window.orderBy(order)) - 1
    return (
        integer_division(5 * worse.cast("long"), F.count("*").over(Window.partitionBy()).cast("long")) + 1
    ).cast("int")


def customer_rfm(fact_orders: DataFrame) -> DataFrame:
    revenue_orders = fact_orders.filter("is_revenue_order")
    latest = revenue_orders.agg(F.max(ORDER_DATE).alias("_latest"))
    segment = F.lit(None).cast("string")
    for recency, frequency, name in reversed(SEGMENTS):
        matches = F.col("r_score").isin(*[int(c) for c in recency]) & F.col("f_score").isin(
            *[int(c) for c in frequency]
        )
        segment = F.when(matches, F.lit(name)).otherwise(segment)
    return (
        revenue_orders.filter(F.col("customer_unique_id").isNotNull())
        .groupBy("customer_unique_id")
        .agg(
            F.max(ORDER_DATE).alias("last_order_date"),
            F.countDistinct("order_id").cast("int").alias("frequency"),
            money(F.sum("revenue")).alias("monetary"),
        )
        .crossJoin(F.broadcast(latest))
        .withColumn("recency_days", F.datediff("_latest", "last_order_date"))
        .withColumn("r_score", quintile_score("recency_days", best_is_high=False))
        .withColumn("f_score", quintile_score("frequency", best_is_high=True))
        .withColumn("m_score", quintile_score("monetary", best_is_high=True))
        .select(
            "customer_unique_id",
            "last_order_date",
            "recency_days",
            "frequency",
            "monetary",
            "r_score",
            "f_score",
            "m_score",
            segment.alias("segment"),
        )
    )


def daily_funnel_report(fact_clickstream: DataFrame) -> DataFrame:
    """The shopping funnel per event date: sessions reaching each step, the steps' events, and the
    share of sessions that checked out (rounded to 4 places)."""
    kind, session = F.col("event_type"), F.col("session_id")

    def sessions_with(event_type: str) -> Column:
        return F.count_distinct(F.when(kind == event_type, session)).alias(f"{_STEP[event_type]}_sessions")

    return (
        fact_clickstream.groupBy(EVENT_DATE)
        .agg(
            F.count_distinct(session).alias("sessions"),
            *(sessions_with(step) for step in _STEP),
            F.count_if(kind == "product_view").alias("product_views"),
            F.count_if(kind == "add_to_cart").alias("cart_additions"),
            F.count_if(kind == "checkout").alias("checkouts"),
        )
        .withColumn("conversion_rate", F.round(F.col("checkout_sessions") / F.col("sessions"), 4))
    )


_STEP = {"product_view": "product_view", "add_to_cart": "cart", "checkout": "checkout"}
