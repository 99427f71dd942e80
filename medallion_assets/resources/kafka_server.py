"""The embedded Kafka broker: one KRaft node (broker and controller in one JVM) under
$MEDALLION_HOME/kafka, from the jars `make kafka` puts in kafka/lib/ (Apache Kafka 4.4.0 from Maven
Central, pinned in kafka/pom.xml).

Like the embedded PostgreSQL and Spark Connect server it is started by the first process that needs
it (resources/kafka.py) or by `medallion kafka start`, and keeps running between commands until
`medallion kafka stop`; its data (the topics) stays under $MEDALLION_HOME/kafka/data. It listens on
loopback only, without authentication. MEDALLION_KAFKA_BOOTSTRAP points the project at any other
cluster instead (with SASL/TLS settings from the environment), and then nothing is started here.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil

from medallion_assets.resources.embedded import default_stop_signals, listening, start_once
from medallion_assets.settings import REPOSITORY, Settings

BROKER_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
LOG_CONFIG = REPOSITORY / "kafka" / "log4j2.xml"
# A small heap is plenty for one node on loopback (measured: ~180 MiB resident). The log cleaner's
# dedupe buffer defaults to 128 MiB, more than such a heap: it is set to 16 MiB in the properties.
JVM_OPTIONS = ("-Xms32m", "-Xmx192m", "-XX:+UseSerialGC", "-XX:+ExitOnOutOfMemoryError")


class KafkaServerError(RuntimeError):
    """The embedded Kafka broker could not be started."""


class KafkaJarsMissingError(KafkaServerError):
    """The broker's jars are not installed."""


@dataclass(frozen=True)
class KafkaServerStatus:
    running: bool
    bootstrap: str
    pid: int | None
    log: Path


@dataclass(frozen=True)
class KafkaServer:
    home: Path  # $MEDALLION_HOME/kafka: properties, data, pid file and log
    port: int  # clients (PLAINTEXT on loopback)
    controller_port: int  # the KRaft quorum, this node alone
    jars_dir: Path

    @classmethod
    def of(cls, settings: Settings) -> KafkaServer:
        port = settings.kafka_port
        return cls(settings.home / "kafka", port, port + 1, settings.kafka_jars_dir)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def status(self) -> KafkaServerStatus:
        process = self._process()
        running = process is not None and listening(self.port)
        return KafkaServerStatus(
            running, self.bootstrap, process.pid if process else None, self.home / "server.log"
        )

    def start(self, timeout: float = 90) -> str:
        """The bootstrap address, the broker started first if it is not running (~3 s), once for
        every process that needs it at the same moment."""
        start_once(self.home, lambda: self.status().running, lambda: self._start(timeout))
        return self.bootstrap

    def _start(self, timeout: float) -> None:
        for port in (self.port, self.controller_port):
            if listening(port):
                raise KafkaServerError(
                    f"port {port} is taken by another program: set MEDALLION_KAFKA_PORT (the broker "
                    "listens on it, its controller on the next one)"
                )
        classpath = self._classpath()
        properties = self.home / "server.properties"
        properties.write_text(self._properties())
        if not (self.home / "data" / "meta.properties").exists():  # a new node: format its storage once
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
            self._format(classpath, cluster_id, properties)
        with (self.home / "stdout.log").open("ab") as output:
            # A session of its own: the broker outlives the command that started it, and a Ctrl-C or
            # a stop of that command's process group (`dagster dev`, a run) does not reach it.
            process = subprocess.Popen(
                [*self._java(classpath), BROKER_CLASS, str(properties)],
                stdout=output,
                stderr=subprocess.STDOUT,
                env=environment_without_secrets(),
                start_new_session=True,
                preexec_fn=default_stop_signals,  # so that a stop reaches it (see there)
            )
        (self.home / "broker.pid").write_text(str(process.pid))
        deadline = time.monotonic() + timeout
        while not self.status().running:
            if process.poll() is not None or time.monotonic() > deadline:
                log = self.status().log
                tail = log.read_text()[-2000:] if log.exists() else ""
                raise KafkaServerError(f"the Kafka broker did not start (log {log}):\n{tail}")
            time.sleep(0.2)

    def stop(self, grace: float = 30) -> bool:
        """Stop the broker if it runs (a clean shutdown: SIGTERM); True if one was stopped."""
        process = self._process()
        if process is None:
            return False
        for stop_signal in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(stop_signal)
            deadline = time.monotonic() + grace
            # Polled, not waited for: the broker is rarely this process's child (and when it is,
            # it stays a zombie until its parent reaps it).
            while not self._gone() and time.monotonic() < deadline:
                time.sleep(0.1)
            if self._gone():
                return True
        raise KafkaServerError(f"the Kafka broker (pid {process.pid}) did not stop")

    def _format(self, classpath: str, cluster_id: str, properties: Path) -> None:
        # `--cluster-id=`: an id may begin with "-", which argparse would take for an option.
        command = [
            *self._java(classpath),
            STORAGE_TOOL,
            "format",
            "--standalone",
            f"--cluster-id={cluster_id}",
        ]
        done = subprocess.run(
            [*command, "-c", str(properties)],
            capture_output=True,
            text=True,
            timeout=120,
            env=environment_without_secrets(),
        )
        if done.returncode:
            raise KafkaServerError(
                f"formatting the Kafka broker's storage failed: {done.stdout} {done.stderr}"
            )

    def _classpath(self) -> str:
        if not any(self.jars_dir.glob("kafka_2.13-*.jar")):
            raise KafkaJarsMissingError(
                f"no Kafka broker jars in {self.jars_dir}: run `make kafka` (Maven fetches the versions "
                "pinned in kafka/pom.xml), or point MEDALLION_KAFKA_JARS at a folder that holds them"
            )
        return str(self.jars_dir / "*")

    def _java(self, classpath: str) -> list[str]:
        logs = [f"-Dlog4j2.configurationFile={LOG_CONFIG}", f"-Dkafka.logs.dir={self.home}"]
        return ["java", *JVM_OPTIONS, "-Djava.awt.headless=true", *logs, "-cp", classpath]

    def _properties(self) -> str:
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",  # clients reconnect to it
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "log.dirs": str(self.home / "data"),
            # One node: every internal topic has one replica.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            # Topics are created by the project (their partitions declared with the event specs): a
            # misspelt topic fails instead of appearing with one partition.
            "auto.create.topics.enable": "false",
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
            "log.cleaner.threads": "1",
            "log.cleaner.dedupe.buffer.size": str(16 * 2**20),
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _gone(self) -> bool:
        """No broker process, and its ports closed: a JVM's main thread can be a zombie while its
        other threads still hold the sockets, and a start right then would find the port taken."""
        return self._process() is None and not any(listening(p) for p in (self.port, self.controller_port))

    def _process(self) -> psutil.Process | None:
        try:
            process = psutil.Process(int((self.home / "broker.pid").read_text()))
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE and "java" in process.name():
                return process
        except (FileNotFoundError, ValueError, psutil.NoSuchProcess):
            pass
        return None


def environment_without_secrets() -> dict[str, str]:
    """The broker's environment: nothing it does not need (it has no credentials of ours)."""
    return {name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "MEDALLION_"))}
