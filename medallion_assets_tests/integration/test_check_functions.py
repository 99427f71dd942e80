"""The checks' Spark aggregations on small frames: each passes on good data and fails, with the
metadata a person needs, on data broken on purpose."""

import datetime as dt

import pytest
from pyspark.errors import AnalysisException
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from medallion_assets.quality.checks import (
    Batch,
    Profile,
    Referenced,
    business_rule,
    not_null,
    references,
    unique_key,
)
from medallion_assets.quality.contracts import ContractViolation, enforce
from medallion_assets.resources.spark import SparkResource
from medallion_assets.specs import TABLES_BY_PATH, LakeTable, Reference, Rule


def test_unique_key_names_the_duplicated_keys(spark_resource: SparkResource) -> None:
    spark = spark_resource.session()
    rows = [("a", 1), ("b", 1), ("c", 1)]
    schema = "order_id string, order_item_id int"
    assert unique_key(spark.createDataFrame(rows, schema), ["order_id", "order_item_id"]).passed
    broken = unique_key(spark.createDataFrame([*rows, ("b", 1)], schema), ["order_id", "order_item_id"])
    assert not broken.passed and broken.severity == "ERROR"
    assert broken.metadata["duplicated_keys"] == 1 and broken.metadata["duplicate_rows"] == 1
    assert broken.metadata["sample"].data == [{"order_id": "b", "order_item_id": 1, "count_all": 2}]


def test_not_null_counts_nulls_per_column_and_shows_their_keys(spark_resource: SparkResource) -> None:
    spark = spark_resource.session()
    rows = spark.createDataFrame(
        [("a", "delivered"), ("b", None), ("c", "shipped")], "order_id string, order_status string"
    )
    assert not_null(rows.filter("order_id = 'a'"), ["order_id", "order_status"], ["order_id"]).passed
    broken = not_null(rows, ["order_id", "order_status", "customer_id"], ["order_id"])
    assert not broken.passed
    assert broken.metadata["null_counts"].data == {"order_status": 1}
    assert broken.metadata["missing_columns"] == "customer_id"
    assert broken.metadata["sample"].data == [{"order_id": "b", "order_status": None}]


def _keys(spark: SparkSession, values: list, name: str, kind: str):
    return spark.createDataFrame([(v,) for v in values], f"{name} {kind}")


def test_references_orphans_are_errors_unknown_members_a_share(spark_resource: SparkResource) -> None:
    spark = spark_resource.session()
    keys = _keys(spark, [-1, 10, 11, 12], "product_key", "bigint")
    ref = Reference("product_key", "gold/dim_product", "product_key", max_unknown_share=0.25)
    assert references(_keys(spark, [10, 11, 12, -1], "product_key", "bigint"), keys, ref).passed

    orphan = references(_keys(spark, [10, 11, 12345, 12345], "product_key", "bigint"), keys, ref)
    assert not orphan.passed and orphan.severity == "ERROR"
    assert orphan.metadata["orphan_rows"] == 2 and orphan.metadata["orphan_sample"].data == [12345]

    unknown = references(_keys(spark, [-1, -1, 10, 11], "product_key", "bigint"), keys, ref)
    assert not unknown.passed and unknown.severity == "WARN"
    assert unknown.metadata["unknown_share"] == 0.5 and unknown.metadata["orphan_rows"] == 0

    # Silver keeps items whose order has not arrived: a share to watch, not an error.
    waiting = Reference("order_id", "silver/orders", "order_id", unknown=None, orphans_allowed=True)
    ids = _keys(spark, ["o1", "o2", "o9"], "order_id", "string")
    outcome = references(ids, _keys(spark, ["o1", "o2"], "order_id", "string"), waiting)
    assert not outcome.passed and outcome.severity == "WARN" and outcome.metadata["orphan_rows"] == 1
    # A referenced table not built yet: every value is an orphan.
    assert references(ids, None, waiting).metadata["orphan_rows"] == 3


def test_one_profile_counts_for_every_check_of_a_step(spark_resource: SparkResource) -> None:
    """A check step's counts come from one Spark action: keys, nulls, references, business rules and
    rows per day, each equal to what the check alone would count."""
    spark = spark_resource.session()
    rows = spark.createDataFrame(
        [
            ("o1", 10, "2018-03-01"),
            ("o2", -1, "2018-03-01"),
            ("o2", 99, "2018-03-02"),
            ("o3", None, "2018-03-02"),
        ],
        "order_id string, product_key bigint, day string",
    ).withColumn("day", F.to_date("day"))
    keys = _keys(spark, [-1, 10, 11], "product_key", "bigint")
    ref = Reference("product_key", "gold/dim_product", "product_key", max_unknown_share=0.5)
    rule = Rule("no_product_99", "no product 99", "SELECT * FROM rows WHERE product_key = 99")
    broken = rows.filter("product_key = 99")
    profile = Profile.of(
        rows,
        ["order_id"],
        ["product_key"],
        references=[(ref, keys)],
        rules=[(rule, broken)],
        daily=(rows, "day"),
    )
    assert (profile.rows, profile.distinct_keys, profile.nulls) == (4, 3, {"product_key": 1})
    assert profile.references[ref.check_name] == Referenced(rows=3, unknown=1, orphans=1)
    assert profile.violations == {"no_product_99": 1}
    assert profile.per_day == {dt.date(2018, 3, 1): 2, dt.date(2018, 3, 2): 2}
    alone = references(rows, keys, ref)
    assert references(rows, keys, ref, profile).metadata == alone.metadata
    assert alone.metadata["orphan_sample"].data == [99] and not alone.passed
    assert business_rule(rule, broken, profile.violations[rule.name]).metadata["violations"] == 1
    # Nothing in the window (the log says so): no Spark job for it, and the rules still run.
    empty = Profile.of(
        rows.limit(0), ["order_id"], references=[(ref, keys)], rules=[(rule, broken)], empty=True
    )
    assert (empty.rows, empty.distinct_keys, empty.violations) == (0, 0, {"no_product_99": 1})
    assert empty.references[ref.check_name] == Referenced(0, 0, 0)


def test_a_rule_whose_column_is_gone_fails_alone(spark_resource: SparkResource) -> None:
    """A business rule that no longer analyses (it reads a column the table lost) raises in its own
    check; the step's other counts still come from the one profile."""
    spark = spark_resource.session()
    rows = spark.createDataFrame([("o1", 10), ("o2", 99)], "order_id string, product_key bigint")
    kept = Rule("no_product_99", "no product 99", "SELECT * FROM rows WHERE product_key = 99")
    gone = Rule("no_big_freight", "freight below 1000", "SELECT * FROM rows WHERE freight_value > 1000")
    table = LakeTable("gold", "scratch_orders", ("order_id",), None, rules=(kept, gone))
    batch = Batch(table, rows, None, None, spark, None)  # no lake read: no reference, no drift
    assert (batch.profile.rows, batch.profile.distinct_keys, batch.profile.violations) == (2, 2, {})
    assert business_rule(kept, batch.sql(kept)).metadata["violations"] == 1
    with pytest.raises(AnalysisException, match="freight_value"):
        business_rule(gone, batch.sql(gone))


def test_rows_breaking_the_silver_contract_are_refused_before_any_write(
    spark_resource: SparkResource,
) -> None:
    """The safety net behind the quarantine: rows about to be written to silver that break its
    contract stop the step, with every broken rule named and counted."""
    spark = spark_resource.session()
    orders = TABLES_BY_PATH["silver/orders"]
    schema = ", ".join(f"`{c.name}` {c.type_names.spark}" for c in orders.columns)
    at = dt.datetime(2018, 3, 1, 10)
    good = ("a" * 32, "b" * 32, "delivered", at, None, None, None, None, at, at)
    rows = spark.createDataFrame([good], schema)
    assert enforce(orders, rows) is rows
    lost = ("c" * 32, "b" * 32, "lost", at, None, None, None, None, at, at)
    broken = spark.createDataFrame([good, lost], schema)
    with pytest.raises(ContractViolation, match=r"silver\.orders: .*1 row\(s\) break order_status:allowed"):
        enforce(orders, broken)
    with pytest.raises(ContractViolation, match="order_status is int, the contract says string"):
        enforce(orders, broken.withColumn("order_status", F.lit(1)))
