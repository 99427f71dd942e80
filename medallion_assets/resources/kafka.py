"""Kafka, the web shop's event bus: the one door to it (the official client, confluent-kafka, for
producing, offsets and topics; Spark's own Kafka source for reading into the lake).

MEDALLION_KAFKA_BOOTSTRAP names a cluster; unset, the embedded broker is started on first use
(resources/kafka_server.py). Security settings (SASL, TLS) come from the environment only, and the
password never reaches a log, a repr or metadata.
"""

from __future__ import annotations

import logging
from typing import Any

import dagster as dg
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from pydantic import Field

from medallion_assets.resources.kafka_server import KafkaServer
from medallion_assets.settings import Settings, get_settings

LOG = logging.getLogger("medallion.kafka")


class _RetriedByTheClient(logging.Filter):
    """A broker just started still loads its coordinators; librdkafka retries by itself, so its
    "... in progress: retrying" is shown as DEBUG, not as a warning on every first produce."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "in progress: retrying" in record.getMessage():
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


LOG.addFilter(_RetriedByTheClient())


class KafkaError(RuntimeError):
    """Kafka cannot be reached or refused an operation; the message names no secret."""


def client_config(settings: Settings) -> dict[str, Any]:
    """librdkafka's settings for the configured cluster (the embedded broker started if needed)."""
    bootstrap = settings.kafka_bootstrap or KafkaServer.of(settings).start()
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "security.protocol": settings.kafka_security_protocol,
        # librdkafka's messages (a broker restarting: "connection refused") into Python's logging,
        # not onto stderr.
        "logger": LOG,
    }
    if settings.kafka_sasl_mechanism:
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
        config["sasl.username"] = settings.kafka_sasl_username or ""
        password = settings.kafka_sasl_password
        config["sasl.password"] = password.get_secret_value() if password else ""
    if settings.kafka_ssl_ca_location:
        config["ssl.ca.location"] = settings.kafka_ssl_ca_location
    return config


class KafkaResource(dg.ConfigurableResource):
    """Producers, offsets and topics of the configured Kafka cluster."""

    bootstrap: str | None = Field(None, description="Override MEDALLION_KAFKA_BOOTSTRAP.")

    def settings(self) -> Settings:
        return get_settings(**({"kafka_bootstrap": self.bootstrap} if self.bootstrap else {}))

    def config(self) -> dict[str, Any]:
        return client_config(self.settings())

    def is_up(self) -> bool:
        """A cluster is configured, or the embedded broker is running: what a poll asks before it
        reads offsets, so that polling never starts the embedded broker."""
        settings = self.settings()
        return bool(settings.kafka_bootstrap) or KafkaServer.of(settings).status().running

    def spark_options(self) -> dict[str, str]:
        """Spark's Kafka source options for the same cluster (Kafka's Java client: the password in
        a JAAS line, a PEM CA file as a PEM trust store). Spark redacts option values matching
        `spark.redaction.regex` (password) in what it shows."""
        config = self.config()
        options = {
            "kafka.bootstrap.servers": config["bootstrap.servers"],
            "kafka.security.protocol": config["security.protocol"],
        }
        if "sasl.mechanism" in config:
            plain = config["sasl.mechanism"] == "PLAIN"
            module = "plain.PlainLoginModule" if plain else "scram.ScramLoginModule"
            options["kafka.sasl.mechanism"] = config["sasl.mechanism"]
            options["kafka.sasl.jaas.config"] = (
                f"org.apache.kafka.common.security.{module} required "
                f'username="{config["sasl.username"]}" password="{config["sasl.password"]}";'
            )
        if "ssl.ca.location" in config:
            options["kafka.ssl.truststore.type"] = "PEM"
            options["kafka.ssl.truststore.location"] = config["ssl.ca.location"]
        return options

    def producer(self) -> Producer:
        # Idempotent: a retried send is written once per partition (acks from every in-sync replica).
        return Producer({**self.config(), "enable.idempotence": True, "acks": "all", "linger.ms": 20})

    def ensure_topic(self, name: str, partitions: int) -> None:
        """Create the topic unless it exists (its partition count is then left as it is)."""
        admin = AdminClient(self.config())
        if name in admin.list_topics(timeout=30).topics:
            return
        future = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=-1)])[name]
        try:
            future.result(timeout=30)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):  # created meanwhile by another process
                raise KafkaError(f"cannot create the Kafka topic {name}: {exc.args[0]}") from None

    def end_offsets(self, topic: str) -> dict[int, int]:
        """The next offset of every partition of the topic ({} when the topic does not exist)."""
        consumer = Consumer({**self.config(), "group.id": "medallion-offsets", "enable.auto.commit": False})
        try:
            metadata = consumer.list_topics(topic, timeout=30).topics.get(topic)
            if metadata is None or metadata.error is not None:
                return {}
            return {
                partition: consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)[1]
                for partition in sorted(metadata.partitions)
            }
        except KafkaException as exc:
            raise KafkaError(f"cannot read the offsets of the Kafka topic {topic}: {exc.args[0]}") from None
        finally:
            consumer.close()
