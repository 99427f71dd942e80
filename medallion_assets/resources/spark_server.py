"""The embedded Spark Connect server: one JVM under $MEDALLION_HOME/spark that outlives commands.

Started from the pyspark wheel (its spark-daemon.sh and the Spark Connect jar it ships) with the
jars of `make jars` and the same Delta and S3A settings as a local session, on a loopback port.
Like the embedded PostgreSQL, it keeps running between commands until `medallion spark stop`; a
Spark Connect client (`SPARK_REMOTE=sc://127.0.0.1:<port>`) reaches it in under a second instead
of starting a JVM of its own.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pyspark

from medallion_assets.resources.spark import LocalSpark, default_driver_memory
from medallion_assets.settings import Settings

SPARK_HOME = Path(pyspark.__file__).parent
SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"


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
            default_driver_memory(),
        )

    @property
    def url(self) -> str:
        return f"sc://127.0.0.1:{self.port}"

    def status(self) -> SparkServerStatus:
        process = self._process()
        logs = sorted(self.home.glob("*.out"), key=lambda log: log.stat().st_mtime)
        return SparkServerStatus(
            process is not None and _listening(self.port),
            self.url,
            process.pid if process else None,
            logs[-1] if logs else None,
        )

    def start(self, timeout: float = 120) -> str:
        """The server's URL, started first if it is not running (~10 s)."""
        if self.status().running:
            return self.url
        if _listening(self.port):
            raise SparkServerError(f"port {self.port} is taken by another program: set MEDALLION_SPARK_PORT")
        self.home.mkdir(parents=True, exist_ok=True)
        settings = {
            **self.local.config(),
            "spark.connect.grpc.binding.address": "127.0.0.1",
            "spark.connect.grpc.binding.port": str(self.port),
            "spark.ui.enabled": "false",
        }
        command = ["bash", str(SPARK_HOME / "sbin" / "spark-daemon.sh"), "submit", SERVER_CLASS, "1"]
        command += ["--name", "medallion Spark Connect server", "--master", "local[*]"]
        command += ["--driver-memory", self.driver_memory]
        for key, value in settings.items():
            command += ["--conf", f"{key}={value}"]
        # What sbin/start-connect-server.sh does (the pyspark 4.2 wheel ships spark-daemon.sh only).
        subprocess.run(command, env=self._environment(), check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + timeout
        while not self.status().running:
            if self._process() is None or time.monotonic() > deadline:
                log = self.status().log
                tail = log.read_text()[-2000:] if log else ""
                raise SparkServerError(f"the Spark Connect server did not start (log {log}):\n{tail}")
            time.sleep(0.5)
        return self.url

    def stop(self, grace: float = 15) -> bool:
        """Stop the server if it runs; True if one was stopped."""
        process = self._process()
        if process is None:
            return False
        command = ["bash", str(SPARK_HOME / "sbin" / "spark-daemon.sh"), "stop", SERVER_CLASS, "1"]
        subprocess.run(command, env=self._environment(), capture_output=True, timeout=60)
        try:
            process.wait(grace)
        except psutil.TimeoutExpired:  # a SIGTERM ignored (e.g. started from a background job)
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
        for pid_file in self.home.glob(f"*{SERVER_CLASS}*.pid"):
            try:
                process = psutil.Process(int(pid_file.read_text().split()[0]))
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    return process
            except (ValueError, IndexError, psutil.NoSuchProcess):
                continue
        return None


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
