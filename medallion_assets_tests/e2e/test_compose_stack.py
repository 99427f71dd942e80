"""docker-compose.yml's stack, run natively (no Docker engine here): the platform gets exactly the
environment of the compose file's `dagster-code` service (with .env.example's values), each address
in it rewritten to the loopback one of the same component running here: PostgreSQL with the
databases and users of the init script, an S3 server in MinIO's place with the buckets minio-init
creates, the Spark Connect server, the Kafka broker; and the instance is deployment/dagster.yaml.
Then what an operator does first on a new stack, through the `medallion` command: load the source,
build the batch lane's first tables through Spark into the S3 lake, land the shop's events, with
every run booked in the PostgreSQL instance, its step logs on S3, its audit row written."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import adbc_driver_postgresql.dbapi as adbc_dbapi
import boto3
import dagster as dg
import pytest

from medallion_assets.resources.kafka import KafkaResource
from medallion_assets.resources.kafka_server import KafkaServer
from medallion_assets.resources.spark_server import SparkServer
from medallion_assets.settings import get_settings
from medallion_assets.specs.events import CLICKSTREAM
from medallion_assets_tests.compose import ENV_EXAMPLE, env_file, environment
from medallion_assets_tests.handmade import write_handmade
from medallion_assets_tests.helpers import REPO, free_port, s3_server
from olist_source.events import load_sessions, publish

BIN = Path(sys.executable).parent
DOTENV = env_file(ENV_EXAMPLE)
INIT_SCRIPT = REPO / "deployment" / "postgres-init" / "10-databases.sh"
SECRETS = [value for name, value in DOTENV.items() if "PASSWORD" in name or "SECRET" in name]


def postgres_as_compose_creates_it(pg_url: str) -> str:
    """The init script run against the session's server, as the postgres image runs it on an empty
    volume; the server's loopback address (`host:port`)."""
    query = dict(part.split("=", 1) for part in urlsplit(pg_url).query.split("&"))
    with adbc_dbapi.connect(pg_url, autocommit=True) as conn, conn.cursor() as cur:
        for prefix in ("SOURCE", "DAGSTER", "AUDIT"):  # a second run of the session starts afresh
            cur.execute(f'DROP DATABASE IF EXISTS "{DOTENV[f"{prefix}_DB_NAME"]}" WITH (FORCE)')
            cur.execute(f'DROP ROLE IF EXISTS "{DOTENV[f"{prefix}_DB_USER"]}"')
    env = {
        **os.environ,
        **DOTENV,
        "POSTGRES_USER": "postgres",
        "PGHOST": "127.0.0.1",
        "PGPORT": query["port"],
    }
    done = subprocess.run(["bash", str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return f"127.0.0.1:{query['port']}"


@pytest.fixture
def stack(
    pg_url: str, kafka_home: KafkaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[dict[str, str], str]]:
    """The project's environment as compose gives it, pointed at the components running here; and
    the S3 endpoint."""
    compose_env = {k: v for k, v in environment("dagster-code").items() if v is not None}
    with s3_server(DOTENV["LAKE_SECRET_KEY"], bucket=DOTENV["LAKE_BUCKET"]) as endpoint:
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=DOTENV["LAKE_ACCESS_KEY"],
            aws_secret_access_key=DOTENV["LAKE_SECRET_KEY"],
            region_name=DOTENV["AWS_REGION"],
        ).create_bucket(Bucket=DOTENV["COMPUTE_LOGS_BUCKET"])
        loopback = {
            "postgres:5432": postgres_as_compose_creates_it(pg_url),
            "minio:9000": urlsplit(endpoint).netloc,
            "kafka:9092": kafka_home.start(),
        }
        spark_port = free_port()
        loopback["spark-connect:15002"] = f"127.0.0.1:{spark_port}"
        env = {name: _rewritten(value, loopback) for name, value in compose_env.items()}
        # What the project image sets (deployment/Dockerfile), here: the home, the instance.
        (tmp_path / "dagster").mkdir()
        shutil.copy(REPO / "deployment" / "dagster.yaml", tmp_path / "dagster" / "dagster.yaml")
        env |= {"MEDALLION_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dagster")}
        for name in [n for n in os.environ if n.startswith(("MEDALLION_", "AWS_", "SPARK_", "DAGSTER_"))]:
            monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        # The compose file's spark-connect service: the cluster's driver with the same S3 settings.
        monkeypatch.delenv("SPARK_REMOTE")
        monkeypatch.setenv("MEDALLION_SPARK_PORT", str(spark_port))
        server = SparkServer.of(get_settings())
        assert server.start() == env["SPARK_REMOTE"]
        monkeypatch.setenv("SPARK_REMOTE", env["SPARK_REMOTE"])
        monkeypatch.delenv("MEDALLION_SPARK_PORT")
        try:
            yield env, endpoint
        finally:
            server.stop()


def _rewritten(value: str, loopback: dict[str, str]) -> str:
    for service, address in loopback.items():
        value = value.replace(service, address)
    return value


def medallion(env: dict[str, str], *args: str) -> str:
    """A `medallion` command with exactly the stack's environment (and what any process needs)."""
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("MEDALLION_", "AWS_", "SPARK_", "DAGSTER_"))
    }
    done = subprocess.run(
        [str(BIN / "medallion"), *args], env=base | env, capture_output=True, text=True, timeout=900
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert not any(secret in output for secret in SECRETS)  # no password or key ever printed
    return output


@pytest.mark.slow
def test_the_compose_environment_runs_the_platform(stack: tuple[dict[str, str], str], tmp_path: Path) -> None:
    env, endpoint = stack
    # Every address the project is given names a component running here (nothing left unrewritten;
    # an s3:// URI names a bucket, reached at AWS_ENDPOINT_URL).
    for name, value in env.items():
        if "://" in value and not value.startswith("s3://"):
            assert urlsplit(value).hostname in ("127.0.0.1", "localhost"), (name, value)
        elif re.fullmatch(r"[\w.-]+:\d+", value):
            assert value.startswith("127.0.0.1:"), (name, value)
    assert env["MEDALLION_LAKE_URI"].startswith("s3://") and env["SPARK_REMOTE"].startswith("sc://")

    medallion(
        env,
        "source",
        "load",
        "--csv-dir",
        str(write_handmade(tmp_path / "csv")),
        "--attribute-changes",
        "none",
    )
    built = medallion(
        env, "build", "--select", "key:bronze/orders or key:silver/orders or key:quarantine/orders"
    )
    assert "build succeeded" in built
    kafka = KafkaResource()  # the shop publishes to the stack's broker (topics are the project's)
    kafka.ensure_topic(CLICKSTREAM.topic, CLICKSTREAM.partitions)
    producer = kafka.producer()
    sessions = load_sessions(7, dt.datetime(2018, 3, 1), ["p1", "p2", "p3"])
    sent = publish(producer, CLICKSTREAM, (next(sessions) for _ in range(40)))
    landed = medallion(env, "build", "--select", "key:bronze/clickstream")
    assert "build succeeded" in landed

    # The lake is in the bucket, written by the Spark Connect server.
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_REGION"],
    )
    bucket, _, prefix = env["MEDALLION_LAKE_URI"].removeprefix("s3://").partition("/")
    for table in ("bronze/orders", "silver/orders", "bronze/clickstream"):
        logs = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/{table}/_delta_log/")
        assert logs.get("KeyCount", 0) > 0, table
    # The runs are in the PostgreSQL instance of deployment/dagster.yaml, each a success, their
    # steps' logs on S3.
    with dg.DagsterInstance.get() as instance:
        assert type(instance.event_log_storage).__name__ == "BatchedPostgresEventLogStorage"
        runs = instance.get_runs()
        assert len(runs) >= 2 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        record = instance.get_latest_materialization_event(dg.AssetKey(["bronze", "clickstream"]))
        assert record is not None and record.asset_materialization is not None
        assert record.asset_materialization.metadata["records_read"].value == sent
    logs = s3.list_objects_v2(
        Bucket=env["DAGSTER_COMPUTE_LOGS_BUCKET"], Prefix=env["DAGSTER_COMPUTE_LOGS_PREFIX"]
    )
    assert logs.get("KeyCount", 0) > 0
    # The audit log is in its own database, one row per materialized asset of each run.
    with adbc_dbapi.connect(env["MEDALLION_AUDIT_URL"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT DISTINCT asset FROM audit.run_logs")
        audited = {row[0] for row in cur.fetchall()}
    assert {"bronze/orders", "silver/orders", "bronze/clickstream"} <= audited
