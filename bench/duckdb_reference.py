"""The "physical limit" reference: the three gold reports computed by DuckDB straight from Kaggle CSVs.

    python bench/duckdb_reference.py /path/to/olist-csvs

Same semantics as DESIGN.md's "Gold semantics" and medallion_assets/gold/reports.py, none of the
platform's work (no bronze/silver/gold tables, no quarantine, no dimension history, no checks): what
one in-process engine needs to read the files and compute the answers. Money stays exact: DECIMAL
from the CSV, DECIMAL(18,2) sums, and averages and medians rounded half-up on integer cents (as
reports.py does), never through a double.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow

# The segment grid is a definition, not a computation: shared with gold, (recency scores, frequency
# scores, segment), first match wins.
from medallion_assets.gold.reports import SEGMENTS

# Only the columns the reports use get a real type; the others stay text, so a bad value in a column
# nobody reads does not drop its row (ignore_errors drops rows that fail to parse).
CSV_FILES: dict[str, tuple[str, dict[str, str]]] = {
    "orders": (
        "olist_orders_dataset.csv",
        {
            "order_id": "VARCHAR",
            "customer_id": "VARCHAR",
            "order_status": "VARCHAR",
            "order_purchase_timestamp": "TIMESTAMP",
            "order_approved_at": "VARCHAR",
            "order_delivered_carrier_date": "VARCHAR",
            "order_delivered_customer_date": "VARCHAR",
            "order_estimated_delivery_date": "VARCHAR",
        },
    ),
    "order_items": (
        "olist_order_items_dataset.csv",
        {
            "order_id": "VARCHAR",
            "order_item_id": "INTEGER",
            "product_id": "VARCHAR",
            "seller_id": "VARCHAR",
            "shipping_limit_date": "VARCHAR",
            "price": "DECIMAL(12,2)",
            "freight_value": "DECIMAL(12,2)",
        },
    ),
    "products": (
        "olist_products_dataset.csv",
        {
            "product_id": "VARCHAR",
            "product_category_name": "VARCHAR",
            **{
                name: "VARCHAR"
                for name in (
                    "product_name_lenght",  # sic: Olist's spelling
                    "product_description_lenght",
                    "product_photos_qty",
                    "product_weight_g",
                    "product_length_cm",
                    "product_height_cm",
                    "product_width_cm",
                )
            },
        },
    ),
    "translation": (
        "product_category_name_translation.csv",
        {"product_category_name": "VARCHAR", "product_category_name_english": "VARCHAR"},
    ),
    "customers": (
        "olist_customers_dataset.csv",
        {
            "customer_id": "VARCHAR",
            "customer_unique_id": "VARCHAR",
            "customer_zip_code_prefix": "VARCHAR",
            "customer_city": "VARCHAR",
            "customer_state": "VARCHAR",
        },
    ),
}

SEGMENT_SQL = (
    "CASE "
    + " ".join(
        f"WHEN r_score IN ({','.join(r)}) AND f_score IN ({','.join(f)}) THEN '{name}'"
        for r, f, name in SEGMENTS
    )
    + " END"
)

MACROS = """
CREATE MACRO cents(x) AS CAST(x * 100 AS BIGINT);
CREATE MACRO from_cents(c) AS CAST(CAST(c AS DECIMAL(18,0)) * 0.01 AS DECIMAL(18,2));
-- total / count rounded half-up to the cent, for non-negative totals: floor((2t + n) / 2n).
CREATE MACRO half_up(total_cents, n) AS from_cents((2 * total_cents + n) // (2 * n));
-- reports.quintile_score: 1 + floor(5 * (customers strictly worse) / customers); ties score equally.
CREATE MACRO quintile(worse, n) AS CAST(1 + (5 * worse) // n AS INTEGER);
"""

# Items of revenue orders (status not canceled/unavailable; having an item is implied by the join).
REVENUE_ITEMS = """
CREATE TEMP TABLE revenue_items AS
SELECT o.order_id, o.customer_id, CAST(o.order_purchase_timestamp AS DATE) AS order_date,
       coalesce(t.product_category_name_english, p.product_category_name, 'unknown') AS product_category,
       i.price + i.freight_value AS item_revenue
FROM order_items i
JOIN orders o USING (order_id)
LEFT JOIN products p USING (product_id)
LEFT JOIN translation t USING (product_category_name)
WHERE o.order_status NOT IN ('canceled', 'unavailable') AND o.order_purchase_timestamp IS NOT NULL;

CREATE TEMP TABLE revenue_orders AS
SELECT order_id, any_value(customer_id) AS customer_id, any_value(order_date) AS order_date,
       CAST(sum(item_revenue) AS DECIMAL(18,2)) AS revenue
FROM revenue_items GROUP BY order_id;
"""

REPORTS: dict[str, str] = {
    "daily_order_report": """
        SELECT order_date, count(*) AS orders, CAST(sum(revenue) AS DECIMAL(18,2)) AS total_revenue,
               half_up(cents(sum(revenue)), count(*)) AS avg_order_revenue
        FROM revenue_orders GROUP BY order_date ORDER BY order_date
    """,
    "daily_category_report": """
        SELECT order_date, product_category, items, orders, total_revenue,
               half_up(cents(total_revenue), items) AS avg_item_revenue,
               -- exact median: the middle value twice (odd count) or the two middle values, halved
               half_up(sorted[(items + 1) // 2] + sorted[items // 2 + 1], 2) AS median_item_revenue
        FROM (
            SELECT order_date, product_category, count(*) AS items, count(DISTINCT order_id) AS orders,
                   CAST(sum(item_revenue) AS DECIMAL(18,2)) AS total_revenue,
                   list_sort(list(cents(item_revenue))) AS sorted
            FROM revenue_items GROUP BY order_date, product_category
        )
        ORDER BY order_date, product_category
    """,
    "customer_rfm": f"""
        WITH per_customer AS (
            SELECT c.customer_unique_id, max(r.order_date) AS last_order_date,
                   CAST(count(DISTINCT r.order_id) AS INTEGER) AS frequency,
                   CAST(sum(r.revenue) AS DECIMAL(18,2)) AS monetary
            FROM revenue_orders r JOIN customers c USING (customer_id)
            WHERE c.customer_unique_id IS NOT NULL
            GROUP BY c.customer_unique_id
        ), scored AS (
            -- recency from the latest order date of all revenue orders, known customer or not
            SELECT *, CAST((SELECT max(order_date) FROM revenue_orders) - last_order_date AS INTEGER)
                       AS recency_days
            FROM per_customer
        ), ranked AS (
            SELECT *,
                   quintile(rank() OVER (ORDER BY recency_days DESC) - 1, count(*) OVER ()) AS r_score,
                   quintile(rank() OVER (ORDER BY frequency) - 1, count(*) OVER ()) AS f_score,
                   quintile(rank() OVER (ORDER BY monetary) - 1, count(*) OVER ()) AS m_score
            FROM scored
        )
        SELECT customer_unique_id, last_order_date, recency_days, frequency, monetary,
               r_score, f_score, m_score, {SEGMENT_SQL} AS segment
        FROM ranked ORDER BY customer_unique_id
    """,
}


@dataclass
class ReferenceResult:
    seconds: float  # wall time of reading the CSVs and computing all three reports
    rows: dict[str, int]  # rows per report
    tables: dict[str, pyarrow.Table]  # "daily_order_report", "daily_category_report", "customer_rfm"


def read_csv_sql(path: Path, columns: dict[str, str]) -> str:
    types = ", ".join(f"'{name}': '{kind}'" for name, kind in columns.items())
    quoted = str(path).replace("'", "''")
    return (
        f"SELECT * FROM read_csv('{quoted}', header = true, columns = {{{types}}}, "
        "timestampformat = '%Y-%m-%d %H:%M:%S', ignore_errors = true)"
    )


def reference_reports(csv_dir: Path) -> ReferenceResult:
    con = duckdb.connect()  # in memory
    try:
        con.execute(MACROS)
        started = time.perf_counter()
        # Materialized whole: DuckDB skips a bad row only where it parses the bad column, so a
        # lazy view could keep a row in one query and drop it in another.
        for table, (file, columns) in CSV_FILES.items():
            con.execute(f"CREATE TEMP TABLE {table} AS {read_csv_sql(csv_dir / file, columns)}")
        con.execute(REVENUE_ITEMS)
        tables = {name: con.sql(sql).to_arrow_table() for name, sql in REPORTS.items()}
        seconds = time.perf_counter() - started
    finally:
        con.close()
    return ReferenceResult(seconds, {name: t.num_rows for name, t in tables.items()}, tables)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv_dir", type=Path, help="folder of Olist CSV files in the Kaggle format")
    result = reference_reports(parser.parse_args().csv_dir)
    print(f"duckdb reference: {result.seconds:.3f} s")
    for name, rows in result.rows.items():
        print(f"    {name:<24}{rows:>12,} rows")


if __name__ == "__main__":
    main()
