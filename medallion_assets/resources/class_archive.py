"""The class data sharing archive our Spark JVMs start from (the JDK's AppCDS, a dynamic archive).

A JVM started with `-XX:ArchiveClassesAtExit` writes, when it exits, every class it loaded from its
class path, parsed and verified, into one file; a later JVM given `-XX:SharedArchiveFile` (see
`LocalSpark.config`) maps that file instead of opening ~300 jars and parsing their classes again.
The recording JVM is a local session with our jars and class path (the embedded Spark Connect
server's too) doing what a build does: Delta writes, replaceWhere, MERGE, reads, windows, joins,
aggregations, a checkpoint, Arrow. A JVM that later loads a class the recording did not is served
from the jars, as without an archive.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from pyspark.sql import SparkSession, Window
from pyspark.sql import functions as F

from medallion_assets.resources.embedded import free_port
from medallion_assets.resources.spark import SESSION_SETTINGS
from medallion_assets.resources.spark_server import LocalSpark


class ClassArchiveError(RuntimeError):
    """The recording JVM failed: no archive was written."""


def write_class_archive(local: LocalSpark, timeout: float = 600) -> Path:
    """Record the archive beside the jars (replacing one made before) and return its path."""
    target = local.class_archive
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    # SPARK_CONF_DIR puts its folder on the class path, and no archive can be made with a folder
    # that holds files on it; SPARK_SUBMIT_OPTS may carry a test suite's settings.
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_CONF_DIR", "SPARK_SUBMIT_OPTS")}
    command = [sys.executable, "-m", __name__, str(local.jars_dir), str(partial)]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0 or not partial.exists():
            raise ClassArchiveError(f"no class archive was written:\n{(done.stdout + done.stderr)[-3000:]}")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _record(jars_dir: Path, archive: Path) -> None:
    """Run the work of a build in a local session whose JVM writes `archive` when it exits: once
    directly (a local session's path), once through a Spark Connect service in the same JVM (the
    embedded server's path: its gRPC service and plan translation)."""
    port = free_port()
    config = {
        **LocalSpark(jars_dir, None, None).config(),
        "spark.driver.defaultJavaOptions": f"-XX:ArchiveClassesAtExit={archive}",
        "spark.ui.enabled": "false",
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
    }
    builder = SparkSession.builder.master("local[*]").appName("medallion class archive")
    for key, value in config.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    for key, value in SESSION_SETTINGS.items():
        session.conf.set(key, value)
    context = session.sparkContext
    with tempfile.TemporaryDirectory() as work:
        _exercise(session, f"{work}/local")
        context._jvm.org.apache.spark.sql.connect.service.SparkConnectService.start(context._jsc.sc())  # type: ignore[union-attr]
        remote = SparkSession.builder.remote(f"sc://127.0.0.1:{port}").create()
        for key, value in SESSION_SETTINGS.items():
            remote.conf.set(key, value)
        _exercise(remote, f"{work}/remote")
        remote.stop()  # while the service answers: a client whose server is gone retries at exit
    jvm = context._gateway.proc  # type: ignore[attr-defined]  # pyspark's JVM process
    # The JVM exits when its standard input closes; it writes the archive on the way out.
    jvm.stdin.close()
    jvm.wait(300)


def _exercise(spark: SparkSession, path: str) -> None:
    rows = spark.range(2000).select(
        "id",
        (F.col("id") % 7).cast("string").alias("key"),
        F.date_add(F.lit("2018-01-01").cast("date"), (F.col("id") % 30).cast("int")).alias("day"),
        (F.col("id") / 100).cast("decimal(18,2)").alias("value"),
        F.lit("2018-01-01 10:00:00").cast("timestamp_ntz").alias("at"),
    )
    rows.write.format("delta").save(path)
    early = rows.filter("day < '2018-01-10'").withColumn("value", (F.col("value") + 1).cast("decimal(18,2)"))
    early.write.format("delta").mode("overwrite").option("replaceWhere", "day < '2018-01-10'").save(path)
    early.createOrReplaceTempView("changes")
    spark.sql(
        f"MERGE INTO delta.`{path}` AS t USING changes AS s ON t.id = s.id"
        " WHEN MATCHED AND s.at >= t.at THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
    ).collect()
    table = spark.read.format("delta").load(path).filter(F.col("day") >= "2018-01-05")
    latest = Window.partitionBy("key").orderBy(F.desc("at"), F.desc("id"))
    totals = table.groupBy("key").agg(F.sum("value").alias("total"), F.max_by("id", "value").alias("top"))
    ranked = table.withColumn("n", F.row_number().over(latest)).filter("n <= 3").join(totals, "key")
    ranked.select(F.to_json(F.struct("*")), F.sha2(F.col("key"), 256), F.xxhash64("id")).collect()
    table.localCheckpoint().groupBy("day").count().toPandas()
    spark.sql(f"DESCRIBE HISTORY delta.`{path}`").collect()


if __name__ == "__main__":
    _record(Path(sys.argv[1]), Path(sys.argv[2]))
