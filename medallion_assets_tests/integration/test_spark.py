"""The Spark resource's topologies: the embedded Spark Connect server (default), any Spark Connect
server (SPARK_REMOTE), a classic session in the process (MEDALLION_SPARK=local, the suite's)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from deltalake import DeltaTable

from medallion_assets.resources.spark import SparkResource
from medallion_assets.resources.spark_server import GC_OPTIONS, LocalSpark, SparkServer
from medallion_assets.settings import get_settings
from medallion_assets_tests.helpers import free_port


def test_one_configured_session_per_process(spark_resource: SparkResource) -> None:
    session = spark_resource.session()
    assert SparkResource().session() is session  # every asset of the run gets the same one
    assert session.conf.get("spark.sql.session.timeZone") == "UTC"
    assert session.conf.get("spark.sql.shuffle.partitions") == "4"
    assert session.conf.get("spark.sql.timestampType") == "TIMESTAMP_NTZ"
    assert session.conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"
    assert session.conf.get("spark.sql.codegen.factoryMode") == "NO_CODEGEN"  # the suite's (conftest.py)


@pytest.fixture(scope="module")
def server_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment of processes that use the default topology, the embedded Spark Connect
    server, under a scratch home and port; the server is stopped at the end."""
    home, port = tmp_path_factory.mktemp("spark-connect"), free_port()
    yield {"MEDALLION_HOME": str(home), "MEDALLION_SPARK_PORT": str(port), "MEDALLION_SPARK": "server"}
    SparkServer.of(get_settings(home=home, spark_server_port=port)).stop()


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
print("codegen:", *(session.conf.get(f"spark.sql.codegen.{name}") for name in ("wholeStage", "factoryMode")))
"""


STOP_AFTER_USE = """
from medallion_assets.resources.spark import SparkResource
from medallion_assets.resources.spark_server import SparkServer
from medallion_assets.settings import get_settings

assert SparkResource().session().range(3).count() == 3
assert SparkServer.of(get_settings()).stop()
"""


def run_assets(environment: dict[str, str], lake: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "SPARK_REMOTE"}
    env |= {**environment, "MEDALLION_LAKE_URI": str(lake)}
    result = subprocess.run(
        [sys.executable, "-c", ASSETS_ON_CONNECT], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "input type: pyspark.sql.connect.dataframe" in result.stdout
    assert "session type: pyspark.sql.connect.session ok" in result.stdout
    counted = DeltaTable(str(lake / "silver" / "counted")).to_pyarrow_dataset().to_table()
    assert counted.to_pylist() == [{"_change_date": counted["_change_date"][0].as_py(), "count": 3}]
    return result.stdout


def test_the_default_topology_starts_the_embedded_server_once(
    server_home: dict[str, str], tmp_path: Path
) -> None:
    """A process that needs Spark starts the embedded Spark Connect server on first use and is its
    thin client (no JVM of its own); the next process finds it running and connects."""
    settings = get_settings(
        home=Path(server_home["MEDALLION_HOME"]), spark_server_port=int(server_home["MEDALLION_SPARK_PORT"])
    )
    server = SparkServer.of(settings)
    assert not server.status().running
    # Each client's session takes MEDALLION_SPARK_CODEGEN (here: the users' default, then the suite's),
    # whatever the server's JVM defaults are.
    output = run_assets({**server_home, "MEDALLION_SPARK_CODEGEN": "compiled"}, tmp_path / "first")
    assert "codegen: true FALLBACK" in output
    first = server.status()
    assert first.running and first.pid is not None
    output = run_assets({**server_home, "MEDALLION_SPARK_CODEGEN": "interpreted"}, tmp_path / "second")
    assert "codegen: false NO_CODEGEN" in output
    assert server.status().pid == first.pid  # kept between commands, not started again
    # A process whose server is stopped before it exits (`medallion spark stop` from elsewhere, the
    # benchmark's end) exits at once: pyspark's own exit hook retried for over 10 minutes.
    env = {k: v for k, v in os.environ.items() if k != "SPARK_REMOTE"} | server_home
    subprocess.run([sys.executable, "-c", STOP_AFTER_USE], env=env, check=True, timeout=60)
    assert not server.status().running


def test_same_assets_run_on_any_spark_connect_server(server_home: dict[str, str], tmp_path: Path) -> None:
    """SPARK_REMOTE points at another server (here the embedded one, started as `medallion spark
    start` does): no server of this process's home is started."""
    settings = get_settings(
        home=Path(server_home["MEDALLION_HOME"]), spark_server_port=int(server_home["MEDALLION_SPARK_PORT"])
    )
    url = SparkServer.of(settings).start()
    elsewhere = tmp_path / "elsewhere"
    run_assets(
        {"MEDALLION_HOME": str(elsewhere), "SPARK_REMOTE": url, "MEDALLION_SPARK": "server"},
        tmp_path / "lake",
    )
    assert not (elsewhere / "spark").exists()


# Query shapes with compiled code, run in the server's tasks (a shuffle: the code runs there too);
# each literal is written into its code: classes of their own.
CODE_SHAPES = """
import sys
from pyspark.sql import functions as F
from medallion_assets.resources.spark import SparkResource
spark = SparkResource().session()
for i in range(int(sys.argv[1]), int(sys.argv[2])):
    spark.range(20).selectExpr(f"id * {i} + {i} AS x").groupBy(F.expr(f"x % {i + 2}")).count().collect()
"""


def loaded_classes(pid: int) -> int:
    """How many classes the JVM has loaded so far (its own counter, through the JDK's jcmd)."""
    counters = subprocess.run(
        ["jcmd", str(pid), "PerfCounter.print"], capture_output=True, text=True, check=True
    ).stdout
    found = re.search(r"^java\.cls\.loadedClasses=(\d+)$", counters, re.M)
    assert found, counters[-2000:]
    return int(found[1])


def test_later_commands_reuse_the_servers_compiled_code(server_home: dict[str, str]) -> None:
    """Every command is a new Spark Connect session of the embedded server. The server compiles a
    query shape once for all of them: a command running another's queries again loads almost no
    class (Spark's own server class gives each session a class loader, and each compiled everything
    again: a day built again at scale 1 loaded ~3,000 classes, now 90-220)."""
    settings = get_settings(
        home=Path(server_home["MEDALLION_HOME"]), spark_server_port=int(server_home["MEDALLION_SPARK_PORT"])
    )
    SparkServer.of(settings).start()
    pid = SparkServer.of(settings).status().pid
    assert pid is not None
    env = {k: v for k, v in os.environ.items() if k != "SPARK_REMOTE"} | server_home
    env["MEDALLION_SPARK_CODEGEN"] = "compiled"  # the users' default, not the suite's

    def command(*shapes: int) -> int:
        before = loaded_classes(pid)
        subprocess.run(
            [sys.executable, "-c", CODE_SHAPES, *map(str, shapes)], env=env, check=True, timeout=300
        )
        return loaded_classes(pid) - before

    command(1000, 1010)  # the server's own warm-up: classes of Spark and Connect loaded once
    first, again = command(0, 40), command(0, 40)
    assert first > 80, first  # two or more classes per new shape
    assert again < first / 4, (first, again)  # none for a shape another command compiled


# A local session as resources/spark.py starts one, with `extra` JVM options after ours.
ARCHIVED_SESSION = """
import sys
from pyspark.sql import SparkSession
from medallion_assets.resources.spark_server import LocalSpark
from medallion_assets.settings import get_settings
local = LocalSpark.of(get_settings())
config = local.config()
# Left out with a SPARK_CONF_DIR: given here, to see what such a JVM does with the archive.
options = config.get("spark.driver.defaultJavaOptions", f"-XX:SharedArchiveFile={local.class_archive}")
config["spark.driver.defaultJavaOptions"] = options + " " + sys.argv[2]
builder = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")
for key, value in config.items():
    builder = builder.config(key, value)
spark = builder.getOrCreate()
spark.range(3).write.format("delta").save(sys.argv[1])
print("rows", spark.read.format("delta").load(sys.argv[1]).count())
if len(sys.argv) > 3:  # more query shapes than Spark's default cache of compiled code holds (100)
    spark.conf.set("spark.sql.codegen.wholeStage", "true")  # the users' compiled code, not the suite's
    spark.conf.set("spark.sql.codegen.factoryMode", "FALLBACK")
    metrics = spark.sparkContext._jvm.org.apache.spark.metrics.source.CodegenMetrics
    compiled = metrics.METRIC_COMPILATION_TIME()
    def shapes():  # each literal is written into its code: classes of their own
        for i in range(int(sys.argv[3])):
            spark.range(3).selectExpr(f"id * {i} + {i} AS x").collect()
    shapes()
    before = compiled.getCount()
    shapes()
    print("compiled again", compiled.getCount() - before)
"""


def test_spark_jvms_start_from_the_class_archive_and_keep_their_compiled_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make install` records the class archive and a JVM of ours maps it: with -Xshare:on a JVM
    that cannot use its archive refuses to start. One whose class path differs (a folder of settings
    from SPARK_CONF_DIR) ignores the archive and runs as without it. A JVM of ours keeps the
    compiled code of more query shapes than Spark's default cache (100), which a build outgrows."""
    local = LocalSpark.of(get_settings())
    assert local.class_archive.exists(), "`make install` records it (`medallion spark archive`)"
    option = f"-XX:SharedArchiveFile={local.class_archive}"
    assert local.config()["spark.driver.defaultJavaOptions"] == " ".join([option, *GC_OPTIONS])
    assert "spark.driver.defaultJavaOptions" not in local.config(cluster=True)  # spark.jars: another path
    with monkeypatch.context() as patched:
        patched.setenv("SPARK_CONF_DIR", str(tmp_path))  # its Java options are not replaced
        assert "spark.driver.defaultJavaOptions" not in local.config()
    for variable in ("SPARK_SUBMIT_OPTS", "JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS"):
        with monkeypatch.context() as patched:  # a collector the user chose: not a second one
            patched.setenv(variable, "-Xss4m -XX:+UseG1GC")
            assert local.config()["spark.driver.defaultJavaOptions"] == option, variable
    settings = tmp_path / "conf"
    settings.mkdir()
    (settings / "spark-defaults.conf").write_text("spark.sql.shuffle.partitions 3\n")
    runs = {
        "mapped": ("-Xshare:on", {}),  # and runs 150 query shapes twice
        "ignored": ("-Xshare:auto", {"SPARK_CONF_DIR": str(settings)}),
        "refused": ("-Xshare:on", {"SPARK_CONF_DIR": str(settings)}),  # proves -Xshare:on checks
    }
    started = {
        name: subprocess.Popen(
            [sys.executable, "-c", ARCHIVED_SESSION, str(tmp_path / name), option]
            + (["150"] if name == "mapped" else []),
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, (option, env) in runs.items()
    }
    output = {name: process.communicate(timeout=300)[0] for name, process in started.items()}
    assert "rows 3" in output["mapped"], output["mapped"][-3000:]
    # The second time round, every shape's code comes from the cache (Spark's default of 100
    # entries compiled all their 300 classes again).
    again = re.search(r"compiled again (\d+)", output["mapped"])
    assert again and int(again[1]) < 15, output["mapped"][-3000:]
    assert "rows 3" in output["ignored"], output["ignored"][-3000:]
    assert "rows 3" not in output["refused"] and started["refused"].returncode != 0


JIT_OF_SESSION = """
from medallion_assets.resources.spark import SparkResource
spark = SparkResource().session()
management = spark.sparkContext._jvm.java.lang.management.ManagementFactory
arguments = management.getRuntimeMXBean().getInputArguments()
print("tiered stop", [str(a) for a in arguments if "TieredStopAtLevel" in str(a)])
print("collectors", sorted(str(gc.getName()) for gc in management.getGarbageCollectorMXBeans()))
print("heap", [str(a) for a in arguments if str(a).startswith("-Xmx")])
"""


def test_the_quick_jit_setting_reaches_the_spark_jvm() -> None:
    """MEDALLION_SPARK_JIT=quick (the quickstart's) starts the JVM with the JIT's quick tier only;
    the default leaves Java's two tiers; either way the JVM runs the parallel collector (Java's
    default is G1). Without the suite's own JVM options (SPARK_SUBMIT_OPTS). The heap is
    MEDALLION_SPARK_DRIVER_MEMORY (here 1500m, and the suite's 3g)."""
    suite = ("SPARK_SUBMIT_OPTS", "SPARK_REMOTE", "MEDALLION_SPARK_JIT")
    base = {k: v for k, v in os.environ.items() if k not in suite}
    started = {
        jit: subprocess.Popen(
            [sys.executable, "-c", JIT_OF_SESSION],
            env={
                **base,
                "MEDALLION_SPARK": "local",
                **({"MEDALLION_SPARK_JIT": jit, "MEDALLION_SPARK_DRIVER_MEMORY": "1500m"} if jit else {}),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for jit in ("quick", None)
    }
    output = {jit: process.communicate(timeout=300)[0] for jit, process in started.items()}
    assert "tiered stop ['-XX:TieredStopAtLevel=1']" in output["quick"], output["quick"][-3000:]
    assert "tiered stop []" in output[None], output[None][-3000:]
    assert "heap ['-Xmx1500m']" in output["quick"], output["quick"][-3000:]
    assert "heap ['-Xmx3g']" in output[None], output[None][-3000:]  # conftest.py's
    for printed in output.values():  # the parallel collector's young and old generation
        assert "collectors ['PS MarkSweep', 'PS Scavenge']" in printed, printed[-3000:]
