"""Gold tables, declared as data: the dimensions, facts, reports and wide tables, and how the three
SCD2 dimensions are built (which source, member, attributes and use of each).

Gold tables are rebuilt whole (dimensions, features) or per order-date partition (facts, reports);
the code that builds them is in gold/. Adding a gold table is adding one `gold_table(...)` to one
of the dictionaries below.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from medallion_assets.specs.columns import (
    BRAZIL_STATES,
    ID_PATTERN,
    ORDER_STATUSES,
    Column,
    _amount,
    _count,
    _id,
    _place,
    _state,
)
from medallion_assets.specs.events import CLICKSTREAM, EVENT_ID_PATTERN
from medallion_assets.specs.lake import LakeTable
from medallion_assets.specs.quality import Drift, Reference, Rule

ORDER_DATE = "order_date"
EVENT_DATE = "event_date"  # the partition column of the clickstream's gold tables


def gold_table(
    name: str,
    primary_key: tuple[str, ...],
    description: str,
    columns: tuple[Column, ...],
    by_order_date: bool = False,
    by_event_date: bool = False,
    **quality,
) -> LakeTable:
    """Gold tables are rebuilt whole (dimensions, features) or per order-date partition (facts, reports),
    or per event-date partition (the clickstream's)."""
    return LakeTable(
        layer="gold",
        name=name,
        primary_key=primary_key,
        partition_column=ORDER_DATE if by_order_date else EVENT_DATE if by_event_date else None,
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
            zorder_by=("customer_key",),
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
            zorder_by=("product_key", "seller_key"),
        ),
        gold_table(
            "fact_clickstream",
            ("event_id",),
            "One row per web shop event (silver/clickstream) with the customer and product versions "
            "valid at the event's time, or their first version for an event before it (the source "
            "records them at their first order); null where the event has none.",
            (
                Column("event_id", required=True, pattern=EVENT_ID_PATTERN),
                Column(EVENT_DATE, "date", required=True),
                Column("event_date_key", "int", required=True),
                Column("event_time", "timestamp", required=True),
                Column("event_type", required=True, allowed=CLICKSTREAM.event_types),
                Column("session_id", required=True, pattern=EVENT_ID_PATTERN),
                Column("page", required=True),
                # Null where the event has none (an anonymous visitor, a page without a product).
                Column("customer_key", "long"),
                Column("customer_unique_id", pattern=ID_PATTERN),
                Column("product_key", "long"),
                Column("product_id", pattern=ID_PATTERN),
                Column("order_id", pattern=ID_PATTERN),
            ),
            by_event_date=True,
            drift=Drift(clock="bronze/orders"),
            references=(
                _to_dimension("customer_key", "dim_customer", "customer_key"),
                _to_dimension("product_key", "dim_product", "product_key"),
                Reference("event_date_key", "gold/dim_date", "date_key", unknown=None),
            ),
            cluster_by=("event_type", "session_id"),
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
            "daily_funnel_report",
            (EVENT_DATE,),
            "Per event date, the shopping funnel: sessions, and the sessions that viewed a product, "
            "filled a cart and checked out; product views, cart additions and checkouts; the share of "
            "sessions that checked out. A session crossing midnight counts on both days.",
            (
                Column(EVENT_DATE, "date", required=True),
                *(
                    Column(name, "long", required=True, min_value=0)
                    for name in (
                        "sessions",
                        "product_view_sessions",
                        "cart_sessions",
                        "checkout_sessions",
                        "product_views",
                        "cart_additions",
                        "checkouts",
                    )
                ),
                Column("conversion_rate", "float", required=True, min_value=0, max_value=1),
            ),
            by_event_date=True,
            rules=(
                Rule(
                    "equals_fact_clickstream",
                    "Each day's sessions and checkouts equal those of fact_clickstream.",
                    f"""SELECT COALESCE(r.{EVENT_DATE}, f.{EVENT_DATE}) AS {EVENT_DATE},
                               r.sessions, f.sessions AS fact_sessions,
                               r.checkouts, f.checkouts AS fact_checkouts
                        FROM rows r FULL JOIN (
                            SELECT {EVENT_DATE}, COUNT(DISTINCT session_id) AS sessions,
                                   COUNT_IF(event_type = 'checkout') AS checkouts
                            FROM fact_clickstream GROUP BY {EVENT_DATE}) f
                          ON r.{EVENT_DATE} = f.{EVENT_DATE}
                        WHERE r.sessions IS DISTINCT FROM f.sessions
                           OR r.checkouts IS DISTINCT FROM f.checkouts""",
                    reads=("gold/fact_clickstream",),
                ),
            ),
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


# ------------------------------------------------------------------------------ wide tables (OBT)


def _equals_fact(fact: str, sums: tuple[str, ...]) -> Rule:
    """Per order date, the wide table has the fact's rows and the same sums: it adds attributes, never
    rows or money."""
    ours = ", ".join(f"SUM({c}) AS {c}" for c in sums)
    differs = " OR ".join(f"w.{c} IS DISTINCT FROM f.{c}" for c in ("n", *sums))
    return Rule(
        f"equals_{fact}",
        f"Per order date, the same rows and sums of {', '.join(sums)} as {fact}.",
        f"""SELECT COALESCE(w.{ORDER_DATE}, f.{ORDER_DATE}) AS {ORDER_DATE},
                   w.n AS rows_here, f.n AS fact_rows
            FROM (SELECT {ORDER_DATE}, COUNT(*) AS n, {ours} FROM rows GROUP BY {ORDER_DATE}) w
            FULL JOIN (SELECT {ORDER_DATE}, COUNT(*) AS n, {ours} FROM {fact} GROUP BY {ORDER_DATE}) f
              ON w.{ORDER_DATE} = f.{ORDER_DATE}
            WHERE {differs}""",
        reads=(f"gold/{fact}",),
    )


# dim_date's attributes of the order date, as orders_wide names them (dim_date's name: ours).
ORDER_CALENDAR_NAMES = {
    **{
        n: f"order_{n}"
        for n in ("year", "quarter", "month", "month_name", "day_of_week", "day_name", "iso_week")
    },
    **{n: n for n in ("is_weekend", "is_holiday", "holiday_name")},
}
ORDER_CALENDAR = tuple(
    replace(column, name=ORDER_CALENDAR_NAMES[column.name])
    for column in GOLD_DIMENSIONS["dim_date"].columns
    if column.name in ORDER_CALENDAR_NAMES
)
ORDER_STATUS = Column("order_status", required=True, allowed=ORDER_STATUSES)
ORDER_OUTCOME = (
    Column("latest_review_score", "int", min_value=1, max_value=5),
    Column("delivery_days", "int"),
    _flag("is_late"),
    _flag("is_revenue_order", required=True),
)

GOLD_WIDE: dict[str, LakeTable] = {
    t.name: t
    for t in (
        gold_table(
            "orders_wide",
            ("order_id",),
            "One row per order for analysts (one big table): fact_orders with the customer's address, "
            "its zip's position and the calendar of the order date, as they were at purchase time, "
            "and the customer's current address beside them (customer_moved says they differ).",
            (
                *GOLD_FACTS["fact_orders"].columns,  # the order's facts, then its attributes
                *_place("customer"),
                Column("customer_latitude", "float", min_value=-34.0, max_value=5.5),
                Column("customer_longitude", "float", min_value=-74.0, max_value=-28.5),
                *ORDER_CALENDAR,
                *_place("current_customer"),
                _flag("customer_moved", required=True),
            ),
            by_order_date=True,
            rules=(_equals_fact("fact_orders", ("revenue", "payment_total", "freight_value")),),
            cluster_by=("customer_state", "order_status"),
        ),
        gold_table(
            "order_items_wide",
            ("order_id", "order_item_id"),
            "One row per order item for analysts (one big table): fact_order_items with the product "
            "(category, size, weight) and the seller (address) as they were at purchase time, the "
            "customer's state then, and the order's status, review and delivery.",
            (
                *GOLD_FACTS["fact_order_items"].columns[:2],
                *ORDER_DATE_COLUMNS,
                ORDER_STATUS,
                Column("shipping_limit_date", "timestamp"),
                _amount("price"),
                _amount("freight_value"),
                _total("item_revenue"),
                _key("product_key"),
                _id("product_id"),
                Column("product_category", required=True, max_length=100),
                Column("product_category_name", max_length=100),
                *(_count(f"product_{m}") for m in ("weight_g", "length_cm", "height_cm", "width_cm")),
                _key("seller_key"),
                _id("seller_id"),
                *_place("seller"),
                _key("customer_key"),
                _state("customer_state"),
                *ORDER_OUTCOME,
            ),
            by_order_date=True,
            rules=(_equals_fact("fact_order_items", ("item_revenue", "price", "freight_value")),),
            cluster_by=("product_category", "seller_id"),
        ),
    )
}


# --------------------------------------------------------------------------------- SCD2 dimensions

# The product_category of a product with neither an English nor a Portuguese category name.
UNKNOWN_CATEGORY = "unknown"


@dataclass(frozen=True)
class Scd2Dimension:
    """An SCD2 dimension names its source table, the member it versions (a person is a
    customer_unique_id, with one customer_id per order), the attributes whose change makes a new
    version, and the column of orders/order_items that uses a record (its first use starts its first
    version, so an order always finds the version it used). gold/dimensions.py builds them all with
    one function."""

    table: LakeTable
    source: str
    member: str
    surrogate_key: str
    attributes: tuple[str, ...]
    used_by: tuple[str, str]  # (silver table, column) whose rows use a record
    record_attributes: tuple[str, ...] = ()  # record columns that are not versioned (the member id)


SCD2_DIMENSIONS: tuple[Scd2Dimension, ...] = (
    Scd2Dimension(
        table=GOLD_DIMENSIONS["dim_customer"],
        source="customers",
        member="customer_unique_id",
        surrogate_key="customer_key",
        attributes=("customer_zip_code_prefix", "customer_city", "customer_state"),
        used_by=("orders", "customer_id"),
        record_attributes=("customer_unique_id",),
    ),
    Scd2Dimension(
        table=GOLD_DIMENSIONS["dim_product"],
        source="products",
        member="product_id",
        surrogate_key="product_key",
        attributes=(
            "product_category_name",
            "product_weight_g",
            "product_length_cm",
            "product_height_cm",
            "product_width_cm",
        ),
        used_by=("order_items", "product_id"),
    ),
    Scd2Dimension(
        table=GOLD_DIMENSIONS["dim_seller"],
        source="sellers",
        member="seller_id",
        surrogate_key="seller_key",
        attributes=("seller_zip_code_prefix", "seller_city", "seller_state"),
        used_by=("order_items", "seller_id"),
    ),
)
SCD2_BY_NAME = {d.table.name: d for d in SCD2_DIMENSIONS}
