"""A small hand-made Olist shop whose gold values can be worked out on paper.

Six orders over three days: a person who moved between orders (two customer_ids), a category
without translation, a product without category, a canceled order (canceled 9 days later), an order
without items, a late review (19 days later), an even and an odd number of items per category and
day, and averages that end in half a cent.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pyarrow as pa

from medallion_assets.specs import TABLES_BY_NAME
from olist_source.kaggle_csv import write_table


def _id(name: str) -> str:
    return (name.encode().hex() + "0" * 32)[:32]


def at(day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(2018, 3, 1) + dt.timedelta(days=day - 1, hours=hour, minutes=minute)


P1, P2, P3, P4, P5 = (_id(f"person{i}") for i in range(1, 6))
CUSTOMERS = [  # customer_id, person, zip, city, state
    (_id("c1"), P1, "01001", "sao paulo", "SP"),
    (_id("c2"), P1, "20000", "rio de janeiro", "RJ"),  # P1 moved before the second order
    (_id("c3"), P2, "30100", "belo horizonte", "MG"),
    (_id("c4"), P3, "40000", "salvador", "BA"),
    (_id("c5"), P4, "01001", "sao paulo", "SP"),
    (_id("c6"), P5, "80000", "curitiba", "PR"),
]
PRODUCTS = [  # product_id, category
    (_id("p1"), "beleza_saude"),
    (_id("p2"), "categoria_nova"),  # no translation: the Portuguese name is shown
    (_id("p3"), None),  # no category: 'unknown'
]
SELLERS = [(_id("s1"), "01001", "sao paulo", "SP"), (_id("s2"), "30100", "belo horizonte", "MG")]
TRANSLATION = [("beleza_saude", "health_beauty")]
# order_id, customer, status, purchase, approved, carrier, delivered, estimated
ORDERS = [
    (_id("o1"), _id("c1"), "delivered", at(1, 10), at(1, 11), at(2, 9), at(5, 18), at(4)),  # late
    (_id("o2"), _id("c3"), "delivered", at(1, 11), at(1, 12), at(2, 9), at(3, 15), at(10)),
    (_id("o3"), _id("c5"), "canceled", at(1, 12), at(10, 12), None, None, at(12)),  # canceled ~day 10
    (_id("o4"), _id("c6"), "invoiced", at(2, 9), at(2, 10), None, None, at(9)),  # no items
    (_id("o5"), _id("c2"), "delivered", at(2, 15), at(2, 16), at(3, 9), at(6, 12), at(8)),
    (_id("o6"), _id("c4"), "shipped", at(3, 8), at(3, 9), at(4, 9), None, at(11)),
]
ITEMS = [  # order, item number, product, seller, price, freight
    (_id("o1"), 1, _id("p1"), _id("s1"), "10.05", "0.00"),
    (_id("o1"), 2, _id("p1"), _id("s1"), "10.10", "0.00"),  # median of two: 10.075 -> 10.08
    (_id("o2"), 1, _id("p2"), _id("s2"), "100.00", "15.50"),
    (_id("o2"), 2, _id("p3"), _id("s2"), "30.00", "5.00"),  # 170.65 / 2 orders = 85.325 -> 85.33
    (_id("o3"), 1, _id("p1"), _id("s1"), "50.00", "5.00"),  # canceled: in no report
    (_id("o5"), 1, _id("p1"), _id("s1"), "40.00", "10.00"),
    (_id("o5"), 2, _id("p2"), _id("s2"), "20.00", "0.00"),
    (_id("o6"), 1, _id("p1"), _id("s1"), "100.00", "0.00"),
    (_id("o6"), 2, _id("p1"), _id("s2"), "5.00", "0.00"),
    (_id("o6"), 3, _id("p1"), _id("s1"), "7.00", "0.00"),  # median of three: 7.00
]
PAYMENTS = [
    (_id("o1"), 1, "credit_card", 1, "20.15"),
    (_id("o2"), 1, "boleto", 1, "150.50"),
    (_id("o3"), 1, "credit_card", 3, "55.00"),
    (_id("o5"), 1, "voucher", 1, "30.00"),
    (_id("o5"), 2, "credit_card", 2, "40.00"),
    (_id("o6"), 1, "debit_card", 1, "112.00"),
]
REVIEWS = [  # review_id, order, score, created, answered
    (_id("r1"), _id("o1"), 2, at(6), at(7, 10)),
    (_id("r2"), _id("o1"), 5, at(20), at(21, 8)),  # late review: the latest counts
    (_id("r3"), _id("o2"), 4, at(4), at(4, 20)),
]
END = at(22)  # after the last change


def by_column(table: str, rows: list[tuple]) -> dict[str, tuple]:
    """Rows given as tuples in the spec's column order, as {column: values}."""
    names = [c.name for c in TABLES_BY_NAME[table].columns]
    return dict(zip(names, zip(*rows, strict=True), strict=True))


def write_handmade(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    nulls = [None] * 7
    tables = {
        "customers": dict(
            zip(
                [
                    "customer_id",
                    "customer_unique_id",
                    "customer_zip_code_prefix",
                    "customer_city",
                    "customer_state",
                ],
                zip(*CUSTOMERS, strict=True),
                strict=True,
            )
        ),
        "geolocation": {
            "geolocation_zip_code_prefix": ["01001", "01001", "20000"],
            "geolocation_lat": [-23.55, -23.56, -22.9],
            "geolocation_lng": [-46.63, -46.64, -43.2],
            "geolocation_city": ["sao paulo", "são paulo", "rio de janeiro"],
            "geolocation_state": ["SP", "SP", "RJ"],
        },
        "orders": by_column("orders", ORDERS),
        "order_items": {
            "order_id": [i[0] for i in ITEMS],
            "order_item_id": [i[1] for i in ITEMS],
            "product_id": [i[2] for i in ITEMS],
            "seller_id": [i[3] for i in ITEMS],
            "shipping_limit_date": [at(5)] * len(ITEMS),
            "price": [Decimal(i[4]) for i in ITEMS],
            "freight_value": [Decimal(i[5]) for i in ITEMS],
        },
        "order_payments": by_column("order_payments", [(*p[:4], Decimal(p[4])) for p in PAYMENTS]),
        "order_reviews": {
            "review_id": [r[0] for r in REVIEWS],
            "order_id": [r[1] for r in REVIEWS],
            "review_score": [r[2] for r in REVIEWS],
            "review_comment_title": nulls[: len(REVIEWS)],
            "review_comment_message": ["ruim, atrasou", "chegou, ótimo", None],
            "review_creation_date": [r[3] for r in REVIEWS],
            "review_answer_timestamp": [r[4] for r in REVIEWS],
        },
        "products": {
            "product_id": [p[0] for p in PRODUCTS],
            "product_category_name": [p[1] for p in PRODUCTS],
            **{c: [100] * len(PRODUCTS) for c in [c.name for c in TABLES_BY_NAME["products"].columns][2:]},
        },
        "sellers": by_column("sellers", SELLERS),
        "product_category_name_translation": {
            "product_category_name": [t[0] for t in TRANSLATION],
            "product_category_name_english": [t[1] for t in TRANSLATION],
        },
    }
    for name, columns in tables.items():
        spec = TABLES_BY_NAME[name]
        table = pa.table(
            {c.name: pa.array(list(columns[c.name]), c.type_names.arrow) for c in spec.csv_columns}
        )
        write_table(spec, table, out / spec.csv_file)
    return out


# ------------------------------------------------------------------ expected values, worked out in Python

REVENUE_STATUSES_EXCLUDED = {"canceled", "unavailable"}


def half_up(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def revenue_orders() -> dict[str, tuple[dt.date, Decimal, str]]:
    """order_id -> (order date, revenue, person) for orders with items and a revenue status."""
    person = {c[0]: c[1] for c in CUSTOMERS}
    revenue: dict[str, Decimal] = defaultdict(Decimal)
    for order, _, _, _, price, freight in ITEMS:
        revenue[order] += Decimal(price) + Decimal(freight)
    return {
        o[0]: (o[3].date(), revenue[o[0]], person[o[1]])
        for o in ORDERS
        if o[2] not in REVENUE_STATUSES_EXCLUDED and o[0] in revenue
    }


def expected_daily_orders() -> dict[dt.date, tuple[int, Decimal, Decimal]]:
    by_day: dict[dt.date, list[Decimal]] = defaultdict(list)
    for day, revenue, _ in revenue_orders().values():
        by_day[day].append(revenue)
    return {d: (len(v), sum(v, Decimal(0)), half_up(sum(v, Decimal(0)) / len(v))) for d, v in by_day.items()}


def expected_daily_categories() -> dict[tuple[dt.date, str], tuple[int, int, Decimal, Decimal, Decimal]]:
    orders = revenue_orders()
    label = {p[0]: p[1] for p in PRODUCTS}
    english = dict(TRANSLATION)
    groups: dict[tuple[dt.date, str], list[tuple[str, Decimal]]] = defaultdict(list)
    for order, _, product, _, price, freight in ITEMS:
        if order in orders:
            category = label[product]
            name = english.get(category, category) if category else "unknown"
            groups[(orders[order][0], name)].append((order, Decimal(price) + Decimal(freight)))
    expected = {}
    for key, rows in groups.items():
        values = sorted(v for _, v in rows)
        n = len(values)
        middle = values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2
        total = sum(values, Decimal(0))
        expected[key] = (n, len({o for o, _ in rows}), total, half_up(total / n), half_up(middle))
    return expected
