"""The Spark resource: every asset of a run gets one Spark session, created on first use.

Where the session's Spark runs (the topology; `SparkResource.topology`):
- default: the embedded Spark Connect server (resources/spark_server.py), started on first use under
  $MEDALLION_HOME like the embedded PostgreSQL and kept between commands. Run processes, sensors
  and `dagster dev` are thin clients: they hold no table data and start no JVM (~0.5 s to connect
  instead of 5-15 s to start one per process).
- SPARK_REMOTE=sc://host:port: any other Spark Connect server (a cluster).
- MEDALLION_SPARK=local: a classic session inside this process (tests that need one, a notebook).
The asset code is the same for all three. The session is cached per process, so a run's steps share
it, and assets that do not need Spark never create it.

It is dagster-pyspark's `LazyPySparkResource` (a session built from `spark_config` on first use);
what it adds: the topology chosen from settings, the embedded server started before connecting, the
session settings every layer relies on, and S3A access set per session from the settings.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import socket
import threading
from typing import Any
from urllib.parse import urlsplit

from dagster_pyspark import LazyPySparkResource
from pydantic import Field
from pyspark.sql import DataFrame, SparkSession

from medallion_assets.resources.spark_server import LocalSpark, SparkServer, default_driver_memory
from medallion_assets.settings import Settings, get_settings

_lock = threading.Lock()

# What every session gets, whatever its topology: the semantics the layers rely on.
SESSION_SETTINGS = {
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
    # 1.1 s -> 0.7 s, a count 3 s -> 0.8 s with 2). One task: a table's log here is a few
    # checkpoints and JSON commits, one task reads it (a whole build 101.4 -> 98.4 s, means of
    # three alternating pairs, every pair faster).
    "spark.databricks.delta.snapshotPartitions": "1",
    # Source options shown in plans and the UI are redacted when their name matches (Spark's
    # default: url). The Kafka source's SASL JAAS line holds a password.
    "spark.sql.redaction.options.regex": "(?i)url|password|secret|token|jaas",
}

# MEDALLION_SPARK_CODEGEN (settings): Spark's defaults, or no code generated at all. Both are set
# either way, so a session's mode is the setting's whatever the JVM's defaults are.
CODEGEN_SETTINGS = {
    "compiled": {"spark.sql.codegen.wholeStage": "true", "spark.sql.codegen.factoryMode": "FALLBACK"},
    "interpreted": {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"},
}

# The frames the current step cached: a run's steps may run side by side in threads (one step per
# thread, see dagster_internals.threaded_in_process_executor), so a step frees its own cached frames
# when done; `catalog.clearCache()` would drop those of the step beside it as well.
_step_cache = threading.local()


def cached(frame: DataFrame) -> DataFrame:
    """`frame.cache()`, remembered for `release_cached` in this thread (the step's)."""
    if not hasattr(_step_cache, "frames"):
        _step_cache.frames = []
    _step_cache.frames.append(frame.cache())
    return frame


def release_cached() -> None:
    """Unpersist what this thread's step cached with `cached`."""
    for frame in getattr(_step_cache, "frames", []):
        frame.unpersist()
    _step_cache.frames = []


class SparkResource(LazyPySparkResource):
    """The run's Spark session: the embedded Spark Connect server by default, another Spark Connect
    server with SPARK_REMOTE, a classic in-process session with MEDALLION_SPARK=local."""

    spark_config: dict[str, Any] = Field(
        default_factory=dict, description="More Spark session settings, e.g. spark.sql.shuffle.partitions."
    )
    remote: str | None = Field(None, description="SPARK_REMOTE: a Spark Connect URL (unset: embedded).")
    shuffle_partitions: int = Field(4, description="Small machine: few shuffle partitions.")
    driver_memory: str | None = Field(
        None,
        description="Local sessions only. Default: MEDALLION_SPARK_DRIVER_MEMORY, else a third of the"
        " machine's memory, 2-16 GiB.",
    )

    def _init_session(self) -> None:
        if self._spark_session is None:
            self._spark_session = self.session()

    def topology(self, settings: Settings) -> str:
        """`remote`, `server` (the embedded one) or `local`."""
        if self.remote or settings.spark_remote:
            return "remote"
        return settings.spark_mode

    def session(self) -> SparkSession:
        settings = get_settings()
        topology = self.topology(settings)
        config = {
            **SESSION_SETTINGS,
            **CODEGEN_SETTINGS[settings.spark_codegen],
            "spark.sql.shuffle.partitions": str(self.shuffle_partitions),
            **{key: str(value) for key, value in self.spark_config.items()},
        }
        if topology == "local":
            with _lock:
                memory = self.driver_memory or default_driver_memory(settings)
                session = _local_session(LocalSpark.of(settings), memory, _frozen(config))
                for key, value in s3a_access(settings).items():
                    session.conf.set(key, value)
                return session
        # The server's storage access is its own (its environment and settings), never the client's.
        remote = self.remote or settings.spark_remote or SparkServer.of(settings).start()
        with _lock:
            return _connect_session(remote, _frozen(config))


Frozen = tuple[tuple[str, str], ...]  # a session's settings, as a cache key


def _frozen(config: dict[str, str]) -> Frozen:
    return tuple(sorted(config.items()))


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
    """Start the session while the caller does other work (a JVM takes 5-15 s to start, the embedded
    server as long the first time): the first step that needs the session waits for it under the
    lock; a failure to start is raised there, not here."""

    def start() -> None:
        with contextlib.suppress(Exception):  # raised again by the step that needs Spark
            spark.session()

    threading.Thread(target=start, name="spark-start", daemon=True).start()


_connect_sessions: list[SparkSession] = []  # what _connect_session opened, for close_connect_sessions


@functools.cache
def _connect_session(remote: str, config: Frozen) -> SparkSession:
    builder = SparkSession.builder.remote(remote).appName("medallion_assets")
    session = builder.getOrCreate()
    _connect_sessions.append(session)
    atexit.register(_close_if_server_gone, session, remote)  # runs before pyspark's own exit hook
    for key, value in config:
        session.conf.set(key, value)
    return session


def close_connect_sessions() -> None:
    """End this process's Spark Connect sessions: the next `session()` opens a new one, as the next
    command or run of the daemon would (each is a process of its own). For the benchmark's days."""
    _connect_session.cache_clear()
    while _connect_sessions:
        _connect_sessions.pop().stop()


def _close_if_server_gone(session: SparkSession, remote: str) -> None:
    """pyspark's exit hook asks the server to clear its caches and retries for over 10 minutes when
    the server is gone (stopped by `medallion spark stop`, the benchmark, a test): the process hung at
    exit. A client whose server no longer answers closes its channel first, which skips those calls."""
    url = urlsplit(remote)
    try:
        socket.create_connection((url.hostname or "localhost", url.port or 15002), timeout=2).close()
    except OSError:
        session.client.close()  # type: ignore[attr-defined]  # a Spark Connect session's client


@functools.cache
def _local_session(local: LocalSpark, driver_memory: str, config: Frozen) -> SparkSession:
    builder = (
        SparkSession.builder.appName("medallion_assets")
        .master("local[*]")
        .config("spark.driver.memory", driver_memory)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
    )
    for key, value in local.config().items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    for key, value in config:
        session.conf.set(key, value)
    session.sparkContext.setLogLevel("ERROR")
    return session
