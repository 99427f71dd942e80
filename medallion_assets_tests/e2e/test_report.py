"""The report a person looks at: the hand-made shop's build wrote it (interface/olist_report),
`medallion report` writes it again, and headless Chromium opens it with every request off the
file refused (it must work offline): each chart drew its marks, with the numbers of the
warehouse's gold tables (not of the views the page reads), and the quality summary counts what the
instance and the quarantine tables hold. A screenshot is kept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from deltalake import DeltaTable
from playwright.sync_api import sync_playwright

from medallion_assets.cli import main
from medallion_assets.definitions import code_location
from medallion_assets.resources.duckdb_warehouse import DuckDBWarehouse
from medallion_assets.specs import GOLD_FACTS, GOLD_REPORTS, QUARANTINE_TABLES, TABLES_BY_PATH
from medallion_assets_tests.e2e.test_ui import CHROMIUM
from medallion_assets_tests.helpers import HandmadeBuild

CHART_IDS = (
    "daily-revenue",
    "category-revenue",
    "rfm-segments",
    "delivery-by-state",
    "checks-per-layer",
    "quarantine-by-rule",
)
# Each chart's traces as plain arrays (plotly keeps what it was given in `gd.data`).
READ_CHARTS = """() => Object.fromEntries([...document.querySelectorAll('.js-plotly-plot')].map(gd => [
    gd.id,
    gd.data.map(t => ({name: t.name, x: Array.from(t.x || []), y: Array.from(t.y || []),
                       labels: Array.from(t.labels || []), values: Array.from(t.values || [])})),
]))"""
# The marks each chart drew: bars and points, treemap tiles, and the vertices of its lines.
DRAWN = """() => Object.fromEntries([...document.querySelectorAll('.js-plotly-plot')].map(gd => [
    gd.id,
    gd.querySelectorAll('.point, .slice').length + [...gd.querySelectorAll('.scatterlayer .js-line')]
        .map(line => (line.getAttribute('d') || '').split(/[ML]/).filter(Boolean).length)
        .reduce((a, b) => a + b, 0),
]))"""


def _cents(values: list) -> list[float]:
    return [round(float(v), 2) for v in values]


def test_the_report_shows_the_warehouse_numbers_offline(
    handmade_build: HandmadeBuild, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = handmade_build.home
    page_file = home / "reports" / "olist_report.html"
    assert page_file.exists(), "the build's interface/olist_report did not write the page"
    built_at = page_file.stat().st_mtime_ns

    # `medallion report` on the build's home and instance writes it again.
    for name, value in {
        "MEDALLION_HOME": str(home),
        "MEDALLION_LAKE_URI": str(handmade_build.lake),
        "DAGSTER_HOME": str(handmade_build.instance.root_directory),
    }.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["report"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert str(page_file) in result.output and page_file.stat().st_mtime_ns > built_at
    size = page_file.stat().st_size
    assert size > 3_000_000  # plotly.js is inside: nothing to fetch

    warehouse = DuckDBWarehouse(path=str(home / "warehouse.duckdb"))
    report = warehouse.table_ref(GOLD_REPORTS["daily_order_report"])
    daily = warehouse.query(
        f"SELECT order_date, orders, total_revenue FROM {report} ORDER BY order_date"
    ).to_pylist()
    categories = warehouse.query(
        f"SELECT product_category, SUM(total_revenue) AS revenue "
        f"FROM {warehouse.table_ref(GOLD_REPORTS['daily_category_report'])} GROUP BY 1"
    ).to_pylist()
    segments = warehouse.query(
        f"SELECT segment, COUNT(*) AS n FROM {warehouse.table_ref(GOLD_REPORTS['customer_rfm'])} GROUP BY 1"
    ).to_pylist()
    orders, customers = GOLD_FACTS["fact_orders"], TABLES_BY_PATH["gold/dim_customer"]
    states = warehouse.query(
        f"SELECT c.customer_state, COUNT(*) AS delivered, SUM(CASE WHEN f.is_late THEN 1 ELSE 0 END) AS late "
        f"FROM {warehouse.table_ref(orders)} f JOIN {warehouse.table_ref(customers)} c USING (customer_key) "
        "WHERE f.order_delivered_customer_date IS NOT NULL GROUP BY 1"
    ).to_pylist()
    assert daily and categories and segments and states

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            refused: list[str] = []

            def offline(route) -> None:  # the page must need nothing but its own file
                if route.request.url.startswith("file:"):
                    route.continue_()
                else:
                    refused.append(route.request.url)
                    route.abort()

            page.route("**/*", offline)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(page_file.as_uri())
            page.wait_for_function("() => document.body.dataset.rendered === 'true'")
            charts = page.evaluate(READ_CHARTS)
            drawn = page.evaluate(DRAWN)
            kpis = page.inner_text(".kpis")
            shot = tmp_path / "report.png"
            page.screenshot(path=shot, full_page=True, animations="disabled")
            if os.environ.get("MEDALLION_REPORT_SCREENSHOT"):  # a copy to keep
                page.screenshot(path=os.environ["MEDALLION_REPORT_SCREENSHOT"], full_page=True)
        finally:
            browser.close()
    assert not refused and not errors, (refused, errors)
    assert set(charts) == set(CHART_IDS)
    assert all(drawn[chart] > 0 for chart in CHART_IDS if chart != "quarantine-by-rule"), drawn

    # Daily revenue and orders: gold's daily_order_report, to the cent.
    revenue, order_counts = charts["daily-revenue"]
    assert revenue["x"] == [r["order_date"].isoformat() for r in daily]
    assert revenue["y"] == _cents([r["total_revenue"] for r in daily])
    assert order_counts["y"] == [r["orders"] for r in daily]
    assert drawn["daily-revenue"] >= len(daily)
    # Revenue by category, the segments' customers, late deliveries per state.
    (category,) = charts["category-revenue"]
    assert dict(zip(category["y"], category["x"], strict=True)) == {
        r["product_category"]: round(float(r["revenue"]), 2) for r in categories
    }
    (segment,) = charts["rfm-segments"]
    assert dict(zip(segment["labels"], segment["values"], strict=True)) == {
        r["segment"]: r["n"] for r in segments
    }
    late, _days = charts["delivery-by-state"]
    assert dict(zip(late["x"], late["y"], strict=True)) == {
        r["customer_state"]: round(100 * r["late"] / r["delivered"], 2) for r in states
    }
    total_revenue = sum(r["total_revenue"] for r in daily)
    assert f"R$ {total_revenue:,.2f}" in kpis

    # Quality: every check of the code location counted once, none failed (the build passed);
    # the quarantined rows are those of the quarantine tables.
    checks = {
        trace["name"]: dict(zip(trace["x"], trace["y"], strict=True)) for trace in charts["checks-per-layer"]
    }
    assert sum(sum(layer.values()) for layer in checks.values()) == len(
        code_location().resolve_asset_graph().asset_check_keys
    )
    assert sum(checks["failed"].values()) == 0 and all(
        checks["passed"][layer] > 0 for layer in ("bronze", "silver", "gold", "warehouse")
    )
    (quarantine,) = charts["quarantine-by-rule"]
    quarantined = sum(
        DeltaTable(f"{handmade_build.lake}/quarantine/{t.name}").to_pyarrow_table().num_rows
        for t in QUARANTINE_TABLES
        if DeltaTable.is_deltatable(f"{handmade_build.lake}/quarantine/{t.name}")
    )
    assert sum(quarantine["x"]) == quarantined
