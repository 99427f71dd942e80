"""The generator: deterministic, Kaggle-format, and shaped like Olist."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from medallion_assets.specs import OLIST_TABLES
from olist_source.brazil import STATE_CODES
from olist_source.generator import (
    UNTRANSLATED_CATEGORIES,
    GenerationResult,
    generate,
    write_kaggle_files,
)


@pytest.fixture(scope="module")
def medium() -> GenerationResult:
    """About 20,000 orders: enough for the mixes to show."""
    return generate(scale=0.2, seed=11)


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    write_kaggle_files(generate(0.01, seed=3), first)
    write_kaggle_files(generate(0.01, seed=3), second)
    for spec in OLIST_TABLES:
        assert (first / spec.csv_file).read_bytes() == (second / spec.csv_file).read_bytes(), spec.csv_file
    other = generate(0.01, seed=4).tables["orders"]
    assert not other.equals(generate(0.01, seed=3).tables["orders"])


def test_scale_one_is_about_olist_size() -> None:
    counts = generate(1.0, seed=42).row_counts()
    assert 95_000 <= counts["orders"] <= 105_000
    assert 105_000 <= counts["order_items"] <= 120_000
    assert 800_000 <= counts["geolocation"] <= 1_200_000
    assert counts["products"] == 32_951 and counts["sellers"] == 3_095
    assert counts["product_category_name_translation"] == 71


def test_kaggle_format_on_disk(small_generated_dir: Path) -> None:
    orders = (small_generated_dir / "olist_orders_dataset.csv").read_text(encoding="utf-8").split("\n")
    assert orders[0].startswith('"order_id","customer_id","order_status","order_purchase_timestamp"')
    first_cells = [line.split(",")[0] for line in orders[1:] if line]
    # Quoting varies row by row in one column: quoted when the id starts with a digit.
    assert any(c.startswith('"') for c in first_cells) and any(not c.startswith('"') for c in first_cells)
    assert all(c.startswith('"') == c.lstrip('"')[0].isdigit() for c in first_cells)
    assert re.search(r",delivered,\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,", orders[1] + "".join(orders[2:50]))

    translation = (small_generated_dir / "product_category_name_translation.csv").read_bytes()
    assert translation.startswith(b"\xef\xbb\xbfproduct_category_name,product_category_name_english\r\n")
    reviews = (small_generated_dir / "olist_order_reviews_dataset.csv").read_bytes()
    assert reviews.count(b"\n") == reviews.count(b"\r\n")  # CRLF line ends, also inside comments
    products = (small_generated_dir / "olist_products_dataset.csv").read_text(encoding="utf-8")
    assert "product_name_lenght" in products.split("\n")[0]
    customers = (small_generated_dir / "olist_customers_dataset.csv").read_text(encoding="utf-8").split("\n")
    assert all(re.fullmatch(r'"\d{5}"', line.split(",")[2]) for line in customers[1:] if line)


def test_purchases_span_two_years_with_growth_and_weekly_seasonality(medium: GenerationResult) -> None:
    purchase = medium.tables["orders"]["order_purchase_timestamp"]
    first, last = pc.min_max(purchase).values()
    assert first.as_py().year == 2016 and last.as_py().year == 2018
    months = {d["values"]: d["counts"] for d in pc.value_counts(pc.strftime(purchase, "%Y-%m")).to_pylist()}
    january_to_august = {
        year: sum(v for k, v in months.items() if k.startswith(f"{year}-0")) for year in (2017, 2018)
    }
    assert january_to_august[2018] > 1.5 * january_to_august[2017]  # the business grows
    weekday = pc.day_of_week(purchase).to_numpy()  # Monday = 0
    counts = np.bincount(weekday, minlength=7)
    assert counts[0] > counts[5] * 1.2  # Mondays busier than Saturdays


def test_status_mix_is_olists(medium: GenerationResult) -> None:
    status = medium.tables["orders"]["order_status"]
    share = {d["values"]: d["counts"] / len(status) for d in pc.value_counts(status).to_pylist()}
    assert 0.96 < share["delivered"] < 0.98
    assert {"shipped", "canceled", "unavailable", "invoiced", "processing"} <= set(share)
    orders = medium.tables["orders"]
    delivered = pc.equal(status, "delivered")
    assert pc.sum(
        pc.and_(delivered, pc.is_valid(orders["order_delivered_customer_date"]))
    ).as_py() >= 0.99 * (pc.sum(delivered).as_py())
    not_sent = pc.is_in(status, pa.array(["created", "invoiced", "processing", "unavailable"]))
    assert pc.all(pc.is_null(orders["order_delivered_customer_date"].filter(not_sent))).as_py()


def test_items_per_order(medium: GenerationResult) -> None:
    items = medium.tables["order_items"]
    per_order = pc.value_counts(items["order_id"]).field("counts").to_numpy()
    assert per_order.max() <= 21
    assert 0.85 < (per_order == 1).mean() < 0.95
    assert (per_order >= 3).any()
    # order_item_id numbers each order's items 1..n
    grouped = items.group_by("order_id").aggregate([("order_item_id", "max"), ("order_item_id", "count")])
    assert grouped["order_item_id_max"].equals(grouped["order_item_id_count"].cast(pa.int32()))


def test_payments_add_up_to_the_cent(medium: GenerationResult) -> None:
    items = medium.tables["order_items"]
    value = pc.add(items["price"], items["freight_value"])
    per_order = (
        pa.table({"order_id": items["order_id"], "v": value}).group_by("order_id").aggregate([("v", "sum")])
    )
    paid = medium.tables["order_payments"].group_by("order_id").aggregate([("payment_value", "sum")])
    joined = per_order.join(paid, "order_id")
    assert joined.num_rows == per_order.num_rows
    assert pc.all(pc.equal(joined["v_sum"], joined["payment_value_sum"])).as_py()
    types = set(pc.unique(medium.tables["order_payments"]["payment_type"]).to_pylist())
    assert {"credit_card", "boleto", "voucher", "debit_card"} <= types
    installments = medium.tables["order_payments"]["payment_installments"]
    assert pc.max(installments).as_py() > 1


def test_reviews_for_most_orders_with_olists_scores(medium: GenerationResult) -> None:
    reviews, orders = medium.tables["order_reviews"], medium.tables["orders"]
    reviewed = pc.count_distinct(reviews["order_id"]).as_py()
    assert 0.98 < reviewed / orders.num_rows < 1.0
    scores = np.bincount(reviews["review_score"].to_numpy(), minlength=6)[1:] / reviews.num_rows
    assert scores[4] > 0.5 and scores[0] > 0.08 and scores.argmin() == 1  # 5 most, 2 least
    assert pc.count_distinct(reviews["review_id"]).as_py() < reviews.num_rows  # reused review ids
    keys = pc.binary_join_element_wise(reviews["review_id"], reviews["order_id"], "|")
    assert pc.count_distinct(keys).as_py() == reviews.num_rows


def test_repeat_customers_and_moves(medium: GenerationResult) -> None:
    customers = medium.tables["customers"]
    people = pc.count_distinct(customers["customer_unique_id"]).as_py()
    assert 0.93 < people / customers.num_rows < 0.985
    addresses = customers.group_by("customer_unique_id").aggregate(
        [("customer_zip_code_prefix", "count_distinct"), ("customer_id", "count")]
    )
    repeaters = addresses.filter(pc.greater(addresses["customer_id_count"], 1))
    moved = pc.sum(pc.greater(repeaters["customer_zip_code_prefix_count_distinct"], 1)).as_py()
    assert 0 < moved < repeaters.num_rows
    assert set(pc.unique(customers["customer_state"]).to_pylist()) <= STATE_CODES
    assert pc.all(pc.match_substring_regex(customers["customer_zip_code_prefix"], r"^\d{5}$")).as_py()


def test_geolocation_has_many_rows_per_prefix(medium: GenerationResult) -> None:
    geo = medium.tables["geolocation"]
    prefixes = pc.count_distinct(geo["geolocation_zip_code_prefix"]).as_py()
    assert geo.num_rows / prefixes > 5
    cities = set(pc.unique(geo["geolocation_city"]).to_pylist())
    assert {"são paulo", "sao paulo"} <= cities  # the accent quirk


def test_categories_are_real_ones(medium: GenerationResult) -> None:
    categories = set(pc.unique(medium.tables["products"]["product_category_name"]).drop_null().to_pylist())
    translated = set(medium.tables["product_category_name_translation"]["product_category_name"].to_pylist())
    assert categories <= translated | set(UNTRANSLATED_CATEGORIES)
    assert set(UNTRANSLATED_CATEGORIES) & categories
    assert medium.tables["products"]["product_category_name"].null_count > 0
