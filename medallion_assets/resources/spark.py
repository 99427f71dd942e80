"""One Spark session per process, created on first use and shared by every asset of the run.

A classic local session costs 5-15 s to start, so it is never built per step: runs execute in
process (see definitions.py), the session is cached here, and assets that do not need Spark never
start it. With SPARK_REMOTE set, a Spark Connect session to that server is used instead (~0.5 s to
connect); the asset code is the same for both.
"""

from __future__ import annotations

import contextlib
import functools
import threading

import dagster as dg
import psutil
from pydantic import Field
from pyspark.sql import SparkSession

from medallion_assets.settings import get_settings

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
        with _lock:
            remote = self.remote or get_settings().spark_remote
            return _session(remote, self.shuffle_partitions, self.driver_memory)


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


@functools.cache
def _session(remote: str | None, shuffle_partitions: int, driver_memory: str) -> SparkSession:
    builder = SparkSession.builder.appName("medallion_assets")
    if remote:
        builder = builder.remote(remote)
    else:
        builder = (
            builder.master("local[*]")
            .config("spark.driver.memory", driver_memory)
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
        )
    session = builder.getOrCreate()
    for key, value in {
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        # Olist times have no zone: naive Arrow timestamps become TIMESTAMP_NTZ, and back.
        "spark.sql.timestampType": "TIMESTAMP_NTZ",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
    }.items():
        session.conf.set(key, value)
    if not remote:
        session.sparkContext.setLogLevel("ERROR")
    return session
