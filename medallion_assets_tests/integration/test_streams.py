"""The stream lane's bronze against the real broker on loopback: Spark Structured Streaming lands a
topic in Delta exactly once, quarantines what does not parse, and survives a kill -9 mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from deltalake import DeltaTable

from medallion_assets.automation.event_streams import event_streams_sensor
from medallion_assets.bronze.streams import stream_assets
from medallion_assets.quality.checks import build_table_checks
from medallion_assets.resources.delta_lake import LakeResource
from medallion_assets.resources.kafka import KafkaResource
from medallion_assets.resources.kafka_server import KafkaServer
from medallion_assets.resources.spark import SparkResource
from medallion_assets.specs.events import REVIEW_EVENTS, event_bronze_table, event_quarantine_table
from olist_source.events import event_id

TOPIC = REVIEW_EVENTS.topic
LAND = next(a for a in stream_assets() if a.node_def.name == f"bronze_{REVIEW_EVENTS.name}")


def review_event(n: int, day: int = 1, kind: str = "review_created") -> dict:
    order = f"{n:032x}"
    return {
        "event_id": event_id(REVIEW_EVENTS, n, order, kind),
        "event_type": kind,
        "event_time": f"2018-03-{day:02d} 10:{n % 60:02d}:00",
        "review_id": f"{n + 7:032x}",
        "order_id": order,
        "review_score": 1 + n % 5,
        "review_comment_title": None,
        "review_comment_message": "ótimo" if n % 3 else None,
        "review_creation_date": f"2018-03-{day:02d} 00:00:00",
        "review_answer_timestamp": None,
        "created_at": f"2018-03-{day:02d} 10:{n % 60:02d}:00",
        "updated_at": f"2018-03-{day:02d} 10:{n % 60:02d}:00",
    }


# One of each way a record can be bad, with the rule it must be quarantined under.
MALFORMED: list[tuple[bytes | None, str]] = [
    (b'{"event_id": "x", "event_type": ', "malformed_json"),
    (b"[1, 2, 3]", "malformed_json"),
    (b"\xff\xfe not text", "malformed_json"),
    (None, "empty_record"),
    (json.dumps({**review_event(1), "event_id": None}).encode(), "missing:event_id"),
    (json.dumps({k: v for k, v in review_event(2).items() if k != "order_id"}).encode(), "missing:order_id"),
    (json.dumps({**review_event(3), "review_score": "five"}).encode(), "type:review_score"),
    (json.dumps({**review_event(4), "event_time": "yesterday"}).encode(), "type:event_time"),
]


def produce(kafka: KafkaResource, values: list[bytes | None]) -> None:
    producer = kafka.producer()
    for i, value in enumerate(values):
        while True:
            try:
                producer.produce(TOPIC, key=f"k{i % 97}", value=value)
                break
            except BufferError:  # the client's queue is full: let deliveries drain it
                producer.poll(0.5)
    assert producer.flush(60) == 0


BRONZE = dg.AssetKey(["bronze", REVIEW_EVENTS.name])
QUARANTINE = dg.AssetKey(["quarantine", REVIEW_EVENTS.name])


def tick() -> list[dg.RunRequest]:
    """One tick of the event-stream sensor: the runs it requests for review events."""
    sensor = event_streams_sensor(dg.DefaultSensorStatus.RUNNING)
    context = dg.build_sensor_context(resources={"kafka": KafkaResource(), "lakehouse": LakeResource()})
    result = sensor(context)
    assert isinstance(result, dg.SensorResult | dg.SkipReason)
    requests = result.run_requests or [] if isinstance(result, dg.SensorResult) else []
    return [r for r in requests if BRONZE in (r.asset_selection or [])]


# The checks of both tables, as the code location has them (the daily partitions do not apply).
CHECKS = [
    build_table_checks(table, dg.DailyPartitionsDefinition("2018-01-01"))
    for table in (event_bronze_table(REVIEW_EVENTS), event_quarantine_table(REVIEW_EVENTS))
]


def land(spark: SparkResource) -> dg.ExecuteInProcessResult:
    result = dg.materialize(
        [LAND, *CHECKS], resources={"spark": spark, "lakehouse": LakeResource(), "kafka": KafkaResource()}
    )
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 4 and all(e.passed for e in evaluations), evaluations
    return result


def metadata_of(result: dg.ExecuteInProcessResult, layer: str) -> dict:
    events = result.get_asset_materialization_events()
    found = next(e for e in events if e.asset_key == dg.AssetKey([layer, REVIEW_EVENTS.name]))
    return {k: v.value for k, v in found.materialization.metadata.items()}


def lake_rows(lake: Path, layer: str) -> list[dict]:
    return DeltaTable(str(lake / layer / REVIEW_EVENTS.name)).to_pyarrow_table().to_pylist()


@pytest.fixture
def lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MEDALLION_LAKE_URI", str(tmp_path / "lake"))
    return tmp_path / "lake"


# Good records in the exactly-once test, one micro-batch (several batches and a kill between them
# are the next test's).
GOOD = 20_000


@pytest.mark.slow
def test_a_topic_lands_exactly_once_and_bad_records_go_to_quarantine(
    kafka_home: KafkaServer, lake: Path, spark_resource: SparkResource
) -> None:
    kafka = KafkaResource()
    assert tick() == [] and not kafka_home.status().running  # a poll never starts the broker
    kafka.ensure_topic(TOPIC, REVIEW_EVENTS.partitions)
    good = [json.dumps(review_event(n, day=1 + n % 28)).encode() for n in range(GOOD)]
    bad = [value for value, _ in MALFORMED] * 125  # 1,000 bad records among them
    read = GOOD + len(bad)
    values = [v for pair in zip(good[: len(bad)], bad, strict=True) for v in pair] + good[len(bad) :]
    produce(kafka, values)
    produced = time.perf_counter()
    first_tick = tick()
    assert [r.asset_selection for r in first_tick] == [[BRONZE, QUARANTINE]]

    result = land(spark_resource)
    assert result.success
    latency = time.perf_counter() - produced
    print(f"{read:,} records from the broker to bronze in {latency:.1f} s ({read / latency:,.0f}/s)")
    bronze, quarantine = metadata_of(result, "bronze"), metadata_of(result, "quarantine")
    assert bronze["rows_landed"] == GOOD == bronze["dagster/row_count"]
    assert bronze["records_read"] == read
    assert sum(bronze["offsets_end"][TOPIC].values()) == read
    assert bronze["event_dates"] == {f"2018-03-{d:02d}": len(range(d - 1, GOOD, 28)) for d in range(1, 29)}
    by_rule: dict[str, int] = {}
    for _, rule in MALFORMED:
        by_rule[rule] = by_rule.get(rule, 0) + 125
    assert quarantine["quarantined_by_rule"] == by_rule and quarantine["rows_quarantined"] == 1_000

    rows = lake_rows(lake, "quarantine")
    assert all(r["reason"] and r["_topic"] == TOPIC for r in rows)
    assert {r["_raw"] for r in rows if r["rule"] == "empty_record"} == {None}
    assert b"\xff\xfe not text" in {r["_raw"] for r in rows}  # the bytes as they came
    typed = next(r for r in lake_rows(lake, "bronze") if r["order_id"] == f"{5:032x}")
    assert typed["review_score"] == 1 and typed["event_time"].isoformat() == "2018-03-06T10:05:00"
    assert typed["_event_date"].isoformat() == "2018-03-06" and json.loads(typed["_raw"])["review_score"] == 1

    # Nothing new: the sensor asks for nothing; a run anyway lands nothing, the tables as they were.
    assert tick() == []
    again = land(spark_resource)
    assert metadata_of(again, "bronze")["rows_landed"] == 0
    assert metadata_of(again, "bronze")["dagster/row_count"] == GOOD

    # The broker restarts between two runs. A late event lands in its own day; a producer's retry
    # delivering an event twice is two records in bronze (two offsets, one event id: silver keeps one).
    kafka_home.stop()
    late = json.dumps(review_event(GOOD + 1, day=1)).encode()
    produce(kafka, [late, late])  # the broker starts again on use, its log kept
    (request,) = tick()
    assert request.run_key != first_tick[0].run_key
    third = metadata_of(land(spark_resource), "bronze")
    assert third["rows_landed"] == 2 and third["event_dates"] == {"2018-03-01": 2}
    landed = lake_rows(lake, "bronze")
    assert len(landed) == GOOD + 2
    assert len({(r["_partition"], r["_offset"]) for r in landed}) == GOOD + 2


# The killed run's micro-batches are a tenth of the product's (50,000 records), so that a tenth of
# the records still make several batches to kill it between.
KILLED_BATCH = 5_000
KILLED_RUN = f"""
import medallion_assets.bronze.streams as streams
from medallion_assets_tests.integration.test_streams import land
from medallion_assets.resources.spark import SparkResource
streams.MAX_OFFSETS_PER_BATCH = {KILLED_BATCH}
land(SparkResource())
"""


@pytest.mark.slow
def test_a_run_killed_mid_batch_then_run_again_lands_each_record_once(
    kafka_home: KafkaServer, lake: Path, spark_resource: SparkResource, tmp_path: Path
) -> None:
    kafka = KafkaResource()
    kafka.ensure_topic(TOPIC, REVIEW_EVENTS.partitions)
    records = 3 * KILLED_BATCH
    produce(kafka, [json.dumps(review_event(n, day=1 + n % 5)).encode() for n in range(records)])
    # A run in its own process (its own Spark), killed with SIGKILL once it has committed a batch.
    log = (tmp_path / "killed.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN],
        env=os.environ,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    commits = lake / "bronze" / REVIEW_EVENTS.name / "_checkpoint" / "commits"
    deadline = time.monotonic() + 240
    while not (commits.exists() and any(commits.iterdir())) and time.monotonic() < deadline:
        assert process.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    partial = len(lake_rows(lake, "bronze"))
    assert 0 < partial < records, partial  # killed between its first batch and its last

    assert len(tick()) == 1  # what the killed run left is asked for again
    assert land(spark_resource).success
    landed = lake_rows(lake, "bronze")
    assert len(landed) == records
    assert len({(r["_partition"], r["_offset"]) for r in landed}) == records
    assert len({r["event_id"] for r in landed}) == records
    assert tick() == []

    # A kill between the two queries' commits: bronze's checkpoint at the end, quarantine's one
    # batch behind. The sensor goes by the one further behind; the run replays that batch into
    # quarantine, which Delta's sink writes once (its log knows the batch), and bronze stays as it is.
    produce(kafka, [b"not json"] * 10)
    land(spark_resource)
    quarantine_commits = lake / "quarantine" / REVIEW_EVENTS.name / "_checkpoint" / "commits"
    last = max(int(f.name) for f in quarantine_commits.iterdir() if f.name.isdigit())
    for name in (str(last), f".{last}.crc"):  # the commit and its checksum (a local file system's)
        (quarantine_commits / name).unlink(missing_ok=True)
    assert len(tick()) == 1
    assert land(spark_resource).success
    assert len(lake_rows(lake, "bronze")) == records
    assert len(lake_rows(lake, "quarantine")) == 10
    assert tick() == []
