"""What a Spark JVM of ours loads (`LocalSpark`: the jars of `make jars`, Delta, S3A), and the
embedded Spark Connect server: one JVM under $MEDALLION_HOME/spark that outlives commands.

The server is started from the pyspark wheel (its spark-daemon.sh and the Spark Connect jar it
ships) with those jars and settings, on a loopback port, by the first process that needs Spark
(resources/spark.py) or by `medallion spark start`. Like the embedded PostgreSQL, it keeps running
between commands until `medallion spark stop`; a client reaches it in under a second instead of
starting a JVM of its own.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psutil
import pyspark

from medallion_assets.resources.embedded import default_stop_signals, listening, start_once
from medallion_assets.settings import Settings

SPARK_HOME = Path(pyspark.__file__).parent
# The server's driver program (see there), run by spark-submit's runner of Python programs; the
# daemon's pid and log files are named after that class (spark-daemon.sh names them after the class
# it is given). A server started by an earlier version ran Spark's own main class: still found.
CONNECT_DRIVER = Path(__file__).with_name("connect_driver.py")
SERVER_CLASS = "org.apache.spark.deploy.PythonRunner"
EARLIER_SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
CODEGEN_CACHE_ENTRIES = 5000  # static: set when a JVM starts (see LocalSpark.config)
CLASS_ARCHIVE = "spark-classes.jsa"  # beside the jars it was made from
# MEDALLION_SPARK_JIT=quick: the JIT's quick tier (C1) only, with room for its code (C1's default
# 48 MB cache fills up on a build, and its sweeper then costs ~10 s). The quickstart's build at scale
# 0.1 from a cold server: 139/134 s -> 123/120 s (alternating pairs); a scale-1 benchmark in a server
# warmed by its full build is 5-10 % slower with it (README: Spark, Delta Lake and the jars).
QUICK_JIT_OPTIONS = ("-XX:TieredStopAtLevel=1", "-XX:ReservedCodeCacheSize=256m")
# The throughput collector instead of Java's default G1 for the JVMs started here (the embedded
# server, a local session): batch work on few cores, where G1's concurrent marking and barriers
# cost CPU the queries need. Alternating pairs on 2 cores: the quickstart 109/116 s against
# 117/121 s; at scale 1 one day 85.0/81.7 s against 88.2/91.0, the full build 212.3/218.0 s against
# 216.5/220.8 (README: Benchmark). Not for a cluster's driver: its JVM is the cluster's to tune.
GC_OPTIONS = ("-XX:+UseParallelGC",)
CHOSEN_COLLECTOR = re.compile(r"-XX:\+Use\w+GC\b")  # a JVM given two collectors refuses to start
# Where a user's JVM options reach the JVMs we start: spark-submit's, and any JVM's (the launcher's).
JVM_OPTION_VARIABLES = ("SPARK_SUBMIT_OPTS", "JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS")


def default_driver_memory(settings: Settings) -> str:
    """MEDALLION_SPARK_DRIVER_MEMORY, else a third of the machine's memory (2-16 GiB): a local
    session's driver holds the data handed to Spark through Arrow, and 4 GiB ran out of heap on a
    scale-10 silver backfill."""
    if settings.spark_driver_memory:
        return settings.spark_driver_memory
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
    jit: Literal["full", "quick"] = "full"  # MEDALLION_SPARK_JIT

    @classmethod
    def of(cls, settings: Settings) -> LocalSpark:
        return cls(
            settings.spark_jars_dir, settings.aws_endpoint_url, settings.aws_region, jit=settings.spark_jit
        )

    def config(self, cluster: bool = False) -> dict[str, str]:
        """The settings of a JVM on `local[*]` (driver and executors in one JVM), or of the driver of
        a `cluster`, whose executors fetch the jars from it."""
        jars = sorted(self.jars_dir.glob("*.jar"))
        if not jars:
            raise SparkJarsMissingError(
                f"no Spark jars in {self.jars_dir}: run `make jars` (Maven fetches the versions pinned in"
                " jars/pom.xml), or point MEDALLION_SPARK_JARS at a folder that holds them"
            )
        config = {
            "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
            "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
            # s3:// and s3a:// lakes through S3A. Its default credential chain reads AWS_ACCESS_KEY_ID
            # and AWS_SECRET_ACCESS_KEY from the environment the JVM inherits: no secret in Spark's conf.
            "spark.hadoop.fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
            "spark.hadoop.fs.s3a.path.style.access": "true",  # MinIO and other S3 servers
            # Compiled query code is kept for this many shapes (Spark's default: 100). A build runs
            # thousands of small queries of more than a thousand shapes (Delta's log queries, a
            # layer's steps alike), so at 100 Spark compiled the same code again and again: a
            # hand-made build in a warm JVM compiled 1,824 classes at 100, 80 at 5,000 (README).
            "spark.sql.codegen.cache.maxEntries": str(CODEGEN_CACHE_ENTRIES),
        }
        # Locally on the class path: `spark.jars` copies every jar (690 MB with the AWS SDK bundle)
        # into a temporary folder at each start (+2.5 s) and leaves it behind if the JVM is killed.
        if cluster:
            config["spark.jars"] = ",".join(str(jar) for jar in jars)
        else:
            config["spark.driver.extraClassPath"] = os.pathsep.join(str(jar) for jar in jars)
        if self.s3_endpoint:
            config["spark.hadoop.fs.s3a.endpoint"] = self.s3_endpoint
            config["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(self.s3_endpoint.startswith("https"))
        if self.s3_region:
            config["spark.hadoop.fs.s3a.endpoint.region"] = self.s3_region
        # The classes of Spark, Delta and Hadoop, parsed once into a class data sharing archive
        # (`medallion spark archive`, run by `make install`) that every later JVM maps instead of
        # reading ~300 jars: a fresh session's start and first Delta write 20.3 -> 15.2 s, the
        # server's 25.8 -> 19.4 s (README). A JVM whose class path differs from the archive's
        # (other jars, a folder of settings from SPARK_CONF_DIR) ignores it and loads its classes as
        # before; with such a folder the options (the archive's, the collector's, the JIT's) are left
        # out, not to replace the folder's.
        options = [f"-XX:SharedArchiveFile={self.class_archive}"] if self.class_archive.exists() else []
        users = " ".join(os.environ.get(name, "") for name in JVM_OPTION_VARIABLES)
        if not CHOSEN_COLLECTOR.search(users):  # the user's choice wins
            options += GC_OPTIONS
        if self.jit == "quick":
            options += QUICK_JIT_OPTIONS
        if not cluster and "SPARK_CONF_DIR" not in os.environ:
            config["spark.driver.defaultJavaOptions"] = " ".join(options)
        return config

    @property
    def class_archive(self) -> Path:
        return self.jars_dir / CLASS_ARCHIVE


def driver_python() -> dict[str, str]:
    """The Python that runs CONNECT_DRIVER: this one (its pyspark is the server's)."""
    return {"spark.pyspark.driver.python": sys.executable, "spark.pyspark.python": sys.executable}


class SparkServerError(RuntimeError):
    """The embedded Spark Connect server could not be started."""


@dataclass(frozen=True)
class SparkServerStatus:
    running: bool
    url: str
    pid: int | None
    log: Path | None


@dataclass(frozen=True)
class SparkServer:
    home: Path  # $MEDALLION_HOME/spark: pid file and logs
    port: int
    local: LocalSpark
    driver_memory: str

    @classmethod
    def of(cls, settings: Settings) -> SparkServer:
        return cls(
            settings.home / "spark",
            settings.spark_server_port,
            LocalSpark.of(settings),
            default_driver_memory(settings),
        )

    @property
    def url(self) -> str:
        return f"sc://127.0.0.1:{self.port}"

    def status(self) -> SparkServerStatus:
        process = self._process()
        logs = sorted(self.home.glob("*.out"), key=lambda log: log.stat().st_mtime)
        return SparkServerStatus(
            process is not None and listening(self.port),
            self.url,
            process.pid if process else None,
            logs[-1] if logs else None,
        )

    def start(self, timeout: float = 120) -> str:
        """The server's URL, started first if it is not running (~10 s), once for every process
        that needs it at the same moment."""
        start_once(self.home, lambda: self.status().running, lambda: self._start(timeout))
        return self.url

    def _start(self, timeout: float) -> None:
        if listening(self.port):
            raise SparkServerError(f"port {self.port} is taken by another program: set MEDALLION_SPARK_PORT")
        settings = {
            **self.local.config(),
            "spark.connect.grpc.binding.address": "127.0.0.1",
            "spark.connect.grpc.binding.port": str(self.port),
            "spark.ui.enabled": "false",
            # Spark's default INFO log grew by ~1 MiB a minute on a build (each job's stages).
            "spark.log.level": "WARN",
            **driver_python(),
        }
        command = ["bash", str(SPARK_HOME / "sbin" / "spark-daemon.sh"), "submit", SERVER_CLASS, "1"]
        command += ["--name", "medallion Spark Connect server", "--master", "local[*]"]
        command += ["--driver-memory", self.driver_memory]
        for key, value in settings.items():
            command += ["--conf", f"{key}={value}"]
        command.append(str(CONNECT_DRIVER))  # the server's driver program (see there)
        # What sbin/start-connect-server.sh does (the pyspark 4.2 wheel ships spark-daemon.sh only).
        # A session of its own: the server outlives the command that started it, and a Ctrl-C or a
        # stop of that command's process group (`dagster dev`, a run) does not reach it.
        subprocess.run(
            command,
            env=self._environment(),
            check=True,
            capture_output=True,
            timeout=60,
            start_new_session=True,
            preexec_fn=default_stop_signals,  # so that a stop reaches it (see there)
        )
        deadline = time.monotonic() + timeout
        while not self.status().running:
            if self._process() is None or time.monotonic() > deadline:
                log = self.status().log
                tail = log.read_text()[-2000:] if log else ""
                raise SparkServerError(f"the Spark Connect server did not start (log {log}):\n{tail}")
            time.sleep(0.5)

    def stop(self, grace: float = 15) -> bool:
        """Stop the server if it runs; True if one was stopped."""
        found = self._daemon()
        if found is None:
            return False
        process, daemon_class = found
        command = ["bash", str(SPARK_HOME / "sbin" / "spark-daemon.sh"), "stop", daemon_class, "1"]
        subprocess.run(command, env=self._environment(), capture_output=True, timeout=60)
        try:
            process.wait(grace)
        except psutil.TimeoutExpired:  # a server that does not stop
            process.kill()
            process.wait(grace)
        except psutil.NoSuchProcess:
            pass
        return True

    def _environment(self) -> dict[str, str]:
        # The S3A credentials reach the JVM through its environment, never through its settings.
        return {
            **os.environ,
            "SPARK_HOME": str(SPARK_HOME),
            "SPARK_PID_DIR": str(self.home),
            "SPARK_LOG_DIR": str(self.home),
        }

    def _process(self) -> psutil.Process | None:
        found = self._daemon()
        return found[0] if found else None

    def _daemon(self) -> tuple[psutil.Process, str] | None:
        """The server's running process and the class its daemon is named after."""
        for daemon_class in (SERVER_CLASS, EARLIER_SERVER_CLASS):
            for pid_file in self.home.glob(f"*{daemon_class}*.pid"):
                try:
                    process = psutil.Process(int(pid_file.read_text().split()[0]))
                    if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                        return process, daemon_class
                except (ValueError, IndexError, psutil.NoSuchProcess):
                    continue
        return None
