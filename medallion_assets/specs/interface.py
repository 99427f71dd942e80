"""The interface layer, declared as data: the views the warehouse sync creates or replaces over its
copies of the gold tables, for analysts and BI tools.

One declaration serves DuckDB and BigQuery: `sql` is standard SQL both engines run (no dialect
functions: CASE rather than COUNTIF/count_if, year and month columns rather than date_trunc), and
names each table it reads as `{name}`. A view lives in a schema: `gold` beside the tables, or
`analytics` (a DuckDB schema; in BigQuery the dataset MEDALLION_BIGQUERY_ANALYTICS_DATASET).
Adding a view is adding one `WarehouseView(...)` below; warehouse/assets.py builds its asset.
"""

from __future__ import annotations

from dataclasses import dataclass

from medallion_assets.specs.gold import EVENT_DATE, ORDER_DATE

ANALYTICS = "analytics"


@dataclass(frozen=True)
class WarehouseView:
    """A view over the warehouse's copies of gold tables; `reads` names them (gold table names)."""

    name: str
    description: str
    sql: str
    reads: tuple[str, ...]
    schema: str = "gold"

    @property
    def asset_path(self) -> tuple[str, ...]:
        return ("warehouse", self.name) if self.schema == "gold" else ("warehouse", self.schema, self.name)

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"


def _count_if(condition: str) -> str:
    return f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)"


LIVE_DAILY_ORDERS = WarehouseView(
    name="live_daily_orders",
    description=(
        "Orders per day up to the minute: the batch lane's daily_order_report, plus the checkouts "
        "the web shop's events reported whose order the batch lane has not brought yet (in no "
        "fact_orders row). An order is counted by one lane only: once batch has it, its checkout "
        "drops out. Revenue is the batch lane's (events carry no amounts)."
    ),
    sql=f"""
WITH live AS (
    SELECT c.{EVENT_DATE} AS {ORDER_DATE}, COUNT(DISTINCT c.order_id) AS live_orders
    FROM {{fact_clickstream}} c
    WHERE c.event_type = 'checkout'
      AND NOT EXISTS (SELECT 1 FROM {{fact_orders}} f WHERE f.order_id = c.order_id)
    GROUP BY c.{EVENT_DATE}
)
SELECT COALESCE(b.{ORDER_DATE}, l.{ORDER_DATE}) AS {ORDER_DATE},
       COALESCE(b.orders, 0) + COALESCE(l.live_orders, 0) AS orders,
       COALESCE(b.orders, 0) AS batch_orders,
       COALESCE(l.live_orders, 0) AS live_orders,
       b.total_revenue AS batch_revenue
FROM {{daily_order_report}} b
FULL OUTER JOIN live l ON b.{ORDER_DATE} = l.{ORDER_DATE}""",
    reads=("fact_clickstream", "fact_orders", "daily_order_report"),
)

DAILY_REVENUE = WarehouseView(
    name="daily_revenue",
    schema=ANALYTICS,
    description=(
        "Per order date, over revenue orders (not canceled or unavailable, with items): orders, "
        "distinct customers, items, revenue (items + freight), freight, payments, and the orders "
        "delivered and delivered late. Sums in R$, exact to the cent."
    ),
    sql=f"""
SELECT {ORDER_DATE},
       COUNT(*) AS orders,
       COUNT(DISTINCT customer_unique_id) AS customers,
       SUM(item_count) AS items,
       SUM(revenue) AS revenue,
       SUM(freight_value) AS freight_value,
       SUM(payment_total) AS payments,
       {_count_if("order_delivered_customer_date IS NOT NULL")} AS delivered_orders,
       {_count_if("is_late")} AS late_orders
FROM {{orders_wide}}
WHERE is_revenue_order
GROUP BY {ORDER_DATE}""",
    reads=("orders_wide",),
)

CATEGORY_DAILY = WarehouseView(
    name="category_daily",
    schema=ANALYTICS,
    description=(
        "Per order date and product category (English name): items, orders, revenue, average and "
        "median item revenue, and the category's share of the day's revenue (0-1)."
    ),
    sql=f"""
SELECT {ORDER_DATE},
       product_category,
       items,
       orders,
       total_revenue AS revenue,
       avg_item_revenue,
       median_item_revenue,
       ROUND(total_revenue / SUM(total_revenue) OVER (PARTITION BY {ORDER_DATE}), 4) AS revenue_share
FROM {{daily_category_report}}""",
    reads=("daily_category_report",),
)

CUSTOMER_SEGMENTS = WarehouseView(
    name="customer_segments",
    schema=ANALYTICS,
    description=(
        "Per RFM segment (customer_rfm): customers, their revenue, average recency in days, "
        "frequency and R/F/M scores, and the segment's share of customers and of revenue (0-1)."
    ),
    sql="""
SELECT segment,
       COUNT(*) AS customers,
       SUM(monetary) AS revenue,
       ROUND(AVG(recency_days), 1) AS avg_recency_days,
       ROUND(AVG(frequency), 3) AS avg_frequency,
       ROUND(AVG(r_score), 2) AS avg_r_score,
       ROUND(AVG(f_score), 2) AS avg_f_score,
       ROUND(AVG(m_score), 2) AS avg_m_score,
       ROUND(COUNT(*) / SUM(COUNT(*)) OVER (), 4) AS customer_share,
       ROUND(SUM(monetary) / SUM(SUM(monetary)) OVER (), 4) AS revenue_share
FROM {customer_rfm}
GROUP BY segment""",
    reads=("customer_rfm",),
)

DELIVERY_PERFORMANCE = WarehouseView(
    name="delivery_performance",
    schema=ANALYTICS,
    description=(
        "Per customer state (at purchase) and order month, over delivered orders: deliveries, late "
        "ones (after the estimated day) and their share (0-1), delivery days in total and on "
        "average, and the average review score. Sum the counts to aggregate over months or states."
    ),
    sql=f"""
SELECT customer_state,
       order_year,
       order_month,
       COUNT(*) AS delivered_orders,
       {_count_if("is_late")} AS late_orders,
       ROUND({_count_if("is_late")} / COUNT(*), 4) AS late_share,
       SUM(delivery_days) AS total_delivery_days,
       ROUND(AVG(delivery_days), 2) AS avg_delivery_days,
       ROUND(AVG(latest_review_score), 2) AS avg_review_score
FROM {{orders_wide}}
WHERE order_delivered_customer_date IS NOT NULL
GROUP BY customer_state, order_year, order_month""",
    reads=("orders_wide",),
)

SELLER_SCORECARD = WarehouseView(
    name="seller_scorecard",
    schema=ANALYTICS,
    description=(
        "Per seller (current city and state), over revenue orders: orders, items, revenue, the "
        "average review score of their orders, delivered and late orders and the late share (0-1), "
        "first and last sale date. An order counts once per seller whatever its items."
    ),
    sql=f"""
WITH per_order AS (
    SELECT seller_id, order_id,
           MIN({ORDER_DATE}) AS {ORDER_DATE},
           COUNT(*) AS items,
           SUM(item_revenue) AS revenue,
           MAX(latest_review_score) AS review_score,
           MAX(CASE WHEN is_late IS NOT NULL THEN 1 ELSE 0 END) AS delivered,
           MAX(CASE WHEN is_late THEN 1 ELSE 0 END) AS late
    FROM {{order_items_wide}}
    WHERE is_revenue_order
    GROUP BY seller_id, order_id
)
SELECT p.seller_id,
       s.seller_city,
       s.seller_state,
       COUNT(*) AS orders,
       SUM(p.items) AS items,
       SUM(p.revenue) AS revenue,
       ROUND(AVG(p.review_score), 2) AS avg_review_score,
       SUM(p.delivered) AS delivered_orders,
       SUM(p.late) AS late_orders,
       ROUND(SUM(p.late) / NULLIF(SUM(p.delivered), 0), 4) AS late_share,
       MIN(p.{ORDER_DATE}) AS first_sale_date,
       MAX(p.{ORDER_DATE}) AS last_sale_date
FROM per_order p
LEFT JOIN {{dim_seller}} s ON s.seller_id = p.seller_id AND s.is_current
GROUP BY p.seller_id, s.seller_city, s.seller_state""",
    reads=("order_items_wide", "dim_seller"),
)

WAREHOUSE_VIEWS: dict[str, WarehouseView] = {
    view.qualified_name: view
    for view in (
        LIVE_DAILY_ORDERS,
        DAILY_REVENUE,
        CATEGORY_DAILY,
        CUSTOMER_SEGMENTS,
        DELIVERY_PERFORMANCE,
        SELLER_SCORECARD,
    )
}
ANALYTICS_VIEWS: dict[str, WarehouseView] = {
    v.name: v for v in WAREHOUSE_VIEWS.values() if v.schema == ANALYTICS
}
