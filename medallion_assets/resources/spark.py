"""One Spark session per process, created on first use and shared by every asset of the run.

A classic local session costs 5-15 s to start, so it is never built per step: runs execute in
process (see definitions.py), the session is cached here, and assets that do not need Spark never
start it. A local session loads Delta Lake, S3A and the PostgreSQL JDBC driver from the jars that
`make jars` installs (jars/pom.xml). With SPARK_REMOTE set, a Spark Connect session to that server
is used instead (~0.5 s to connect); the asset code is the same for both.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psutil
from pydantic import Field
from pyspark.sql import SparkSession

from medallion_assets.settings import Settings, get_settings

_lock = threading.Lock()


class SparkResource(dg.ConfigurableResource):
    """The run's Spark session: embedded local[*] by default, Spark Connect when SPARK_REMOTE is set."""

    remote: str | None = Field(None, description="SPARK_REMOTE: a Spark Connect URL (unset: local).")
    shuffle_partitions: int = Field(4, description="Small machine: few shuffle partitions.")
    driver_memory: str = Field(
        default_factory=lambda: default_driver_memory(),
        description="Local sessions only. Default: a third of the machine's memory, 2-16 GiB.",
    )

    def session(self) -> SparkSession:
        settings = get_settings()
        remote = self.remote or settings.spark_remote
        local = None if remote else LocalSpark.of(settings)
        with _lock:
            session = _session(remote, local, self.shuffle_partitions, self.driver_memory)
            if local is not None:
                for key, value in s3a_access(settings).items():
                    session.conf.set(key, value)
            return session


def s3a_access(settings: Settings) -> dict[str, str]:
    """How this process's own (local) Spark reaches an s3:// lake, from the settings of the moment:
    the JVM's environment is fixed when it starts, the settings are not. Spark redacts the keys
    (`spark.redaction.regex` matches secret/access.key) wherever it shows its configuration. A Spark
    Connect server uses its own environment and settings instead."""
    access = {
        "fs.s3a.endpoint": settings.aws_endpoint_url,
        "fs.s3a.endpoint.region": settings.aws_region,
        "fs.s3a.access.key": settings.aws_access_key_id,
        "fs.s3a.secret.key": (
            settings.aws_secret_access_key.get_secret_value() if settings.aws_secret_access_key else None
        ),
    }
    if settings.aws_endpoint_url:
        access["fs.s3a.connection.ssl.enabled"] = str(settings.aws_endpoint_url.startswith("https"))
    return {key: value for key, value in access.items() if value}


def start_in_background(spark: SparkResource) -> None:
    """Start the session while the caller does other work (a local JVM takes 5-15 s to start): a
    build lands bronze, which needs no Spark, meanwhile. The first step that needs the session waits
    for it under the lock; a failure to start is raised there, not here."""

    def start() -> None:
        with contextlib.suppress(Exception):  # raised again by the step that needs Spark
            spark.session()

    threading.Thread(target=start, name="spark-start", daemon=True).start()


def default_driver_memory() -> str:
    """A local session's driver holds the data handed to Spark through Arrow, so it gets a third of
    the machine's memory (2-16 GiB): 4 GiB ran out of heap on a scale-10 silver backfill."""
    third = psutil.virtual_memory().total // 3 // 2**30
    return f"{min(max(third, 2), 16)}g"


class SparkJarsMissingError(RuntimeError):
    """The jars a local session needs (Delta Lake, S3A, JDBC) are not installed."""


@dataclass(frozen=True)
class LocalSpark:
    """What a local session loads and how it reaches an s3:// lake."""

    jars_dir: Path
    s3_endpoint: str | None
    s3_region: str | None

    @classmethod
    def of(cls, settings: Settings) -> LocalSpark:
        return cls(settings.spark_jars_dir, settings.aws_endpoint_url, settings.aws_region)

    def config(self) -> dict[str, str]:
        jars = sorted(self.jars_dir.glob("*.jar"))
        if not jars:
            raise SparkJarsMissingError(
                f"no Spark jars in {self.jars_dir}: run `make jars` (Maven fetches the versions pinned in"
                " jars/pom.xml), or point MEDALLION_SPARK_JARS at a folder that holds them"
            )
        config = {
            "spark.jars": ",".join(str(jar) for jar in jars),
            "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
            "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
            # s3:// and s3a:// lakes through S3A. Its default credential chain reads AWS_ACCESS_KEY_ID
            # and AWS_SECRET_ACCESS_KEY from the environment the JVM inherits: no secret in Spark's conf.
            "spark.hadoop.fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
            "spark.hadoop.fs.s3a.path.style.access": "true",  # MinIO and other S3 servers
        }
        if self.s3_endpoint:
            config["spark.hadoop.fs.s3a.endpoint"] = self.s3_endpoint
            config["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(self.s3_endpoint.startswith("https"))
        if self.s3_region:
            config["spark.hadoop.fs.s3a.endpoint.region"] = self.s3_region
        return config


@functools.cache
def _session(
    remote: str | None, local: LocalSpark | None, shuffle_partitions: int, driver_memory: str
) -> SparkSession:
    builder = SparkSession.builder.appName("medallion_assets")
    if remote:
        builder = builder.remote(remote)
    else:
        assert local is not None
        builder = (
            builder.master("local[*]")
            .config("spark.driver.memory", driver_memory)
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
        )
        for key, value in local.config().items():
            builder = builder.config(key, value)
    session = builder.getOrCreate()
    for key, value in {
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        # Olist times have no zone: naive Arrow timestamps become TIMESTAMP_NTZ, and back.
        "spark.sql.timestampType": "TIMESTAMP_NTZ",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # Tables stay readable by delta-rs, DuckDB and BI tools: no deletion vectors (a MERGE
        # rewrites the files it touches), and the protocol Delta picks for the columns
        # (reader 3 / writer 7 with timestampNtz for zone-less times, which delta-rs reads).
        "spark.databricks.delta.properties.defaults.enableDeletionVectors": "false",
        # Delta rebuilds a table's state from its log in this many tasks (default 50): 50 tiny
        # tasks per commit and per read on a small machine (measured: a replaceWhere of 100 rows
        # 1.1 s -> 0.7 s, a count 3 s -> 0.8 s).
        "spark.databricks.delta.snapshotPartitions": "2",
    }.items():
        session.conf.set(key, value)
    if not remote:
        session.sparkContext.setLogLevel("ERROR")
    return session
