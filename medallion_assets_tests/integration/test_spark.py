"""The Spark resource: one local session per process, or Spark Connect when SPARK_REMOTE is set."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from deltalake import DeltaTable

from medallion_assets.resources.spark import SparkResource
from medallion_assets.resources.spark_server import SparkServer
from medallion_assets.settings import get_settings


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
    """A real Spark Connect server from the pyspark wheel, on loopback: the embedded one that
    `medallion spark start` runs (resources/spark_server.py), under a scratch home."""
    settings = get_settings(home=tmp_path_factory.mktemp("spark-connect"), spark_server_port=free_port())
    server = SparkServer.of(settings)
    yield server.start()
    server.stop()


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
