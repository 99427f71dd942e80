"""Gold's history on Spark alone: SCD2 versions from same-day and out-of-order changes, the history
from the source's trail of attribute changes, the point-in-time join. (Gold through Dagster builds:
e2e/test_gold.py.)"""

import datetime as dt
from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake

from medallion_assets.gold.dimensions import version_changes
from medallion_assets.gold.history import UNKNOWN_KEY, record_states, scd2, version_at
from medallion_assets.resources.delta_lake import Lake
from medallion_assets.resources.spark import SparkResource
from medallion_assets.specs import TABLES_BY_NAME
from medallion_assets_tests.handmade import P1
from medallion_assets_tests.helpers import assert_scd2_invariants

# ------------------------------------------------------------------------ SCD2 and point in time


def test_scd2_same_day_and_out_of_order_changes(spark_resource: SparkResource) -> None:
    spark = spark_resource.session()
    states = [  # (member, record, valid_from, city) deliberately out of time order
        ("p", "r2", dt.datetime(2018, 3, 5, 17), "recife"),  # the second change on 5 March
        ("p", "r1", dt.datetime(2018, 3, 1, 10), "sao paulo"),
        ("p", "r1", dt.datetime(2018, 3, 5, 9), "santos"),  # the first change on 5 March
        ("p", "r1", dt.datetime(2018, 3, 3), "santos"),  # a state arriving late, before 5 March
        ("p", "r1", dt.datetime(2018, 3, 7), "recife"),  # no change: no new version
        ("p", "r1", dt.datetime(2018, 3, 9), "natal"),  # two records at one moment:
        ("p", "r2", dt.datetime(2018, 3, 9), "olinda"),  # the later record id wins
        ("q", "r3", dt.datetime(2018, 3, 2), "manaus"),
    ]
    frame = spark.createDataFrame(
        states, "person string, record string, valid_from timestamp_ntz, city string"
    )
    versions = scd2(frame, "person", ["city"], "person_key", tiebreak=["record"]).toArrow().to_pylist()
    assert_scd2_invariants(versions, "person", "person_key")
    history = [
        (r["city"], r["valid_from"])
        for r in sorted(versions, key=lambda r: r["valid_from"])
        if r["person"] == "p"
    ]
    assert history == [
        ("sao paulo", dt.datetime(2018, 3, 1, 10)),
        ("santos", dt.datetime(2018, 3, 3)),  # 5 March 09:00 repeats it: no version
        ("recife", dt.datetime(2018, 3, 5, 17)),
        ("olinda", dt.datetime(2018, 3, 9)),
    ]
    again = scd2(frame.orderBy("city"), "person", ["city"], "person_key", tiebreak=["record"]).toArrow()
    assert sorted(again.to_pylist(), key=str) == sorted(versions, key=str)  # keys stable across rebuilds


def _customer_bronze(rows: list[tuple[str, str, str, dt.datetime, dt.datetime]]) -> pa.Table:
    """Bronze customers as the source gave them: (id, city, state, created_at, updated_at)."""
    n = len(rows)
    spec = TABLES_BY_NAME["customers"]
    return pa.table(
        {
            "customer_id": [r[0] for r in rows],
            "customer_unique_id": [P1] * n,
            "customer_zip_code_prefix": ["01001"] * n,
            "customer_city": [r[1] for r in rows],
            "customer_state": [r[2] for r in rows],
            "created_at": pa.array([r[3] for r in rows], pa.timestamp("us")),
            "updated_at": pa.array([r[4] for r in rows], pa.timestamp("us")),
            "_ingested_at": pa.array(
                [dt.datetime(2018, 4, 1, tzinfo=dt.UTC)] * n, pa.timestamp("us", tz="UTC")
            ),
            "_source": ["test"] * n,
            "_run_id": ["test"] * n,
            "_change_ts": pa.array([r[4] for r in rows], pa.timestamp("us")),
            "_change_date": pa.array([r[4].date() for r in rows], pa.date32()),
        }
    ).select(
        [c.name for c in spec.columns]
        + ["created_at", "updated_at", "_ingested_at", "_source", "_run_id", "_change_ts", "_change_date"]
    )


def test_history_is_the_same_whether_bronze_saw_each_change_or_only_the_end(
    spark_resource: SparkResource, tmp_path: Path
) -> None:
    """A from-scratch build sees only each row's final version; the source's trail of attribute
    changes gives back the versions in between, equal to what a build that watched them captured."""
    c1, created = "c" * 32, dt.datetime(2018, 3, 1, 10)
    move, fix = dt.datetime(2018, 3, 9, 16), dt.datetime(2018, 3, 12)
    trail = pa.table(
        {
            "table_name": ["customers"] * 3,
            "row_key": [c1] * 3,
            "column_name": ["customer_city", "customer_state", "customer_city"],
            "old_value": ["São Paulo", "SP", "Rio de Janeiro"],  # as the source wrote them
            "new_value": ["Rio de Janeiro", "RJ", "rio de janeiro"],
            "_change_ts": pa.array([move, move, fix], pa.timestamp("us")),
        }
    )
    watched = _customer_bronze(
        [
            (c1, "São Paulo", "SP", created, created),
            (c1, "Rio de Janeiro", "RJ", created, move),
            (c1, "rio de janeiro", "RJ", created, fix),
        ]
    )
    final_only = watched.slice(2)
    states = {}
    for name, bronze in (("watched", watched), ("final_only", final_only)):
        root = tmp_path / name
        write_deltalake(f"{root}/bronze/customers", bronze)
        write_deltalake(f"{root}/bronze/attribute_changes", trail)
        lake = Lake(str(root), {})
        rows = record_states(
            spark_resource.session(), lake, TABLES_BY_NAME["customers"], ["customer_city", "customer_state"]
        )
        states[name] = sorted(rows.toArrow().to_pylist(), key=lambda r: r["valid_from"])
    assert states["watched"] == states["final_only"]
    assert [(s["valid_from"], s["customer_city"], s["customer_state"]) for s in states["watched"]] == [
        (created, "sao paulo", "SP"),
        (move, "rio de janeiro", "RJ"),
        (fix, "rio de janeiro", "RJ"),  # normalised like silver: the fix changes nothing, scd2 drops it
    ]


def test_point_in_time_join_picks_the_version_valid_then(spark_resource: SparkResource) -> None:
    spark = spark_resource.session()
    dimension = spark.createDataFrame(
        [
            (UNKNOWN_KEY, None, dt.datetime(1900, 1, 1), None),
            (11, "p", dt.datetime(2018, 3, 1), dt.datetime(2018, 3, 5)),
            (12, "p", dt.datetime(2018, 3, 5), None),
        ],
        "k long, person string, valid_from timestamp_ntz, valid_to timestamp_ntz",
    )
    facts = spark.createDataFrame(
        [
            ("before any version", "p", dt.datetime(2018, 2, 28)),
            ("at the first version's start", "p", dt.datetime(2018, 3, 1)),
            ("just before the change", "p", dt.datetime(2018, 3, 4, 23, 59, 59)),
            ("at the change", "p", dt.datetime(2018, 3, 5)),
            ("long after", "p", dt.datetime(2019, 1, 1)),
            ("unknown member", "x", dt.datetime(2018, 3, 2)),
            ("no member at all", None, dt.datetime(2018, 3, 2)),
        ],
        "case string, person string, at timestamp_ntz",
    )
    joined = version_at(facts, dimension, "person", "at", "k").toArrow().to_pylist()
    assert {r["case"]: r["k"] for r in joined} == {
        "before any version": UNKNOWN_KEY,
        "at the first version's start": 11,
        "just before the change": 11,
        "at the change": 12,
        "long after": 12,
        "unknown member": UNKNOWN_KEY,
        "no member at all": UNKNOWN_KEY,
    }
    assert len(joined) == facts.count()  # never dropped, never duplicated


def test_a_rebuild_counts_its_new_and_closed_versions(spark_resource: SparkResource) -> None:
    spark = spark_resource.session()
    schema = "key long, is_current boolean"
    before = spark.createDataFrame([(1, False), (2, True), (3, True), (4, True)], schema)
    # 2 closed by the new 5; 3 unchanged; 4 gone (its member left: no longer current either); 6 new.
    after = spark.createDataFrame([(1, False), (2, False), (3, True), (5, True), (6, True)], schema)
    assert version_changes(before, after, "key") == {
        "versions_new": 2,
        "versions_closed": 2,
        "versions": 5,
        "members_current": 3,
    }
    assert version_changes(None, after, "key") == {
        "versions_new": 5,
        "versions_closed": 0,
        "versions": 5,
        "members_current": 3,
    }
