"""The embedded Spark Connect server, as a user drives it: `medallion spark start|status|stop`
under MEDALLION_HOME, and a thin client that writes and reads Delta through it (the server holds
the jars of `make jars`); what it writes, delta-rs reads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from medallion_assets_tests.helpers import free_port

MEDALLION = str(Path(sys.executable).with_name("medallion"))
CLIENT = r"""
import sys
from deltalake import DeltaTable
from pyspark.sql import SparkSession

spark = SparkSession.builder.remote(sys.argv[1]).getOrCreate()
frame = spark.range(7).selectExpr("id", "cast(id * 1.5 as decimal(12,2)) as amount")
frame.write.format("delta").mode("overwrite").save(sys.argv[2])
total = spark.read.format("delta").load(sys.argv[2]).selectExpr("sum(amount)").first()[0]
print(type(spark).__module__, total, DeltaTable(sys.argv[2]).to_pyarrow_table().num_rows)
"""


def test_start_use_stop(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDALLION_", "SPARK_"))}
    env |= {"MEDALLION_HOME": str(tmp_path / "home"), "MEDALLION_SPARK_PORT": str(free_port())}
    env["SPARK_LOCAL_DIRS"] = str(tmp_path / "spark-local")  # the server's scratch space

    def medallion(*args: str) -> str:
        done = subprocess.run([MEDALLION, *args], env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    try:
        url = medallion("spark", "start").split()[4]
        assert url == f"sc://127.0.0.1:{env['MEDALLION_SPARK_PORT']}"
        assert "running at" in medallion("spark", "status")
        assert (tmp_path / "home" / "spark").is_dir()  # pid and log under MEDALLION_HOME
        assert url in medallion("spark", "start")  # already running: the same server
        table = str(tmp_path / "lake" / "t")
        client = subprocess.run(
            [sys.executable, "-c", CLIENT, url, table], env=env, capture_output=True, text=True, timeout=180
        )
        assert client.returncode == 0, client.stderr[-3000:]
        module, total, rows = client.stdout.split()[-3:]
        assert module.startswith("pyspark.sql.connect")  # a thin client, no JVM of its own
        assert (total, rows) == ("31.50", "7")  # Delta written by the server, read back by delta-rs
        # The jars are on the server's class path, not copied to its scratch space at each start
        # (690 MB, left behind by a server that is killed).
        assert not list((tmp_path / "spark-local").rglob("*.jar"))
    finally:
        stopped = medallion("spark", "stop")
    assert "stopped" in stopped
    assert "not running" in medallion("spark", "status")
