"""The checks that need no Spark (the drift verdicts, the schema comparison), and every table has its
checks in the asset graph. (The checks' Spark aggregations: integration/test_check_functions.py; the
checks in Dagster runs on a broken lake: integration/test_quality.py.)"""

import datetime as dt
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
from pyspark.sql.types import (
    DataType,
    DecimalType,
    DoubleType,
    IntegerType,
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
)

from medallion_assets.definitions import build_definitions
from medallion_assets.quality.checks import (
    bind_views,
    cached_per_batch,
    row_count_drift,
    schema,
    table_checks,
)
from medallion_assets.specs import LAKE_TABLES, TABLES_BY_NAME, TABLES_BY_PATH, Drift


def test_schema_finds_a_column_landed_with_another_type() -> None:
    source = TABLES_BY_NAME["order_items"]
    types: dict[str, DataType] = {
        "string": StringType(),
        "int": IntegerType(),
        "timestamp_ntz": TimestampNTZType(),
        "decimal(12,2)": DecimalType(12, 2),
    }  # the types of order_items, built without a JVM
    good = StructType([StructField(c.name, types[c.type_names.spark]) for c in source.all_columns])
    assert schema(good, source.all_columns).passed
    bad = StructType(
        [
            StructField(f.name, DoubleType()) if f.name == "price" else f
            for f in good.fields
            if f.name != "seller_id"
        ]
    )
    outcome = schema(bad, source.all_columns)
    assert not outcome.passed
    assert outcome.metadata["problems"].data == {
        "seller_id": "missing",
        "price": "double, expected decimal(12,2)",
    }


def _weeks(day: dt.date, counts: list[int]) -> dict[dt.date, int]:
    """Row counts of the same weekday, oldest first, ending at `day`."""
    return {day - dt.timedelta(weeks=len(counts) - 1 - i): n for i, n in enumerate(counts)}


def test_row_count_drift_against_the_same_weekday() -> None:
    drift = Drift()
    day = dt.date(2018, 3, 2)
    history = _weeks(day, [90, 100, 110, 100, 95, 105, 100])
    # Other weekdays are ignored: a busy Monday does not raise Friday's expectation.
    history |= {day - dt.timedelta(days=3): 5000}
    materialized = set(history) | {day - dt.timedelta(days=d) for d in range(60)}

    usual = row_count_drift(history, [day], materialized, drift)
    assert usual.passed and usual.metadata["expected_rows"] == 100

    tenth = row_count_drift(history | {day: 10}, [day], materialized, drift)
    assert not tenth.passed and tenth.severity == "ERROR"
    assert tenth.metadata["observed_rows"] == 10 and tenth.metadata["expected_rows"] == 100
    assert tenth.metadata["expected_band"].data == [50, 200] and tenth.metadata["error_band"].data == [
        20,
        1000,
    ]

    half_less = row_count_drift(history | {day: 40}, [day], materialized, drift)
    assert not half_less.passed and half_less.severity == "WARN"

    # The first weeks have no history to judge by, and a day never materialized is no evidence.
    first = row_count_drift(
        {day: 10, day - dt.timedelta(weeks=1): 100}, [day], {day, day - dt.timedelta(weeks=1)}, drift
    )
    assert first.passed and first.metadata["verdict"].startswith("not judged: 1 of 3")
    unmaterialized = row_count_drift(history | {day: 10}, [day], {day}, drift)
    assert unmaterialized.passed and unmaterialized.metadata["days_judged"] == 0
    # Small counts are noise: 2 orders instead of 5 is not an outage.
    quiet = row_count_drift(_weeks(day, [5, 5, 5, 5, 5, 5, 2]), [day], materialized, drift)
    assert quiet.passed
    # Near the floor the band allows a count's own noise (3 x sqrt(21) ~ 14), not an outage.
    small = _weeks(day, [21, 21, 21, 21, 21, 21])
    assert row_count_drift(small | {day: 10}, [day], materialized, drift).passed
    assert row_count_drift(small | {day: 2}, [day], materialized, drift).severity == "ERROR"

    # A day the source has not finished yet is not judged; once the source is past it, it is.
    during = dt.datetime.combine(day, dt.time(15))
    in_progress = row_count_drift(history | {day: 10}, [day], materialized, drift, source_time=during)
    assert in_progress.passed and in_progress.metadata["verdict"].startswith("not judged: in progress")
    after = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 5))
    assert not row_count_drift(history | {day: 10}, [day], materialized, drift, source_time=after).passed

    # A range reports its flagged days.
    days = [day - dt.timedelta(weeks=1), day]
    ranged = row_count_drift(history | {day: 10}, days, materialized, drift)
    assert not ranged.passed and ranged.metadata["days"] == 2
    assert [d["day"] for d in ranged.metadata["flagged_days"].data] == [day.isoformat()]


def test_drift_compares_only_days_landed_soon_after_they_ended() -> None:
    """A history landed at once holds each row on the day of its latest change: its old days are
    depleted, its last days full of in-flight rows. Neither is judged nor used as history."""
    drift = Drift(landed_within=dt.timedelta(days=2))
    day = dt.date(2018, 8, 28)
    counts = _weeks(day, [40, 45, 50, 45, 40, 50, 100])  # the last day twice the (depleted) history
    materialized = set(counts)
    end_of = {d: dt.datetime.combine(d + dt.timedelta(days=1), dt.time()) for d in counts}
    at_once = {d: dt.datetime(2018, 8, 29) for d in counts}  # one backfill when the source was here
    backfill = row_count_drift(counts, [day], materialized, drift, first_landed=at_once)
    assert backfill.passed and backfill.metadata["verdict"].startswith("not judged: 0 of 3 weeks")
    assert backfill.metadata["history"].data == []  # every earlier day landed weeks after it
    old = row_count_drift(counts, [day - dt.timedelta(weeks=3)], materialized, drift, first_landed=at_once)
    assert old.passed and old.metadata["verdict"].startswith("not judged: first landed 21 days after")

    # Landed live (within a day of its end), the same days are judged: twice the usual is a warning.
    live = {d: end + dt.timedelta(hours=6) for d, end in end_of.items()}
    judged = row_count_drift(counts, [day], materialized, drift, first_landed=live)
    assert not judged.passed and judged.severity == "WARN" and judged.metadata["expected_rows"] == 45
    # A live day is compared only with the live days before it.
    mixed = {**at_once, **{d: live[d] for d in sorted(counts)[-4:]}}
    partly = row_count_drift(counts, [day], materialized, drift, first_landed=mixed)
    assert partly.metadata["history"].data == [50, 40, 45] and not partly.passed  # newest first


def test_every_table_has_its_checks() -> None:
    names = {"/".join(t.asset_path): {c.name for c in table_checks(t)} for t in LAKE_TABLES}
    assert names["bronze/orders"] == {"unique_key", "not_null", "schema", "row_count_drift"}
    assert {"unique_key", "not_null", "contract", "references_orders_order_id"} <= names["silver/order_items"]
    assert names["quarantine/orders"] == {"not_null"}
    assert {"contract", "versions_contiguous", "one_unknown_member"} <= names["gold/dim_customer"]
    assert {"row_count_drift", "references_dim_product_product_key", "references_fact_orders_order_id"} <= (
        names["gold/fact_order_items"]
    )
    assert {"avg_order_revenue_below_100000", "equals_fact_orders"} <= names["gold/daily_order_report"]
    assert "payments_reconcile_with_revenue" in names["gold/fact_orders"]
    graph = build_definitions().resolve_asset_graph()
    for table in LAKE_TABLES:
        key = dg.AssetKey(table.asset_path)
        checked = {k.name for k in graph.asset_check_keys if k.asset_key == key}
        # ...and the column_schema_change on every table (test_operations.py)
        assert checked == names["/".join(table.asset_path)] | {"column_schema_change"}, key
        assert graph.get(key).partitions_def is not None or table.partition_column is None


def test_every_rule_reads_the_views_of_its_own_step() -> None:
    """Check steps run side by side: a rule's query reads views named for its step, never the bare
    `rows` or table name another step may have defined; an alias of the same name stays."""
    rules = [(t, r) for t in LAKE_TABLES for r in t.rules]
    assert rules
    for table, rule in rules:
        names = ["rows", *(TABLES_BY_PATH[path].name for path in rule.reads)]
        bound = bind_views(rule.violations, {name: f"_view_{name}_1" for name in names})
        for name in names:
            assert f"_view_{name}_1" in bound, (table.name, rule.name, name)
            left = re.findall(rf"(?<!AS )(?<!_view_)\b{name}\b(?!_1)", bound, flags=re.IGNORECASE)
            assert not left, (table.name, rule.name, name, left)
    report = TABLES_BY_PATH["gold/daily_order_report"]
    (equals,) = [r for r in report.rules if "fact_orders" in {p.split("/")[-1] for p in r.reads}]
    assert "AS fact_orders" in bind_views(equals.violations, {"fact_orders": "_view"})


def test_two_check_steps_side_by_side_compute_their_profiles_at_once() -> None:
    """A batch's profile is computed once per batch, and two steps' batches (in two threads) compute
    theirs at the same time: with `functools.cached_property` on Python 3.11 the second waited for
    the first (its lock is one per class), and this barrier would time out."""
    both_inside = threading.Barrier(2, timeout=5)

    computed: list[int] = []  # appended from both threads (atomic)

    class Batch:
        @cached_per_batch
        def profile(self) -> int:
            both_inside.wait()  # each waits until the other is inside its own profile too
            computed.append(id(self))
            return id(self)

    batches = [Batch(), Batch()]
    with ThreadPoolExecutor(2) as pool:
        profiles = list(pool.map(lambda batch: batch.profile, batches))
    assert profiles == [id(b) for b in batches] == [b.profile for b in batches]
    assert sorted(computed) == sorted(profiles)  # read again: not computed again
