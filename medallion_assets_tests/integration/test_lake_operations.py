"""Lake operations against real Delta tables written by Spark, a real Dagster instance on disk and
the `medallion lake` commands: history, time travel, restore (refused while a run writes the
table), and the lake_maintenance job (OPTIMIZE, VACUUM) of the code location."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest
from click.testing import CliRunner, Result
from deltalake import DeltaTable
from pyspark.sql import DataFrame, SparkSession

from medallion_assets.cli import main
from medallion_assets.definitions import build_definitions
from medallion_assets.maintenance.jobs import maintenance_job
from medallion_assets.maintenance.operations import (
    RetentionTooShortError,
    history,
    layout,
    optimize,
    show,
    vacuum,
)
from medallion_assets.maintenance.runs import MAINTENANCE_JOB, maintenance_op_name
from medallion_assets.resources.delta_lake import Lake, LakeResource
from medallion_assets.resources.spark import SparkResource
from medallion_assets.settings import get_settings
from medallion_assets.specs import GOLD_FACTS
from medallion_assets_tests.helpers import booked_instance

FACTS = GOLD_FACTS["fact_orders"]
KEY = dg.AssetKey(FACTS.asset_path)
DATES = dg.AssetKey(["gold", "dim_date"])
# The order ids of each version the `time_travel` fixture writes.
V0 = {str(i) for i in range(20)}  # two days
V1 = V0 | {str(i) for i in range(20, 30)}  # a third day appended
V2 = (V1 - {str(i) for i in range(10)}) | {str(i) for i in range(100, 105)}  # the first day replaced


def orders(spark: SparkSession, ids: range, day: str) -> DataFrame:
    return spark.range(ids.start, ids.stop, numPartitions=1).selectExpr(
        "cast(id as string) as order_id", "id % 7 as customer_key", f"date'{day}' as order_date"
    )


def ids(rows: pa.Table) -> set[str]:
    return set(rows["order_id"].to_pylist())


def medallion(lake: Path, dagster_home: Path, *args: str) -> Result:
    env = {"MEDALLION_LAKE_URI": str(lake), "DAGSTER_HOME": str(dagster_home)}
    return CliRunner().invoke(main, ["lake", *args], env=env)


@pytest.fixture(scope="module")
def spark(spark_resource: SparkResource) -> SparkSession:
    return spark_resource.session()


@pytest.fixture(scope="module")
def time_travel(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """gold/fact_orders in three versions: created, appended to, one day replaced."""
    lake = Lake(str(tmp_path_factory.mktemp("lake")), {})
    uri = lake.uri(KEY)
    orders(spark, range(10), "2018-01-01").union(orders(spark, range(10, 20), "2018-01-02")).write.format(
        "delta"
    ).save(uri)
    orders(spark, range(20, 30), "2018-01-03").write.format("delta").mode("append").save(uri)
    orders(spark, range(100, 105), "2018-01-01").write.format("delta").mode("overwrite").option(
        "replaceWhere", "order_date = '2018-01-01'"
    ).save(uri)
    return lake


@pytest.fixture
def dagster_home(tmp_path: Path) -> Iterator[tuple[Path, dg.DagsterInstance]]:
    home = tmp_path / "dagster"
    with booked_instance(home) as instance:
        yield home, instance


def test_history_lists_the_versions_newest_first(time_travel: Lake, tmp_path: Path) -> None:
    result = medallion(Path(time_travel.root), tmp_path, "history", "gold/fact_orders")
    assert result.exit_code == 0, result.output
    header, *lines = result.output.splitlines()
    assert header.split()[:2] == ["version", "timestamp"]
    assert [int(line.split()[0]) for line in lines] == [2, 1, 0]
    assert all(line.split()[3] == "WRITE" for line in lines)
    assert "rows_deleted=10" in lines[0] and "mode=Overwrite predicate=order_date = '2018-01-01'" in lines[0]
    assert "rows_written=10" in lines[1] and "rows_written=20" in lines[2]
    latest = medallion(Path(time_travel.root), tmp_path, "history", "gold/fact_orders", "--limit", "1")
    assert [int(line.split()[0]) for line in latest.output.splitlines()[1:]] == [2]


def test_show_reads_the_table_at_a_version_or_a_time(
    time_travel: Lake, spark: SparkSession, tmp_path: Path
) -> None:
    result = medallion(
        Path(time_travel.root), tmp_path, "show", "gold/fact_orders", "--version", "0", "--limit", "50"
    )
    assert result.exit_code == 0, result.output
    assert "gold/fact_orders at version 0: 20 row(s)" in result.output
    printed = {line.split()[0] for line in result.output.splitlines()[2:]}
    assert printed == V0
    assert ids(show(time_travel, spark, KEY, version=1, limit=50)) == V1
    assert ids(show(time_travel, spark, KEY, limit=50)) == V2
    # At the time history gives for version 1 (Spark's own commit times), version 1 is read.
    at_version_1 = history(time_travel, spark, KEY)[1].timestamp
    assert ids(show(time_travel, spark, KEY, as_of=dt.datetime.fromisoformat(at_version_1), limit=50)) == V1
    as_of = medallion(Path(time_travel.root), tmp_path, "show", "gold/fact_orders", "--as-of", at_version_1)
    assert as_of.exit_code == 0 and "20 row(s) (the first 20" in as_of.output, as_of.output  # of 30


def test_unknown_and_unbuilt_tables_are_clear_errors(time_travel: Lake, tmp_path: Path) -> None:
    unknown = medallion(Path(time_travel.root), tmp_path, "history", "gold/fact_order")
    assert unknown.exit_code == 2 and "did you mean gold/fact_orders" in unknown.output, unknown.output
    unbuilt = medallion(Path(time_travel.root), tmp_path, "show", "gold/dim_date")
    assert unbuilt.exit_code == 1, unbuilt.output
    assert "gold/dim_date has no Delta table" in unbuilt.output and "materialize it first" in unbuilt.output
    missing = medallion(Path(time_travel.root), tmp_path, "show", "gold/fact_orders", "--version", "9")
    assert missing.exit_code == 1 and "version 9" in missing.output, missing.output


def test_restore_is_refused_while_a_run_writes_the_table(
    time_travel: Lake,
    spark: SparkSession,
    tmp_path: Path,
    dagster_home: tuple[Path, dg.DagsterInstance],
) -> None:
    home, instance = dagster_home
    lake = Lake(str(tmp_path / "lake"), {})
    shutil.copytree(time_travel.uri(KEY), lake.uri(KEY))  # the same table and history
    restore = ("restore", "gold/fact_orders", "--version", "0")
    # A run materializing the table (its asset selection), and a maintenance run of it (its plan).
    writing = instance.add_run(
        dg.DagsterRun("__ASSET_JOB", status=dg.DagsterRunStatus.STARTED, asset_selection=frozenset({KEY}))
    )
    maintaining = instance.create_run_for_job(
        maintenance_job([FACTS], {KEY: "gold/facts"}, 168), status=dg.DagsterRunStatus.STARTED
    )
    # A run writing another table does not hold the restore back.
    instance.add_run(
        dg.DagsterRun("__ASSET_JOB", status=dg.DagsterRunStatus.STARTED, asset_selection=frozenset({DATES}))
    )
    for run in (writing, maintaining):
        refused = medallion(Path(lake.root), home, *restore)
        assert refused.exit_code == 1, refused.output
        assert "not restoring gold/fact_orders" in refused.output and run.run_id in refused.output
        assert DeltaTable(lake.uri(KEY)).version() == 2
        instance.report_run_failed(run)

    restored = medallion(Path(lake.root), home, *restore)
    assert restored.exit_code == 0, restored.output
    assert "restored gold/fact_orders to version 0: latest version 2 -> 3" in restored.output
    assert ids(show(lake, spark, KEY, limit=50)) == V0
    latest = history(lake, spark, KEY)[0]
    assert (latest.version, latest.operation, latest.parameters["version"]) == (3, "RESTORE", "0")


def write_small_files(spark: SparkSession, lake: Lake) -> None:
    """gold/fact_orders: 240 orders over six days in 24 small files (one commit)."""
    days = [orders(spark, range(d * 40, d * 40 + 40), f"2018-01-{d + 1:02d}") for d in range(6)]
    frame = days[0]
    for day in days[1:]:
        frame = frame.union(day)
    frame.repartition(24).write.format("delta").save(lake.uri(KEY))


@pytest.fixture(scope="module")
def small_files(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """gold/fact_orders in 24 small files, and a one-file gold/dim_date."""
    lake = Lake(str(tmp_path_factory.mktemp("lake")), {})
    write_small_files(spark, lake)
    spark.range(3).selectExpr("cast(id as int) as date_key").write.format("delta").save(lake.uri(DATES))
    return lake


def rows_of(spark: SparkSession, lake: Lake, version: int | None = None) -> list[tuple]:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return sorted(tuple(row) for row in reader.load(lake.uri(KEY)).collect())


def output_metadata(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict:
    [output] = [e for e in result.events_for_node(maintenance_op_name(key)) if e.is_successful_output]
    return {name: value.value for name, value in output.step_output_data.metadata.items()}


def test_maintenance_compacts_and_vacuums_every_built_table(
    small_files: Lake, spark: SparkSession, dagster_home: tuple[Path, dg.DagsterInstance]
) -> None:
    _, instance = dagster_home
    before = rows_of(spark, small_files)
    assert layout(DeltaTable(small_files.uri(KEY))).files == 24
    # A run writing gold/dim_date is in progress: maintenance leaves that table alone.
    dates_run = instance.add_run(
        dg.DagsterRun("__ASSET_JOB", status=dg.DagsterRunStatus.STARTED, asset_selection=frozenset({DATES}))
    )
    defs = build_definitions(get_settings(lake_uri=small_files.root))
    result = defs.resolve_job_def(MAINTENANCE_JOB).execute_in_process(instance=instance)
    assert result.success

    facts = output_metadata(result, KEY)
    assert facts["files_before"] == 24 and facts["files_after"] < 24, facts
    assert facts["bytes_after"] < facts["bytes_before"] and facts["rows_after"] == facts["rows_before"] == 240
    assert facts["zorder_by"] == "order_date, customer_key"  # unpartitioned: the days stay together
    assert facts["retention_hours"] == 168 and facts["vacuum_files_deleted"] == 0  # all younger than 7 days
    assert rows_of(spark, small_files) == before  # same rows, same values
    assert rows_of(spark, small_files, version=0) == before  # the history is still readable
    operations = [c.operation for c in history(small_files, spark, KEY, limit=3)]
    assert operations == ["VACUUM END", "VACUUM START", "OPTIMIZE"]
    assert dates_run.run_id in output_metadata(result, DATES)["skipped"]
    assert output_metadata(result, dg.AssetKey(["bronze", "orders"]))["skipped"] == "not built yet"


def test_compacted_files_keep_the_lakes_rows_per_file(spark: SparkSession, tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"), {})
    write_small_files(spark, lake)
    compaction = optimize(lake, spark, FACTS, rows_per_file=50)
    files = pa.table(DeltaTable(lake.uri(KEY)).get_add_actions(flatten=True))
    assert compaction.after.files == files.num_rows >= 5 and compaction.after.rows == 240
    assert max(files["num_records"].to_pylist()) <= 50
    assert spark.conf.get("spark.sql.files.maxRecordsPerFile") == "0"  # set for the OPTIMIZE only


def test_vacuum_below_the_safety_minimum_is_refused(
    small_files: Lake,
    spark: SparkSession,
    spark_resource: SparkResource,
    dagster_home: tuple[Path, dg.DagsterInstance],
) -> None:
    version = DeltaTable(small_files.uri(KEY)).version()
    with pytest.raises(
        RetentionTooShortError, match="retention of 24 h: below Delta's safety minimum of 168 h"
    ):
        vacuum(small_files, spark, KEY, 24)
    job = maintenance_job([FACTS], {KEY: "gold/facts"}, retention_hours=1)
    result = job.execute_in_process(
        resources={"spark": spark_resource, "lakehouse": LakeResource(root_uri=small_files.root)},
        instance=dagster_home[1],
        raise_on_error=False,
    )
    assert not result.success
    [failure] = result.get_step_failure_events()
    assert "refusing to VACUUM with a retention of 1 h" in failure.step_failure_data.error.to_string()
    assert DeltaTable(small_files.uri(KEY)).version() == version  # nothing was touched
