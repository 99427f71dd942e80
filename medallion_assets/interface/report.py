"""`medallion report`: one static HTML page of charts over the warehouse's analytics views and the
platform's data quality, self-contained (plotly.js inlined: it opens offline, from a file or a mail).

The numbers come from the views of specs/interface.py, so the page shows what a BI tool pointed at
the warehouse shows; the quality summary from the Dagster instance (the latest evaluation of every
check, per layer) and the quarantine tables (rows per rule, counted in Spark). Only aggregates leave
the warehouse and Spark: a few hundred rows whatever the data's size.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import dagster as dg
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from medallion_assets.resources.delta_lake import Lake
from medallion_assets.resources.spark import SparkResource
from medallion_assets.resources.warehouse import WarehouseIOManager
from medallion_assets.specs import QUARANTINE_TABLES
from medallion_assets.specs.events import EVENT_QUARANTINE_TABLES
from medallion_assets.specs.interface import ANALYTICS_VIEWS

TOP_CATEGORIES = 15
TOP_SELLERS = 10
LAYERS = ("bronze", "silver", "quarantine", "gold", "warehouse")


@dataclass(frozen=True)
class CheckCounts:
    passed: int = 0
    warned: int = 0  # failed WARN checks: a finding, not a failure
    failed: int = 0  # failed ERROR checks
    # No evaluation in the latest execution: never run, skipped, still running, or its step failed
    # (the run's failure alert tells a person which).
    not_run: int = 0


@dataclass(frozen=True)
class Quality:
    checks: Mapping[str, CheckCounts]  # per layer
    quarantined: list[tuple[str, str, int]]  # (table, rule, rows), most rows first


def check_summary(
    instance: dg.DagsterInstance, check_keys: Iterable[dg.AssetCheckKey]
) -> dict[str, CheckCounts]:
    """Per layer (the asset key's first part), the latest evaluation of each check."""
    keys = list(check_keys)
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    counts: dict[str, dict[str, int]] = {}
    for key in keys:
        layer = counts.setdefault(
            key.asset_key.path[0], {"passed": 0, "warned": 0, "failed": 0, "not_run": 0}
        )
        record = latest.get(key)
        evaluation = record.evaluation if record else None
        if evaluation is None:
            layer["not_run"] += 1
        elif evaluation.passed:
            layer["passed"] += 1
        elif evaluation.severity == dg.AssetCheckSeverity.WARN:
            layer["warned"] += 1
        else:
            layer["failed"] += 1
    order = {name: i for i, name in enumerate(LAYERS)}
    return {name: CheckCounts(**counts[name]) for name in sorted(counts, key=lambda n: (order.get(n, 99), n))}


def quarantined_by_rule(spark: SparkSession, lake: Lake) -> list[tuple[str, str, int]]:
    """(table, rule, rows) over every quarantine table, counted in one Spark job. Tables whose Delta
    log shows no row are left out of it: most are empty on a clean day, and each table a query
    reads costs Spark a job to list its files (~0.3-0.5 s)."""
    frames = []
    for table in (*QUARANTINE_TABLES, *EVENT_QUARANTINE_TABLES):
        key = dg.AssetKey(table.asset_path)
        log = lake.open(lake.uri(key))
        if log is not None and lake.rows_in(log, None) != 0:
            rows = lake.table(spark, key, columns=["rule"], log=log)
            frames.append(rows.select(F.lit(table.name).alias("table"), "rule"))
    if not frames:
        return []
    union = frames[0]
    for frame in frames[1:]:
        union = union.unionByName(frame)
    counted = union.groupBy("table", "rule").count().collect()
    return sorted(((r["table"], r["rule"], r["count"]) for r in counted), key=lambda t: (-t[2], t[0], t[1]))


# ------------------------------------------------------------------------------------ the numbers


def _view(warehouse: WarehouseIOManager, name: str) -> str:
    view = ANALYTICS_VIEWS[name]
    return warehouse.view_ref(view.name, view.schema)


def _rows(warehouse: WarehouseIOManager, sql: str) -> list[dict]:
    # DuckDB sums integers as HUGEINT, which Arrow carries as decimal(38,0): counts are ints again.
    return [
        {k: int(v) if isinstance(v, Decimal) and v.as_tuple().exponent == 0 else v for k, v in row.items()}
        for row in warehouse.query(sql).to_pylist()
    ]


@dataclass(frozen=True)
class Figures:
    """What the page shows, read from the analytics views."""

    daily: list[dict]  # order_date, orders, revenue
    categories: list[dict]  # product_category, revenue, items
    segments: list[dict]  # segment, customers, revenue, shares
    states: list[dict]  # customer_state, delivered_orders, late_orders, total_delivery_days
    sellers: list[dict]  # the top sellers by revenue
    totals: dict


def read_figures(warehouse: WarehouseIOManager) -> Figures:
    daily = _view(warehouse, "daily_revenue")
    return Figures(
        daily=_rows(warehouse, f"SELECT order_date, orders, revenue FROM {daily} ORDER BY order_date"),
        categories=_rows(
            warehouse,
            f"SELECT product_category, SUM(revenue) AS revenue, SUM(items) AS items "
            f"FROM {_view(warehouse, 'category_daily')} GROUP BY product_category "
            f"ORDER BY revenue DESC, product_category LIMIT {TOP_CATEGORIES}",
        ),
        segments=_rows(
            warehouse,
            f"SELECT * FROM {_view(warehouse, 'customer_segments')} ORDER BY customers DESC, segment",
        ),
        states=_rows(
            warehouse,
            f"SELECT customer_state, SUM(delivered_orders) AS delivered_orders, "
            f"SUM(late_orders) AS late_orders, SUM(total_delivery_days) AS total_delivery_days "
            f"FROM {_view(warehouse, 'delivery_performance')} WHERE customer_state IS NOT NULL "
            f"GROUP BY customer_state ORDER BY delivered_orders DESC, customer_state",
        ),
        sellers=_rows(
            warehouse,
            f"SELECT seller_id, seller_city, seller_state, orders, revenue, avg_review_score, late_share "
            f"FROM {_view(warehouse, 'seller_scorecard')} "
            f"ORDER BY revenue DESC, seller_id LIMIT {TOP_SELLERS}",
        ),
        totals=_rows(
            warehouse,
            f"SELECT SUM(orders) AS orders, SUM(revenue) AS revenue, SUM(delivered_orders) AS delivered, "
            f"SUM(late_orders) AS late, MIN(order_date) AS first_day, MAX(order_date) AS last_day "
            f"FROM {daily}",
        )[0],
    )


# ------------------------------------------------------------------------------------ the charts


def _number(value: object) -> float:
    return float(value) if isinstance(value, Decimal | int | float) else 0.0


def _layout(title: str, left_margin: int = 60, **more) -> dict:
    return {
        "title": {"text": title, "x": 0.01},
        "margin": {"l": left_margin, "r": 20, "t": 50, "b": 50},
        "height": 380,
        "template": "plotly_white",
        **more,
    }


SECOND_AXIS = {"overlaying": "y", "side": "right", "showgrid": False, "rangemode": "tozero"}


def daily_chart(figures: Figures) -> go.Figure:
    days = [row["order_date"].isoformat() for row in figures.daily]
    figure = go.Figure(
        [
            # An area, not bars: two years of days make bars a pixel wide.
            go.Scatter(
                x=days,
                y=[_number(r["revenue"]) for r in figures.daily],
                name="revenue (R$)",
                mode="lines",
                fill="tozeroy",
                line={"width": 1},
            ),
            go.Scatter(
                x=days,
                y=[r["orders"] for r in figures.daily],
                name="orders",
                yaxis="y2",
                mode="lines",
                line={"width": 1},
            ),
        ]
    )
    figure.update_layout(
        _layout(
            "Daily revenue and orders",
            xaxis={"type": "date", "tickformat": "%Y-%m-%d"},
            yaxis={"title": {"text": "revenue (R$)"}},
            yaxis2={"title": {"text": "orders"}, **SECOND_AXIS},
            legend={"orientation": "h", "y": -0.15},
        )
    )
    return figure


def category_chart(figures: Figures) -> go.Figure:
    rows = list(reversed(figures.categories))  # the largest at the top
    figure = go.Figure(
        go.Bar(
            x=[_number(r["revenue"]) for r in rows],
            y=[r["product_category"] for r in rows],
            orientation="h",
            name="revenue (R$)",
        )
    )
    figure.update_layout(_layout(f"Revenue by category (top {TOP_CATEGORIES}, R$)", left_margin=200))
    return figure


def segment_chart(figures: Figures) -> go.Figure:
    rows = figures.segments
    figure = go.Figure(
        go.Treemap(
            labels=[r["segment"] for r in rows],
            parents=["" for _ in rows],
            values=[r["customers"] for r in rows],
            marker={
                "colors": [_number(r["revenue"]) for r in rows],
                "colorscale": "Blues",
                "showscale": True,
            },
            customdata=[[_number(r["revenue"]), _number(r["avg_recency_days"])] for r in rows],
            texttemplate="%{label}<br>%{value} customers<br>R$ %{customdata[0]:,.2f}",
            hovertemplate="%{label}: %{value} customers, R$ %{customdata[0]:,.2f}, "
            "last order %{customdata[1]} days ago on average<extra></extra>",
        )
    )
    figure.update_layout(_layout("RFM segments: customers (area) and revenue (colour)"))
    return figure


def delivery_chart(figures: Figures) -> go.Figure:
    rows = figures.states
    states = [r["customer_state"] for r in rows]
    figure = go.Figure(
        [
            go.Bar(
                x=states,
                y=[round(100 * r["late_orders"] / r["delivered_orders"], 2) for r in rows],
                name="late deliveries (%)",
            ),
            go.Scatter(
                x=states,
                y=[round(_number(r["total_delivery_days"]) / r["delivered_orders"], 2) for r in rows],
                name="average delivery days",
                yaxis="y2",
                mode="markers",
            ),
        ]
    )
    figure.update_layout(
        _layout(
            "Delivery performance by customer state (most orders first)",
            yaxis={"title": {"text": "late (%)"}},
            yaxis2={"title": {"text": "days"}, **SECOND_AXIS},
            legend={"orientation": "h", "y": -0.15},
        )
    )
    return figure


def checks_chart(quality: Quality) -> go.Figure:
    layers = list(quality.checks)
    colours = {"passed": "#2e7d32", "warned": "#f9a825", "failed": "#c62828", "not_run": "#9e9e9e"}
    figure = go.Figure(
        [
            go.Bar(
                x=layers,
                y=[getattr(quality.checks[n], outcome) for n in layers],
                name=outcome,
                marker={"color": colour},
            )
            for outcome, colour in colours.items()
        ]
    )
    figure.update_layout(_layout("Asset checks per layer (latest evaluation)", barmode="stack"))
    return figure


def quarantine_chart(quality: Quality) -> go.Figure:
    rows = list(reversed(quality.quarantined))  # every rule: a few dozen at most
    figure = go.Figure(
        go.Bar(x=[r[2] for r in rows], y=[f"{r[0]}: {r[1]}" for r in rows], orientation="h", name="rows")
    )
    figure.update_layout(_layout("Quarantined rows by rule", left_margin=260))
    if not rows:
        figure.add_annotation(text="no row quarantined", showarrow=False, font={"size": 18})
        figure.update_xaxes(visible=False).update_yaxes(visible=False)
    return figure


# ------------------------------------------------------------------------------------ the page

CHARTS = {  # div id: (title, builder); the test finds each chart by its id
    "daily-revenue": daily_chart,
    "category-revenue": category_chart,
    "rfm-segments": segment_chart,
    "delivery-by-state": delivery_chart,
}
QUALITY_CHARTS = {"checks-per-layer": checks_chart, "quarantine-by-rule": quarantine_chart}

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; background: #fafafa; }
h1 { margin-bottom: 4px; } .note { color: #666; margin-top: 0; }
.kpis { display: flex; gap: 16px; flex-wrap: wrap; margin: 16px 0; }
.kpi { background: #fff; border: 1px solid #ddd; border-radius: 8px; padding: 12px 18px; min-width: 150px; }
.kpi b { display: block; font-size: 1.5em; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 16px; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 8px; padding: 8px; min-width: 0; }
table { border-collapse: collapse; background: #fff; } td, th { border: 1px solid #ddd; padding: 4px 8px; }
td.n { text-align: right; }
"""


def _money(value: object) -> str:
    return f"R$ {_number(value):,.2f}"


def _kpis(figures: Figures, quality: Quality) -> str:
    totals = figures.totals
    delivered = totals["delivered"] or 0
    late = f"{100 * (totals['late'] or 0) / delivered:.1f} %" if delivered else "n/a"
    failed = sum(c.failed for c in quality.checks.values())
    cards = {
        "revenue": _money(totals["revenue"]),
        "revenue orders": f"{totals['orders'] or 0:,}",
        "customers (RFM)": f"{sum(r['customers'] for r in figures.segments):,}",
        "late deliveries": late,
        "failed checks": f"{failed:,}",
        "quarantined rows": f"{sum(r[2] for r in quality.quarantined):,}",
    }
    return (
        '<div class="kpis">'
        + "".join(
            f'<div class="kpi" id="kpi-{html.escape(name.split()[0])}">'
            f"{html.escape(name)}<b>{html.escape(value)}</b></div>"
            for name, value in cards.items()
        )
        + "</div>"
    )


def _percent(share: object) -> str:
    return "" if share is None else f"{100 * _number(share):.1f} %"


def _sellers_table(figures: Figures) -> str:
    head = "".join(
        f"<th>{name}</th>" for name in ("seller", "city", "state", "orders", "revenue", "review", "late")
    )
    rows = "".join(
        f"<tr><td>{html.escape(r['seller_id'][:12])}…</td><td>{html.escape(r['seller_city'] or '')}</td>"
        f"<td>{html.escape(r['seller_state'] or '')}</td><td class=n>{r['orders']:,}</td>"
        f"<td class=n>{_money(r['revenue'])}</td><td class=n>{r['avg_review_score'] or ''}</td>"
        f"<td class=n>{_percent(r['late_share'])}</td></tr>"
        for r in figures.sellers
    )
    return f'<table id="top-sellers"><tr>{head}</tr>{rows}</table>'


def _div(figure: go.Figure, div_id: str) -> str:
    return (
        '<div class="card">'
        + pio.to_html(
            figure,
            include_plotlyjs=False,
            full_html=False,
            div_id=div_id,
            config={"displaylogo": False, "responsive": True},
        )
        + "</div>"
    )


def render(figures: Figures, quality: Quality, where: str, now: dt.datetime) -> str:
    """The page: headline numbers, the charts, the quality summary and the top sellers."""
    span = (
        f"{figures.totals['first_day']} to {figures.totals['last_day']}" if figures.daily else "no orders yet"
    )
    charts = "".join(_div(build(figures), div_id) for div_id, build in CHARTS.items())
    quality_charts = "".join(_div(build(quality), div_id) for div_id, build in QUALITY_CHARTS.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Olist: sales, customers, delivery, data quality</title>
<script type="text/javascript">{get_plotlyjs()}</script>
<style>{STYLE}</style></head>
<body>
<h1>Olist: sales, customers, delivery, data quality</h1>
<p class="note">Order dates {html.escape(span)}. From the warehouse's analytics views ({html.escape(where)}),
written {now:%Y-%m-%d %H:%M} UTC by <code>medallion report</code>.</p>
{_kpis(figures, quality)}
<div class="grid">{charts}</div>
<h2>Data quality</h2>
<div class="grid">{quality_charts}</div>
<h2>Top sellers by revenue</h2>
{_sellers_table(figures)}
<script>// Each chart was drawn as the page was read, before the grid had its final widths: fit them
// now; then the page says it is rendered (a browser test or a screenshot waits for it).
window.addEventListener("load", () => Promise.all(
  [...document.querySelectorAll(".js-plotly-plot")].map((chart) => Plotly.Plots.resize(chart))
).then(() => {{ document.body.dataset.rendered = "true"; }}));
</script>
</body></html>
"""


def write_report(
    path: Path,
    warehouse: WarehouseIOManager,
    instance: dg.DagsterInstance,
    check_keys: Iterable[dg.AssetCheckKey],
    spark: SparkResource,
    lake: Lake,
) -> Figures:
    """Write the page to `path` (atomically: a reader never sees half a page); its figures. The
    warehouse is read first: without its views, nothing else is started."""
    figures = read_figures(warehouse)
    quality = Quality(check_summary(instance, check_keys), quarantined_by_rule(spark.session(), lake))
    page = render(figures, quality, warehouse.location(), dt.datetime.now(dt.UTC))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(page, encoding="utf-8")
    partial.replace(path)
    return figures
