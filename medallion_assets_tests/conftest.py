"""Shared fixtures: the real Olist sample, small generated data sets, and a real PostgreSQL; and the
collection hooks (tier markers by folder, the worker groups of the session builds, slow tests first).

PostgreSQL is the embedded server the platform itself uses (started through the same code path,
under a temporary MEDALLION_HOME), one per test session. Plain helpers that tests import by name
(`scratch_database`, `booked_instance`, `HandmadeBuild`, ...) are in helpers.py.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from medallion_assets.resources.kafka_server import KafkaServer
from medallion_assets.resources.postgres import embedded_server_url, stop_embedded_server
from medallion_assets.resources.spark import SparkResource
from medallion_assets.resources.spark_server import QUICK_JIT_OPTIONS
from medallion_assets.settings import get_settings
from medallion_assets_tests.helpers import (
    SAMPLE_DIR,
    HandmadeBuild,
    booked_instance,
    free_port_pair,
    scratch_database,
)
from olist_source.generator import GenerationResult, generate, write_kaggle_files
from olist_source.kaggle_csv import read_directory

# The suite's processes each use a classic in-process session (one JVM per test worker, nothing
# shared between workers); the default topology, the embedded Spark Connect server, has its own
# tests (integration/test_spark.py) and runs the end-to-end test.
os.environ.setdefault("MEDALLION_SPARK", "local")

# The heap of the suite's Spark JVMs (the workers' local sessions, the servers and commands tests
# start): their tables are small, and at a third of the machine each (8 GiB here) the parallel
# collector let them grow to 5.3-5.4 GiB resident apiece; the suite held 20 of this machine's 24 GiB,
# so that anything else running beside it (the quickstart's server left running) could run it short.
os.environ.setdefault("MEDALLION_SPARK_DRIVER_MEMORY", "3g")
TESTS = Path(__file__).resolve().parent
# Interpreted expressions instead of compiled code (the users' setting for small data, see
# settings.py): the suite's tables have tens of rows and Spark spent more time compiling each query
# than running it (hand-made build, 168 steps: 120-130 s -> 101-107 s). Every Spark session the
# platform opens takes it: the suite's local sessions, the embedded servers' clients, the commands
# tests run in subprocesses. Results are the same either way: Spark's own suites run both.
os.environ.setdefault("MEDALLION_SPARK_CODEGEN", "interpreted")
# The options of the suite's Spark JVMs only: a local session per worker, the embedded servers tests
# start, the commands they run in subprocesses. spark-submit, which starts each of them, adds
# SPARK_SUBMIT_OPTS to the JVM's options. (Not a folder of settings in SPARK_CONF_DIR: Spark puts
# that folder on the class path, and a JVM with a folder of files on its class path cannot use the
# class archive of `make install`, class_archive.py.)
# - The same interpreted expressions as the JVM's defaults (a -Dspark.* option is a Spark setting),
#   for what Spark or Delta may evaluate outside a session's settings: the CI of 8aedeb7, without
#   them, ran its heavy tests 30-80 % slower on a day the machine ran ~20 % slower (not isolated).
# - The JIT's quick tier only (C1), with room for its code. On these short-lived JVMs the optimizing
#   compiler (C2) spent ~50 s of CPU per hand-made build, a third of the JVM's time, for code that
#   then ran a few tiny queries; with two test workers on two cores that CPU is taken from the other
#   worker. Two hand-made builds side by side (what the two workers do), back to back: 169-170 s
#   each -> 134.5-135 s. C1's default code cache (48 MB) fills up and its sweeper then costs ~10 s.
#   The same options as MEDALLION_SPARK_JIT=quick's, for every JVM spark-submit starts here.
SUITE_JVM_OPTIONS = [
    "-Dspark.sql.codegen.wholeStage=false",
    "-Dspark.sql.codegen.factoryMode=NO_CODEGEN",
    *QUICK_JIT_OPTIONS,
]
os.environ.setdefault("SPARK_SUBMIT_OPTS", " ".join(SUITE_JVM_OPTIONS))
# The tiers, one folder each: unit (no service, no JVM, no run: seconds), integration (one part
# against the real thing: Spark, PostgreSQL, Delta on S3, warehouses, sensors, Dagster runs of a few
# assets), e2e (whole builds, `dagster dev`, the browser). Each test is marked with its folder's tier.
TIERS = ("unit", "integration", "e2e")

# Session fixtures that cost a build: `make test` runs the tests on two workers (pytest-xdist,
# --dist loadgroup), and the tests that share one of these run on the same worker, so each is built
# once. Tests that share none are spread freely; a module that asks for one by name
# (`request.getfixturevalue`) marks itself with its group.
SHARED_BUILDS = {
    "handmade_build": "handmade",
    "sample_bronze_lake": "sample",
    "sample_silver": "sample",
}


def tier(item: pytest.Item) -> str | None:
    """The tier of a test under medallion_assets_tests/: the folder it is in."""
    path = Path(item.path)
    if not path.is_relative_to(TESTS):
        return None
    folder = path.relative_to(TESTS).parts[0]
    if folder not in TIERS:
        raise pytest.UsageError(f"{item.nodeid} is outside the tier folders {', '.join(TIERS)}")
    return folder


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The slow tests first: started last, one of them would be a worker's long tail.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
    for item in items:
        if folder := tier(item):
            item.add_marker(getattr(pytest.mark, folder))
        if item.get_closest_marker("xdist_group"):
            continue
        groups = {SHARED_BUILDS[name] for name in getattr(item, "fixturenames", ()) if name in SHARED_BUILDS}
        if len(groups) > 1:
            raise pytest.UsageError(f"{item.nodeid} uses builds of two worker groups: {sorted(groups)}")
        if groups:
            item.add_marker(pytest.mark.xdist_group(groups.pop()))


@pytest.fixture
def booked(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A test's own on-disk instance (`booked_instance`), closed when the test ends."""
    with booked_instance(tmp_path / "dagster") as instance:
        yield instance


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    if not SAMPLE_DIR.is_dir():
        pytest.fail(f"the real Olist sample is expected at {SAMPLE_DIR} (../shared beside the checkout)")
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def sample_tables(sample_dir: Path) -> dict[str, pa.Table]:
    tables, _ = read_directory(sample_dir)
    return tables


@pytest.fixture(scope="session")
def small_generated() -> GenerationResult:
    """About 2,000 orders: fast, yet with every shape the generator makes."""
    return generate(scale=0.02, seed=7)


@pytest.fixture(scope="session")
def small_generated_dir(small_generated: GenerationResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("olist-small")
    write_kaggle_files(small_generated, out)
    return out


@pytest.fixture(scope="session")
def medallion_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="session")
def pg_url(medallion_home: Path) -> Iterator[str]:
    """URL of a real PostgreSQL 16 (embedded, under the session's MEDALLION_HOME)."""
    settings = get_settings(home=medallion_home)
    url = os.environ.get("MEDALLION_TEST_SOURCE_URL") or embedded_server_url(settings)
    yield url
    stop_embedded_server(settings)


@pytest.fixture(scope="session", autouse=True)
def audit_database(pg_url: str) -> Iterator[str]:
    """Builds record their audit rows in one database of the session's server: without it, each test
    building under its own MEDALLION_HOME would start (and leave) an embedded server for the audit.
    (unit/conftest.py overrides it: the unit tests build nothing and start no server.)"""
    url = scratch_database(pg_url, "audit_session", fresh=False)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MEDALLION_AUDIT_URL", url)
        yield url


@pytest.fixture
def kafka_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KafkaServer]:
    """A scratch MEDALLION_HOME and port pair for the embedded broker, stopped at the end."""
    port = free_port_pair()  # the broker's and its controller's
    monkeypatch.setenv("MEDALLION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDALLION_KAFKA_PORT", str(port))
    monkeypatch.delenv("MEDALLION_KAFKA_BOOTSTRAP", raising=False)
    server = KafkaServer.of(get_settings())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def spark_resource() -> SparkResource:
    """The one local Spark session of the test session (started once, ~5-10 s)."""
    resource = SparkResource()
    resource.session()
    return resource


@pytest.fixture(scope="session")
def sample_bronze_lake(pg_url: str, sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real sample loaded into the source (no synthetic changes) and built into bronze, once.

    Building 745 days of partitions: tests share it.
    """
    from medallion_assets.build import build, format_summary
    from medallion_assets.definitions import code_location
    from olist_source.system import load_source

    work = tmp_path_factory.mktemp("sample-lake")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MEDALLION_SOURCE_URL", pg_url)
        env.setenv("MEDALLION_HOME", str(work / "home"))
        env.setenv("DAGSTER_HOME", str(work / "dagster"))
        env.setenv("MEDALLION_LAKE_URI", str(work / "lake"))
        load_source(pg_url, sample_dir, attribute_changes="none", replace=True)
        with booked_instance(work / "dagster") as instance:
            summary = build(code_location(), "key:bronze/*", echo=lambda _: None, instance=instance)
        assert summary.success, format_summary(summary)
    return work / "lake"


@pytest.fixture(scope="session")
def sample_silver(
    sample_bronze_lake: Path, spark_resource: SparkResource, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, dict]]:
    """The real sample's bronze through the silver logic, called directly (a Dagster run over its 745
    days of partitions spends minutes on per-partition bookkeeping alone): the lake, and per table
    the accounting plus the rows quarantined and written."""
    from medallion_assets.resources.delta_lake import Lake, Window
    from medallion_assets.silver.assets import apply_changes
    from medallion_assets.specs import CHANGE_DATE, SILVER_TABLES

    every_change = Window(CHANGE_DATE, dt.date.min, dt.date(2019, 1, 1))  # the whole sample is one batch

    root = tmp_path_factory.mktemp("sample-silver")
    shutil.copytree(sample_bronze_lake / "bronze", root / "bronze")
    lake = Lake(str(root), {})
    spark = spark_resource.session()
    report: dict[str, dict] = {}
    for table in SILVER_TABLES:
        bronze = lake.table(spark, dg.AssetKey(["bronze", table.name]))
        silver, quarantine, accounting = apply_changes(bronze, table, "sample", every_change, spark, lake)
        lake.write(spark, dg.AssetKey(["silver", table.name]), silver, "replace_partition", None)
        report[table.name] = {
            **accounting,
            "bronze_rows": bronze.count(),
            "quarantine_rows": quarantine.count(),
            "written_rows": lake.table(spark, dg.AssetKey(["silver", table.name])).count(),
        }
        spark.catalog.clearCache()
    return root, report


@pytest.fixture(scope="session")
def handmade_build(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HandmadeBuild]:
    """The hand-made shop (handmade.py) loaded into the source and built through every layer in
    Dagster, once: gold tests read its values, quality tests copy its lake and break it."""
    from medallion_assets.build import build
    from medallion_assets.definitions import code_location
    from medallion_assets_tests.handmade import write_handmade
    from olist_source.system import load_source

    work = tmp_path_factory.mktemp("handmade")
    instance = booked_instance(work / "dagster")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MEDALLION_SOURCE_URL", pg_url)
        env.setenv("MEDALLION_HOME", str(work / "home"))
        env.setenv("MEDALLION_LAKE_URI", str(work / "lake"))
        load_source(pg_url, write_handmade(work / "csv"), attribute_changes="none", replace=True)
        summary = build(code_location(), echo=lambda _: None, instance=instance)
    yield HandmadeBuild(work / "lake", instance, summary, work / "home")
    instance.dispose()
