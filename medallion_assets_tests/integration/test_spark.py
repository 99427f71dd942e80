"""The Spark resource: one local session per process, or Spark Connect when SPARK_REMOTE is set."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pyspark
import pytest
from deltalake import DeltaTable

from medallion_assets.resources.spark import SparkResource

SPARK_HOME = Path(pyspark.__file__).parent
CONNECT_SERVER = "org.apache.spark.sql.connect.service.SparkConnectServer"


def test_one_configured_session_per_process(spark_resource: SparkResource) -> None:
    session = spark_resource.session()
    assert SparkResource().session() is session  # every asset of the run gets the same one
    assert session.conf.get("spark.sql.session.timeZone") == "UTC"
    assert session.conf.get("spark.sql.shuffle.partitions") == "4"
    assert session.conf.get("spark.sql.timestampType") == "TIMESTAMP_NTZ"
    assert session.conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Spark Connect server from the pyspark wheel, on loopback."""
    work = tmp_path_factory.mktemp("spark-connect")
    port = free_port()
    env = {
        **os.environ,
        "SPARK_HOME": str(SPARK_HOME),
        "SPARK_PID_DIR": str(work),
        "SPARK_LOG_DIR": str(work),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    # What sbin/start-connect-server.sh does (the pyspark 4.2 wheel ships spark-daemon.sh without it).
    subprocess.run(
        [
            "bash",
            str(SPARK_HOME / "sbin" / "spark-daemon.sh"),
            "submit",
            CONNECT_SERVER,
            "1",
            "--name",
            "Spark Connect server",
            "--master",
            "local[1]",
            "--conf",
            f"spark.connect.grpc.binding.port={port}",
            "--conf",
            "spark.ui.enabled=false",
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    deadline = time.monotonic() + 120
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        assert time.monotonic() < deadline, "Spark Connect server did not start"
        time.sleep(0.5)
    (pid_file,) = work.glob("*.pid")
    server = psutil.Process(int(pid_file.read_text()))
    yield f"sc://127.0.0.1:{port}"
    subprocess.run(
        ["bash", str(SPARK_HOME / "sbin" / "spark-daemon.sh"), "stop", CONNECT_SERVER, "1"],
        env=env,
        capture_output=True,
        timeout=120,
    )
    # The script's SIGTERM is ignored when the tests run in a background job (which ignores it and
    # passes that on): the JVM would outlive the session, so it is killed after a grace period.
    with contextlib.suppress(psutil.NoSuchProcess):
        try:
            server.wait(15)
        except psutil.TimeoutExpired:
            server.kill()
            server.wait(15)


ASSETS_ON_CONNECT = """
import datetime as dt, sys
import dagster as dg, pyarrow as pa
from pyspark.sql import DataFrame
from medallion_assets.resources.delta_lake import DeltaLakeIOManager, LakeResource, lake_metadata
from medallion_assets.resources.spark import SparkResource
from medallion_assets.specs import LakeTable

spec = LakeTable("bronze", "events", ("id",), "_change_date")
daily = dg.DailyPartitionsDefinition(start_date="2017-01-01")

@dg.asset(key=spec.asset_path, partitions_def=daily, metadata=lake_metadata(spec), io_manager_key="lake")
def events() -> pa.Table:
    return pa.table({"id": ["a", "b", "c"], "_change_date": pa.array([dt.date(2017, 1, 1)] * 3, pa.date32())})

@dg.asset(key=["silver", "counted"], partitions_def=daily, io_manager_key="lake",
          ins={"events": dg.AssetIn(key=spec.asset_path)})
def counted(events: DataFrame) -> DataFrame:
    print("input type:", type(events).__module__)
    return events.groupBy("_change_date").count()

lake = DeltaLakeIOManager(spark=SparkResource(), lakehouse=LakeResource())
result = dg.materialize([events, counted], partition_key="2017-01-01", resources={"lake": lake})
session = SparkResource().session()
print("session type:", type(session).__module__, "ok" if result.success else "failed")
"""


def test_same_assets_run_on_spark_connect(connect_server: str, tmp_path: Path) -> None:
    env = {**os.environ, "SPARK_REMOTE": connect_server, "MEDALLION_LAKE_URI": str(tmp_path / "lake")}
    result = subprocess.run(
        [sys.executable, "-c", ASSETS_ON_CONNECT], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "input type: pyspark.sql.connect.dataframe" in result.stdout
    assert "session type: pyspark.sql.connect.session ok" in result.stdout
    counted = DeltaTable(str(tmp_path / "lake" / "silver" / "counted")).to_pyarrow_dataset().to_table()
    assert counted.to_pylist() == [{"_change_date": counted["_change_date"][0].as_py(), "count": 3}]
