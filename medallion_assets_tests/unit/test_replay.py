"""The derivation of change history from final-state files, on hand-made rows and on the sample."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from medallion_assets.specs import OLIST_TABLES, TABLES_BY_NAME
from olist_source.replay import build_replay

T = dt.datetime


def empty_tables() -> dict[str, pa.Table]:
    return {spec.name: spec.arrow_schema.empty_table() for spec in OLIST_TABLES}


def orders(*rows: tuple) -> pa.Table:
    spec = TABLES_BY_NAME["orders"]
    names = [c.name for c in spec.columns]
    return pa.Table.from_pylist([dict(zip(names, r, strict=True)) for r in rows], schema=spec.arrow_schema)


def versions_of(replay, table: str, key: str, value: str) -> list[dict]:
    v = replay.versions[table]
    rows = v.filter(pc.equal(v[key], value)).to_pylist()
    return sorted(rows, key=lambda r: (r["valid_from"], r["version_no"]))


def test_order_lifecycle_versions() -> None:
    tables = empty_tables()
    tables["orders"] = orders(
        (
            "delivered",
            "c1",
            "delivered",
            T(2017, 1, 1, 10),
            T(2017, 1, 1, 11),
            T(2017, 1, 3),
            T(2017, 1, 9),
            T(2017, 1, 20),
        ),
        # carrier date before approval (real Olist has such rows): shipped 1 s after approval
        (
            "odd",
            "c2",
            "delivered",
            T(2017, 2, 1, 10),
            T(2017, 2, 2),
            T(2017, 2, 1, 12),
            T(2017, 2, 5),
            T(2017, 2, 20),
        ),
        ("canceled", "c3", "canceled", T(2017, 3, 1, 10), T(2017, 3, 1, 10), None, None, T(2017, 3, 20)),
        ("created", "c4", "created", T(2017, 4, 1, 10), None, None, None, T(2017, 4, 20)),
    )
    replay = build_replay(tables, attribute_changes="none")

    delivered = versions_of(replay, "orders", "order_id", "delivered")
    assert [v["order_status"] for v in delivered] == ["created", "approved", "shipped", "delivered"]
    assert [v["valid_from"] for v in delivered] == [
        T(2017, 1, 1, 10),
        T(2017, 1, 1, 11),
        T(2017, 1, 3),
        T(2017, 1, 9),
    ]
    assert delivered[1]["order_delivered_carrier_date"] is None  # not known yet when approved
    assert delivered[-1]["order_delivered_customer_date"] == T(2017, 1, 9)
    assert all(v["created_at"] == T(2017, 1, 1, 10) for v in delivered)

    odd = versions_of(replay, "orders", "order_id", "odd")
    assert [v["valid_from"] for v in odd][1:3] == [T(2017, 2, 2), T(2017, 2, 2, 0, 0, 1)]
    assert odd[2]["order_delivered_carrier_date"] == T(2017, 2, 1, 12)  # the value stays as written

    canceled = versions_of(replay, "orders", "order_id", "canceled")
    assert [v["order_status"] for v in canceled] == ["created", "approved", "canceled"]
    # approval at the purchase second happens 1 s later; cancellation 1-72 h after the last fact
    assert canceled[1]["valid_from"] == T(2017, 3, 1, 10, 0, 1)
    assert (
        dt.timedelta(hours=1)
        <= canceled[2]["valid_from"] - canceled[1]["valid_from"]
        <= dt.timedelta(hours=72)
    )

    assert [v["order_status"] for v in versions_of(replay, "orders", "order_id", "created")] == ["created"]


def test_every_key_ends_as_the_file_row_and_times_increase(sample_tables: dict[str, pa.Table]) -> None:
    replay = build_replay(sample_tables, attribute_changes="none")
    for spec in OLIST_TABLES:
        keys = list(spec.primary_key)
        ordered = replay.versions[spec.name].sort_by(
            [(k, "ascending") for k in keys] + [("valid_from", "ascending")]
        )
        key = pc.binary_join_element_wise(*[pc.cast(ordered[k], pa.string()) for k in keys], "|").to_numpy(
            zero_copy_only=False
        )
        valid_from = ordered["valid_from"].to_numpy()
        same_key_next = key[1:] == key[:-1]
        assert (valid_from[1:][same_key_next] > valid_from[:-1][same_key_next]).all(), spec.name  # increasing
        is_last = np.append(~same_key_next, True)
        final = ordered.filter(pa.array(is_last)).select([c.name for c in spec.all_columns])
        expected = sample_tables[spec.name].sort_by([(k, "ascending") for k in keys])
        assert final.cast(expected.schema).equals(expected), spec.name


def test_orphans_and_reference_tables_are_known_from_genesis(sample_tables: dict[str, pa.Table]) -> None:
    replay = build_replay(sample_tables)
    genesis = replay.genesis.astype("datetime64[us]").item()
    assert genesis == min(
        pc.min(sample_tables["orders"]["order_purchase_timestamp"]).as_py(),
        pc.min(sample_tables["order_reviews"]["review_creation_date"]).as_py(),
    )
    payments = replay.versions["order_payments"]
    known_orders = pc.is_in(payments["order_id"], sample_tables["orders"]["order_id"])
    orphan_times = pc.unique(payments.filter(pc.invert(known_orders))["valid_from"]).to_pylist()
    assert orphan_times == [genesis]
    assert pc.unique(replay.versions["geolocation"]["valid_from"]).to_pylist() == [genesis]


def test_attribute_changes_are_deterministic_and_recorded(sample_tables: dict[str, pa.Table]) -> None:
    first = build_replay(sample_tables, seed=1)
    assert first.attribute_changes.equals(build_replay(sample_tables, seed=1).attribute_changes)
    assert not first.attribute_changes.equals(build_replay(sample_tables, seed=2).attribute_changes)
    changes = first.attribute_changes
    assert set(pc.unique(changes["column_name"]).to_pylist()) >= {
        "customer_zip_code_prefix",
        "product_category_name",
        "product_weight_g",
        "seller_zip_code_prefix",
    }
    end = first.end.astype("datetime64[us]").item()
    assert pc.all(pc.less_equal(changes["changed_at"], pa.scalar(end))).as_py()
    assert pc.all(pc.not_equal(changes["old_value"], changes["new_value"])).as_py()
