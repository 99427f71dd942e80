"""Which orders changed since gold's facts were last known to be up to date: what lets a day of
changes find its stale order dates without computing every fact again.

After a build has brought the facts up to date (every stale order date found and recomputed in a
successful run), it records the versions of the facts' inputs it compared against
(`record_facts_current`, a small JSON file in the fact table's folder, where Delta and VACUUM
leave `_` names alone). The next search then needs only what changed after those versions:
- silver's orders, items, payments, reviews and customers: Delta's change data feed (on for every
  silver table), the rows each commit inserted, updated (before and after) or deleted;
- the SCD2 dimensions, rewritten whole at each build: the version rows that differ between the
  recorded version (time travel) and now, whose members' orders may now point at another version.
The orders they touch are the candidates; their facts are computed and compared with the stored
rows as before (facts.py), so a change that moves no fact (a review's comment) rebuilds nothing.

Whenever that cannot be trusted, `changed_orders` says why and the caller compares every order:
nothing recorded yet, an input's feed missing or vacuumed for those versions, a dimension's old
version vacuumed, or a fact table changed by anything other than a write (a RESTORE brings back
rows older than the record).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

import dagster as dg
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from medallion_assets.resources.delta_lake import Lake
from medallion_assets.specs import GOLD_DIMENSIONS

# The silver tables the facts read, and the column that names an order in each (customers: whose).
SILVER_INPUTS = {
    "orders": "order_id",
    "order_items": "order_id",
    "order_payments": "order_id",
    "order_reviews": "order_id",
    "customers": "customer_id",
}
# The SCD2 dimensions the facts point into, and the member column their versions belong to.
DIMENSION_INPUTS = {
    "dim_customer": "customer_unique_id",
    "dim_product": "product_id",
    "dim_seller": "seller_id",
}
FACT_TABLES = ("fact_orders", "fact_order_items")
# Commits of a fact table that keep every row as a write from the inputs of its time made it.
KEEPS_ROWS = {"WRITE", "CREATE TABLE", "OPTIMIZE", "VACUUM START", "VACUUM END", "SET TBLPROPERTIES"}
RECORD = "_facts_current_as_of.json"
NO_CHANGE = "no input changed since the facts were last up to date"


def _silver(name: str) -> dg.AssetKey:
    return dg.AssetKey(["silver", name])


def _gold(name: str) -> dg.AssetKey:
    return dg.AssetKey(["gold", name])


INPUT_KEYS = [_silver(n) for n in SILVER_INPUTS] + [_gold(n) for n in DIMENSION_INPUTS]


@dataclass(frozen=True)
class Versions:
    """Versions of the facts' inputs (and of the facts themselves) by asset key string."""

    inputs: dict[str, int]
    facts: dict[str, int]


def input_versions(lake: Lake) -> dict[str, int] | None:
    """The inputs' latest versions (None when one is not built yet): read BEFORE comparing, so a
    change committed during the search is after them and found next time."""
    versions = {key.to_user_string(): lake.version(key) for key in INPUT_KEYS}
    return None if None in versions.values() else versions  # type: ignore[return-value]


def _record_path(lake: Lake) -> str:
    return f"{lake.uri(_gold(FACT_TABLES[0]))}/{RECORD}"


def record_facts_current(lake: Lake, inputs: dict[str, int]) -> None:
    """Record that the facts are up to date with these input versions (a build calls it once its
    runs recomputed every stale order date found against them)."""
    facts = {name: lake.version(_gold(name)) for name in FACT_TABLES}
    filesystem, path = lake.files(_record_path(lake))
    with filesystem.open_output_stream(path) as out:
        out.write(json.dumps({"inputs": inputs, "facts": facts}).encode())


def recorded_versions(lake: Lake) -> Versions | None:
    filesystem, path = lake.files(_record_path(lake))
    try:
        with filesystem.open_input_stream(path) as stream:
            record = json.loads(stream.read())
        return Versions(dict(record["inputs"]), dict(record["facts"]))
    except (FileNotFoundError, OSError, ValueError, KeyError, TypeError):
        return None  # none yet, or unreadable: the caller compares every order


def changed_orders(spark: SparkSession, lake: Lake, now: dict[str, int]) -> tuple[DataFrame | None, str]:
    """(order_id of every order whose facts may differ from the stored ones, why) since the recorded
    versions, up to `now`; (None, the reason) when every order is to be compared."""
    recorded = recorded_versions(lake)
    if recorded is None:
        return None, "no record of when the facts were last up to date"
    if set(recorded.inputs) != set(now) or any(recorded.inputs[k] > v for k, v in now.items()):
        return None, "the recorded input versions do not match these tables"
    for name in FACT_TABLES:
        if (version := recorded.facts.get(name)) is None:
            return None, f"no recorded version of gold/{name}"
        if other := lake.operations_since(_gold(name), version) - KEEPS_ROWS:
            return None, f"gold/{name} had {', '.join(sorted(other))} since"
    orders = lake.table(spark, _silver("orders"), columns=["order_id", "customer_id"])
    touched: list[DataFrame] = []  # frames of order_id
    for name, column in SILVER_INPUTS.items():
        key = _silver(name).to_user_string()
        if recorded.inputs[key] < now[key]:
            changed = lake.changes(spark, _silver(name), recorded.inputs[key], now[key]).select(column)
            touched.append(changed if column == "order_id" else _orders_of(orders, changed, column))
    for name, member in DIMENSION_INPUTS.items():
        key = _gold(name).to_user_string()
        if recorded.inputs[key] < now[key]:
            before, after = (
                lake.as_of(spark, _gold(name), recorded.inputs[key]),
                lake.table(spark, _gold(name)),
            )
            members = _changed_members(before, after, GOLD_DIMENSIONS[name].primary_key[0], member)
            if member == "customer_unique_id":  # a person's orders, through each of their customer_ids
                people = lake.table(spark, _silver("customers"), columns=["customer_id", member])
                touched.append(_orders_of(orders, people.join(members, member, "left_semi"), "customer_id"))
            else:
                items = lake.table(spark, _silver("order_items"), columns=["order_id", member])
                touched.append(items.join(members, member, "left_semi").select("order_id"))
    if not touched:
        return spark.createDataFrame([], "order_id string"), NO_CHANGE
    return functools.reduce(DataFrame.unionByName, touched).distinct(), "changed since last up to date"


def _orders_of(orders: DataFrame, rows: DataFrame, column: str) -> DataFrame:
    return orders.join(rows.select(column), column, "left_semi").select("order_id")


def _changed_members(before: DataFrame, after: DataFrame, key: str, member: str) -> DataFrame:
    """Members with a version row that is new, gone, or different (its valid_to, an attribute)."""
    columns = [c for c in after.columns if not c.startswith("_")]

    def hashed(rows: DataFrame, side: str) -> DataFrame:
        return rows.select(
            key, F.col(member).alias(f"_member_{side}"), F.xxhash64(*columns).alias(f"_hash_{side}")
        )

    differing = (
        hashed(after, "now")
        .join(hashed(before, "was"), key, "full_outer")
        .filter(~F.col("_hash_now").eqNullSafe(F.col("_hash_was")))
    )
    return differing.select(F.explode(F.array("_member_now", "_member_was")).alias(member)).filter(
        F.col(member).isNotNull()
    )
