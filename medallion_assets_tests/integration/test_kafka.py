"""The embedded Kafka broker (a real Apache Kafka 4.4 KRaft node from the project's jars) and the
Kafka resource: started on first use, kept between commands, stopped cleanly, its topics kept."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer

from medallion_assets.resources.kafka import KafkaResource, client_config
from medallion_assets.resources.kafka_server import KafkaServer
from medallion_assets.resources.spark import SparkResource
from medallion_assets.settings import get_settings


def consume_all(topic: str, expected: int) -> list[dict]:
    consumer = Consumer(
        {**client_config(get_settings()), "group.id": "test", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    values: list[dict] = []
    try:
        for _ in range(60):
            for message in consumer.consume(1000, timeout=1):
                assert message.error() is None, message.error()
                values.append(json.loads(message.value()))
            if len(values) >= expected:
                break
    finally:
        consumer.close()
    return values


def test_the_broker_starts_on_first_use_and_keeps_its_topics_across_a_restart(
    kafka_home: KafkaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A new node's random cluster id, here one that begins with "-" (1 in 64 of them did break the
    # storage format: CI at c4c2099).
    dashed = uuid.UUID(bytes=b"\xf8" + bytes(15))
    monkeypatch.setattr("medallion_assets.resources.kafka_server.uuid.uuid4", lambda: dashed)
    assert not kafka_home.status().running
    kafka = KafkaResource()
    kafka.ensure_topic("events", 3)  # the first use starts the broker
    assert kafka_home.status().running and kafka_home.status().bootstrap.startswith("127.0.0.1:")
    kafka.ensure_topic("events", 3)  # exists: nothing to do
    producer = kafka.producer()
    for i in range(1000):
        producer.produce("events", key=f"order-{i % 50}", value=json.dumps({"id": i}))
    assert producer.flush(30) == 0
    offsets = kafka.end_offsets("events")
    assert len(offsets) == 3 and sum(offsets.values()) == 1000
    assert kafka.end_offsets("no-such-topic") == {}

    # `medallion kafka stop` in another process stops this home's broker; the topics stay.
    stopped = subprocess.run(
        [str(Path(sys.executable).parent / "medallion"), "kafka", "stop"], capture_output=True, text=True
    )
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stderr
    assert not kafka_home.status().running
    assert kafka.end_offsets("events") == offsets  # started again on use
    assert sorted(v["id"] for v in consume_all("events", 1000)) == list(range(1000))


def test_a_broker_started_by_a_process_deaf_to_sigterm_still_stops_cleanly(kafka_home: KafkaServer) -> None:
    # A `medallion build` started in the background inherits SIGINT ignored, and after its first
    # run Dagster has mapped SIGTERM to the same: the broker it starts must not inherit that, or a
    # stop waits out its 30 s grace and kills it (three tests' teardowns in CI did).
    deaf = (
        "import signal; [signal.signal(s, signal.SIG_IGN) for s in (signal.SIGTERM, signal.SIGINT)]; "
        "from medallion_assets.resources.kafka import KafkaResource; KafkaResource().ensure_topic('t', 1)"
    )
    subprocess.run([sys.executable, "-c", deaf], check=True, timeout=120)
    assert kafka_home.status().running
    started = time.monotonic()
    assert kafka_home.stop()
    assert time.monotonic() - started < 10  # SIGTERM's clean shutdown: ~0.3 s
    assert not kafka_home.status().running


def test_a_broker_elsewhere_is_used_as_configured_and_its_password_never_shown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MEDALLION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDALLION_KAFKA_BOOTSTRAP", "kafka-1.example:9093,kafka-2.example:9093")
    monkeypatch.setenv("MEDALLION_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("MEDALLION_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("MEDALLION_KAFKA_SASL_USERNAME", "shop")
    monkeypatch.setenv("MEDALLION_KAFKA_SASL_PASSWORD", "s3cret-kafka")
    settings = get_settings()
    config = client_config(settings)
    assert config["bootstrap.servers"] == "kafka-1.example:9093,kafka-2.example:9093"
    assert (config["security.protocol"], config["sasl.mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert config["sasl.password"] == "s3cret-kafka"  # handed to the client only
    assert "s3cret-kafka" not in repr(settings) and "s3cret-kafka" not in str(KafkaResource())
    assert not (tmp_path / "home" / "kafka").exists()  # nothing embedded was started


def test_spark_reads_a_topic_through_its_kafka_source(
    kafka_home: KafkaServer, spark_resource: SparkResource
) -> None:
    """The streaming lane's reader: Spark's own Kafka source (the jars of `make jars`) on the broker."""
    kafka = KafkaResource()
    kafka.ensure_topic("clicks", 2)
    producer = kafka.producer()
    for i in range(100):
        producer.produce("clicks", key=f"session-{i % 7}", value=json.dumps({"id": i}))
    assert producer.flush(30) == 0
    frame = (
        spark_resource.session()
        .read.format("kafka")
        .option("kafka.bootstrap.servers", kafka_home.bootstrap)
        .option("subscribe", "clicks")
        .option("startingOffsets", "earliest")
        .load()
    )
    per_partition = {row["partition"]: row["count"] for row in frame.groupBy("partition").count().collect()}
    assert per_partition == {p: n for p, n in kafka.end_offsets("clicks").items() if n}
    assert sum(per_partition.values()) == 100
