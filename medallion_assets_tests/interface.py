"""What the analytics views (specs/interface.py) must hold, worked out in plain Python from the gold
tables in the lake (read with delta-rs): the views' SQL is checked against an independent
computation, on DuckDB and on BigQuery alike."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from statistics import mean

from deltalake import DeltaTable

from medallion_assets.resources.warehouse import WarehouseIOManager
from medallion_assets.specs.interface import ANALYTICS_VIEWS

# Each view's key columns, and how many decimals a rounded column keeps (the rest compare exactly).
VIEW_KEYS = {
    "daily_revenue": ("order_date",),
    "category_daily": ("order_date", "product_category"),
    "customer_segments": ("segment",),
    "delivery_performance": ("customer_state", "order_year", "order_month"),
    "seller_scorecard": ("seller_id",),
}
ROUNDED = {
    "revenue_share": 4,
    "customer_share": 4,
    "late_share": 4,
    "avg_recency_days": 1,
    "avg_frequency": 3,
    "avg_delivery_days": 2,
    "avg_review_score": 2,
    **{f"avg_{m}_score": 2 for m in "rfm"},
}


def gold_rows(lake: Path | str, name: str) -> list[dict]:
    return DeltaTable(f"{lake}/gold/{name}").to_pyarrow_table().to_pylist()


def _group(rows: Iterable[dict], key: Callable[[dict], object]) -> dict[object, list[dict]]:
    groups: dict[object, list[dict]] = defaultdict(list)
    for row in rows:
        groups[key(row)].append(row)
    return groups


def _late(rows: list[dict]) -> int:
    return sum(1 for r in rows if r["is_late"])


def _average(values: Iterable[object]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return mean(present) if present else None


def expected_views(lake: Path | str) -> dict[str, dict[tuple, dict]]:
    orders = gold_rows(lake, "fact_orders")
    by_order = {o["order_id"]: o for o in orders}
    state_of = {c["customer_key"]: c["customer_state"] for c in gold_rows(lake, "dim_customer")}
    revenue_orders = [o for o in orders if o["is_revenue_order"]]

    daily = {
        (day,): {
            "orders": len(rows),
            "customers": len({r["customer_unique_id"] for r in rows} - {None}),  # as COUNT(DISTINCT)
            "items": sum(r["item_count"] for r in rows),
            "revenue": sum(r["revenue"] for r in rows),
            "freight_value": sum(r["freight_value"] for r in rows),
            "payments": sum(r["payment_total"] for r in rows),
            "delivered_orders": sum(1 for r in rows if r["order_delivered_customer_date"] is not None),
            "late_orders": _late(rows),
        }
        for day, rows in _group(revenue_orders, lambda r: r["order_date"]).items()
    }

    categories = gold_rows(lake, "daily_category_report")
    day_revenue = {
        d: sum(r["total_revenue"] for r in rows)
        for d, rows in _group(categories, lambda r: r["order_date"]).items()
    }
    category_daily = {
        (r["order_date"], r["product_category"]): {
            "items": r["items"],
            "orders": r["orders"],
            "revenue": r["total_revenue"],
            "median_item_revenue": r["median_item_revenue"],
            "revenue_share": float(r["total_revenue"] / day_revenue[r["order_date"]]),
        }
        for r in categories
    }

    rfm = gold_rows(lake, "customer_rfm")
    all_revenue = sum(r["monetary"] for r in rfm)
    segments = {
        (segment,): {
            "customers": len(rows),
            "revenue": sum(r["monetary"] for r in rows),
            "avg_recency_days": _average(r["recency_days"] for r in rows),
            "avg_frequency": _average(r["frequency"] for r in rows),
            **{f"avg_{m}_score": _average(r[f"{m}_score"] for r in rows) for m in "rfm"},
            "customer_share": len(rows) / len(rfm),
            "revenue_share": float(sum(r["monetary"] for r in rows) / all_revenue),
        }
        for segment, rows in _group(rfm, lambda r: r["segment"]).items()
    }

    delivered = [o for o in orders if o["order_delivered_customer_date"] is not None]
    delivery = {
        key: {
            "delivered_orders": len(rows),
            "late_orders": _late(rows),
            "late_share": _late(rows) / len(rows),
            "total_delivery_days": sum(r["delivery_days"] for r in rows),
            "avg_delivery_days": _average(r["delivery_days"] for r in rows),
            "avg_review_score": _average(r["latest_review_score"] for r in rows),
        }
        for key, rows in _group(
            delivered,
            lambda o: (state_of.get(o["customer_key"]), o["order_date"].year, o["order_date"].month),
        ).items()
    }

    current = {s["seller_id"]: s for s in gold_rows(lake, "dim_seller") if s["is_current"]}
    sold = [i for i in gold_rows(lake, "fact_order_items") if i["is_revenue_order"]]
    scorecard = {}
    for seller, items in _group(sold, lambda i: i["seller_id"]).items():
        seller_orders = [by_order[o] for o in {i["order_id"] for i in items}]
        delivered_here = [o for o in seller_orders if o["is_late"] is not None]
        scorecard[(seller,)] = {
            "seller_city": current[seller]["seller_city"],
            "seller_state": current[seller]["seller_state"],
            "orders": len(seller_orders),
            "items": len(items),
            "revenue": sum(i["item_revenue"] for i in items),
            "avg_review_score": _average(o["latest_review_score"] for o in seller_orders),
            "delivered_orders": len(delivered_here),
            "late_orders": _late(delivered_here),
            "late_share": _late(delivered_here) / len(delivered_here) if delivered_here else None,
            "first_sale_date": min(i["order_date"] for i in items),
            "last_sale_date": max(i["order_date"] for i in items),
        }
    return {
        "daily_revenue": daily,
        "category_daily": category_daily,
        "customer_segments": segments,
        "delivery_performance": delivery,
        "seller_scorecard": scorecard,
    }


def _same(column: str, got: object, want: object) -> bool:
    if got is None or want is None:
        return got is None and want is None
    if column in ROUNDED:
        return abs(float(got) - float(want)) <= 0.5 * 10 ** -ROUNDED[column] + 1e-9
    if isinstance(want, dt.date | str):
        return got == want
    return Decimal(str(got)) == Decimal(str(want))  # counts and money: exact


def view_rows(warehouse: WarehouseIOManager, name: str) -> list[dict]:
    view = ANALYTICS_VIEWS[name]
    return warehouse.query(f"SELECT * FROM {warehouse.view_ref(view.name, view.schema)}").to_pylist()


def assert_analytics_views_equal_gold(lake: Path | str, warehouse: WarehouseIOManager) -> None:
    """Every analytics view holds exactly the rows worked out from gold (money to the cent)."""
    for name, expected in expected_views(lake).items():
        rows = view_rows(warehouse, name)
        got = {tuple(r[k] for k in VIEW_KEYS[name]): r for r in rows}
        assert len(got) == len(rows), f"{name}: duplicated keys"
        assert set(got) == set(expected), name
        assert expected, f"{name} is empty: the test would prove nothing"
        for key, want in expected.items():
            differing = {c: (got[key][c], v) for c, v in want.items() if not _same(c, got[key][c], v)}
            assert not differing, f"{name} {key}: {differing}"
