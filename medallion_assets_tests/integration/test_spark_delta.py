"""Spark reads and writes Delta itself: the session that `SparkResource` starts loads the jars of
`make jars` (Delta Lake, S3A), on a local folder and on an S3 server through S3A, and what Spark
writes stays readable by other engines (delta-rs here, the reader of DuckDB and most BI tools).

Each case runs in a subprocess: a local session's S3A endpoint is fixed when its JVM starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from medallion_assets_tests.helpers import s3_server

SECRET = "spark-delta-secret"
SCRIPT = r"""
import datetime as dt, decimal, json, sys
from deltalake import DeltaTable
from pyspark.sql import functions as F
from medallion_assets.resources.delta_lake import LakeResource
from medallion_assets.resources.spark import SparkResource

spark = SparkResource(driver_memory="1g").session()
lake = LakeResource().lake()
uri = lake.root + "/silver/orders"
rows = [
    (f"o{i}", dt.date(2017, 1, 1 + i % 3), dt.datetime(2017, 1, 1 + i % 3, 10, i), decimal.Decimal(f"{i}.25"))
    for i in range(9)
]
schema = "order_id string, _change_date date, ts timestamp_ntz, price decimal(12,2)"
frame = spark.createDataFrame(rows, schema)
frame.write.format("delta").partitionBy("_change_date").mode("overwrite").save(uri)
# One partition replaced in one commit, the others untouched.
second = frame.filter("_change_date = '2017-01-02'")
day = second.withColumn("price", (F.col("price") + 1).cast("decimal(12,2)"))
day.write.format("delta").mode("overwrite").option("replaceWhere", "_change_date = '2017-01-02'").save(uri)
read_back = spark.read.format("delta").load(uri).where("_change_date = '2017-01-02'")
table = DeltaTable(uri, storage_options=lake.storage_options)
protocol = table.protocol()
result = {
    "spark_rows": read_back.count(),
    "spark_price_sum": str(read_back.agg(F.sum("price")).first()[0]),
    "versions": len(table.history()),
    "delta_rs": sorted(
        (r["order_id"], str(r["price"]), r["ts"].isoformat()) for r in table.to_pyarrow_table().to_pylist()
    ),
    "reader_features": sorted(protocol.reader_features or []),
}
spark.stop()  # before the interpreter exits: the JVM and delta-rs's S3 threads must not race at exit
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with s3_server(SECRET) as endpoint:
        yield endpoint


@pytest.mark.parametrize("where", ["local", "s3"])
def test_spark_writes_delta_that_other_engines_read(
    where: str, tmp_path, request: pytest.FixtureRequest
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDALLION_", "AWS_", "SPARK_"))}
    env["MEDALLION_HOME"] = str(tmp_path / "home")
    env["MEDALLION_SPARK"] = "local"  # this process's own session: no server left behind
    if where == "local":
        env["MEDALLION_LAKE_URI"] = str(tmp_path / "lake")
    else:
        env |= {
            "MEDALLION_LAKE_URI": "s3://lake/spark-delta",
            "AWS_ENDPOINT_URL": request.getfixturevalue("s3_endpoint"),
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_REGION": "us-east-1",
        }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert SECRET not in done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["spark_rows"] == 3
    assert result["spark_price_sum"] == "15.75"  # 1.25 + 4.25 + 7.25, each + 1: exact decimals
    assert result["versions"] == 2  # the window replaced in one commit
    price = {i: f"{i + (1 if i % 3 == 1 else 0)}.25" for i in range(9)}  # the 2nd's rows + 1
    expected = sorted([f"o{i}", price[i], f"2017-01-0{1 + i % 3}T10:{i:02d}:00"] for i in range(9))
    assert result["delta_rs"] == expected  # delta-rs reads what Spark wrote, value for value
    assert result["reader_features"] == ["timestampNtz"]  # no feature that other readers lack
