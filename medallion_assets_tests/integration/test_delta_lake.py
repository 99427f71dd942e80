"""The Delta IO manager through real materializations, on a local folder and on an S3 server.

The S3 server is moto's, a real HTTP S3 endpoint on 127.0.0.1; delta-rs talks to it as to MinIO.
"""

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable, write_deltalake
from pyspark.sql import DataFrame, SparkSession

from medallion_assets.resources.delta_lake import (
    OUTPUT_ROWS,
    DeltaLakeIOManager,
    Lake,
    LakeResource,
    Window,
    WindowRows,
    lake_metadata,
)
from medallion_assets.resources.spark import SparkResource
from medallion_assets.settings import get_settings
from medallion_assets.specs import LakeTable, WriteMode
from medallion_assets.tags import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG
from medallion_assets_tests.helpers import s3_server

DAILY = dg.DailyPartitionsDefinition(start_date="2017-01-01", end_date="2017-02-01")
SECRET = "moto-secret-key-value"
SOURCE: dict[str, pa.Table] = {}  # what the test asset returns, filtered to its partition window


def rows(*items: tuple[str, str, int]) -> pa.Table:
    """(id, day, value) -> a table with a date partition column and a change timestamp."""
    return pa.table(
        {
            "id": pa.array([i for i, _, _ in items], pa.string()),
            "value": pa.array([v for _, _, v in items], pa.int64()),
            "_change_ts": pa.array([dt.datetime.fromisoformat(d) for _, d, _ in items], pa.timestamp("us")),
            "_change_date": pa.array([dt.date.fromisoformat(d[:10]) for _, d, _ in items], pa.date32()),
        }
    )


def events_asset(mode: WriteMode) -> dg.AssetsDefinition:
    spec = LakeTable(
        "bronze",
        "events",
        ("id",) if mode == "merge_latest" else ("id", "_change_ts"),
        "_change_date",
        mode,
        version_column="_change_ts" if mode == "merge_latest" else None,
    )

    @dg.asset(
        key=spec.asset_path,
        partitions_def=DAILY,
        metadata=lake_metadata(spec),
        io_manager_key="lake",
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def events(context: dg.AssetExecutionContext) -> dg.Output[pa.Table]:
        window = context.partition_time_window
        data = SOURCE["events"]
        day = data["_change_date"]
        inside = pc.and_(
            pc.greater_equal(day, pa.scalar(window.start.date())), pc.less(day, pa.scalar(window.end.date()))
        )
        data = data if SOURCE.get("ignore_window") else data.filter(inside)
        # As silver does with its accounting: the asset says how many rows it hands over.
        return dg.Output(data, metadata={OUTPUT_ROWS: data.num_rows} if SOURCE.get("tell_rows") else {})

    return events


@dg.asset(
    key=["silver", "seen"],
    partitions_def=DAILY,
    io_manager_key="mem",
    ins={"events": dg.AssetIn(key=["bronze", "events"])},
)
def seen_as_spark(events: DataFrame) -> None:
    SOURCE["seen"] = events


@dg.asset(
    key=["silver", "seen_arrow"],
    partitions_def=DAILY,
    io_manager_key="mem",
    ins={"events": dg.AssetIn(key=["bronze", "events"])},
)
def seen_as_arrow(events: WindowRows) -> None:
    SOURCE["seen"] = events.batches().read_all()


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with s3_server(SECRET) as endpoint:
        yield endpoint


@pytest.fixture(params=["local", "s3"])
def lake_root(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh lake root; for s3 the AWS_* environment points at the S3 server."""
    if request.param == "local":
        root = str(tmp_path / "lake")
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        monkeypatch.setenv("AWS_REGION", "us-east-1")
        root = f"s3://lake/{uuid.uuid4().hex}"
    monkeypatch.setenv("MEDALLION_LAKE_URI", root)
    SOURCE.clear()
    return root


def materialize(
    assets: list, spark: SparkResource, first: str, last: str | None = None
) -> dg.ExecuteInProcessResult:
    tags = {PARTITION_RANGE_START_TAG: first, PARTITION_RANGE_END_TAG: last} if last else {}
    return dg.materialize(
        assets,
        partition_key=None if last else first,
        tags=tags,
        resources={
            "lake": DeltaLakeIOManager(spark=spark, lakehouse=LakeResource()),
            "mem": dg.InMemoryIOManager(),
        },
        raise_on_error=False,
    )


def lake_table(name: str = "events") -> DeltaTable:
    lake = Lake.from_settings(get_settings())
    return DeltaTable(lake.uri(dg.AssetKey(["bronze", name])), storage_options=lake.storage_options)


def contents() -> list[dict]:
    return sorted(
        lake_table().to_pyarrow_dataset().to_table().to_pylist(), key=lambda r: (r["id"], r["_change_ts"])
    )


def output_metadata(result: dg.ExecuteInProcessResult) -> dict:
    return {
        k: v.value for k, v in result.get_asset_materialization_events()[0].materialization.metadata.items()
    }


# --------------------------------------------------------------------------------------------- tests


def test_replace_one_partition_then_a_range(lake_root: str, spark_resource: SparkResource) -> None:
    asset = events_asset("replace_partition")
    SOURCE["events"] = rows(("a", "2017-01-01", 1), ("b", "2017-01-02", 2), ("c", "2017-01-03", 3))
    assert materialize([asset], spark_resource, "2017-01-01", "2017-01-03").success
    assert [r["id"] for r in contents()] == ["a", "b", "c"]

    SOURCE["events"] = rows(("b2", "2017-01-02", 20), ("b3", "2017-01-02 10:00", 21))
    result = materialize([asset], spark_resource, "2017-01-02")
    assert result.success
    assert [r["id"] for r in contents()] == ["a", "b2", "b3", "c"]  # only 2017-01-02 replaced
    metadata = output_metadata(result)
    assert metadata["dagster/row_count"] == 2
    assert [c.name for c in metadata["dagster/column_schema"].columns] == [
        "id",
        "value",
        "_change_ts",
        "_change_date",
    ]
    assert metadata["dagster/uri"].endswith("/bronze/events") and metadata["delta_version"] == 1

    SOURCE["events"] = rows(("x", "2017-01-01", 9))  # 2017-01-02 is now empty in the source
    assert materialize([asset], spark_resource, "2017-01-01", "2017-01-02").success
    assert [r["id"] for r in contents()] == ["c", "x"]


def test_rematerializing_is_idempotent(lake_root: str, spark_resource: SparkResource) -> None:
    for mode in ("replace_partition", "insert_new", "merge_latest"):
        SOURCE["events"] = rows(("a", "2017-01-05", 1), ("b", "2017-01-06", 2))
        asset = events_asset(mode)  # type: ignore[arg-type]
        assert materialize([asset], spark_resource, "2017-01-05", "2017-01-06").success
        first = contents()
        assert materialize([asset], spark_resource, "2017-01-05", "2017-01-06").success
        assert contents() == first, mode
        lake = Lake.from_settings(get_settings())
        DeltaTable(lake.uri(dg.AssetKey(["bronze", "events"])), storage_options=lake.storage_options).delete()


def test_insert_new_keeps_every_version(lake_root: str, spark_resource: SparkResource) -> None:
    asset = events_asset("insert_new")
    SOURCE["events"] = rows(("a", "2017-01-01 08:00", 1), ("b", "2017-01-01 09:00", 2))
    assert materialize([asset], spark_resource, "2017-01-01").success

    SOURCE["events"] = rows(("a", "2017-01-01 08:00", 1), ("a", "2017-01-01 12:00", 5))  # b left the source
    result = materialize([asset], spark_resource, "2017-01-01")
    metadata = output_metadata(result)
    assert metadata["rows_inserted"] == 1 and metadata["rows_unchanged"] == 1
    assert [(r["id"], r["value"]) for r in contents()] == [("a", 1), ("a", 5), ("b", 2)]  # nothing removed


def test_merge_latest_never_regresses(lake_root: str, spark_resource: SparkResource) -> None:
    asset = events_asset("merge_latest")
    SOURCE["ignore_window"] = False
    SOURCE["events"] = rows(("a", "2017-01-03 10:00", 3))
    assert materialize([asset], spark_resource, "2017-01-03").success
    SOURCE["events"] = rows(("a", "2017-01-03 09:00", 1), ("b", "2017-01-03 09:00", 2))  # an older change
    result = materialize([asset], spark_resource, "2017-01-03")
    assert output_metadata(result)["rows_updated"] == 0
    assert [(r["id"], r["value"]) for r in contents()] == [("a", 3), ("b", 2)]
    SOURCE["events"] = rows(("a", "2017-01-03 11:00", 4))
    assert output_metadata(materialize([asset], spark_resource, "2017-01-03"))["rows_updated"] == 1
    assert [(r["id"], r["value"]) for r in contents()] == [("a", 4), ("b", 2)]


def test_a_merge_counts_the_rows_of_its_window(
    lake_root: str, spark_resource: SparkResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A keyed merge moves the rows it updates into its window, so the window's rows cannot come
    from the log after it: into a window that held none they are the rows it inserted and updated
    (no Spark count), otherwise Spark counts them. Either way the partition's row count is true."""
    asset = events_asset("merge_latest")
    SOURCE["events"] = rows(*[(f"k{i}", "2017-01-03 10:00", i) for i in range(10)])
    assert materialize([asset], spark_resource, "2017-01-03").success
    SOURCE["events"] = rows(("k0", "2017-01-05 08:00", 10), ("new", "2017-01-05 09:00", 11))  # k0 moves
    read_by_spark: list[dg.AssetKey] = []  # the IO manager reads the table only to count its window
    table = Lake.table

    def recorded_table(
        self: Lake, spark: SparkSession, key: dg.AssetKey, *args: Any, **kwargs: Any
    ) -> DataFrame:
        read_by_spark.append(key)
        return table(self, spark, key, *args, **kwargs)

    monkeypatch.setattr(Lake, "table", recorded_table)
    for counted_by_spark in (False, True):  # into a window that held no row, then into it again
        read_by_spark.clear()
        metadata = output_metadata(materialize([asset], spark_resource, "2017-01-05"))
        assert metadata["dagster/row_count"] == 2, metadata
        assert bool(read_by_spark) == counted_by_spark
        assert not any(name.startswith("_") for name in metadata)  # the write's own count stays inside
        fifth = Window("_change_date", dt.date(2017, 1, 5), dt.date(2017, 1, 6))
        assert Lake.rows_in(lake_table(), fifth) is None  # the log cannot tell: a file holds two days
    assert sorted((r["id"], r["value"]) for r in contents())[:2] == [("k0", 10), ("k1", 1)]
    assert len(contents()) == 11


def test_rows_outside_the_window_write_nothing(lake_root: str, spark_resource: SparkResource) -> None:
    asset = events_asset("replace_partition")
    SOURCE["events"] = rows(("a", "2017-01-01", 1))
    assert materialize([asset], spark_resource, "2017-01-01").success
    SOURCE.update(ignore_window=True, events=rows(("a", "2017-01-01", 2), ("z", "2017-01-09", 9)))
    result = materialize([asset], spark_resource, "2017-01-01")
    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data.error
    assert "row(s) have _change_date outside the partition window" in failure.cause.message
    assert lake_table().version() == 0 and [r["value"] for r in contents()] == [1]


def test_an_output_of_no_rows_commits_only_what_it_must(
    lake_root: str, spark_resource: SparkResource
) -> None:
    """A quarantine on a clean day: no rows into a window that holds none is no commit (a Spark
    job saved); no rows into a window that holds some still replaces them."""
    asset = events_asset("replace_partition")
    SOURCE.update(tell_rows=True, events=rows(("a", "2017-01-01", 1), ("c", "2017-01-03", 3)))
    for day in ("2017-01-01", "2017-01-02", "2017-01-03"):  # a file per day
        assert materialize([asset], spark_resource, day).success
    version = lake_table().version()
    SOURCE["events"] = rows()
    result = materialize([asset], spark_resource, "2017-01-02")
    assert result.success and lake_table().version() == version  # nothing committed
    assert output_metadata(result)["dagster/row_count"] == 0
    result = materialize([asset], spark_resource, "2017-01-03")  # its row goes
    assert lake_table().version() == version + 1 and [r["id"] for r in contents()] == ["a"]
    assert output_metadata(result)["dagster/row_count"] == 0
    for mode in ("insert_new", "merge_latest"):  # a MERGE of nothing changes nothing
        assert materialize([events_asset(mode)], spark_resource, "2017-01-01").success  # type: ignore[arg-type]
        assert lake_table().version() == version + 1 and [r["id"] for r in contents()] == ["a"]


def test_rows_in_a_window_come_from_the_log_where_it_can_tell(tmp_path: Path) -> None:
    """One file holding 2017-01-01 and 2017-01-03: a window wholly around it or apart from it is
    counted from the log's statistics; a window cutting it is not (None: Spark counts)."""
    uri = str(tmp_path / "events")
    write_deltalake(uri, rows(("a", "2017-01-01", 1), ("c", "2017-01-03", 3)))
    table = DeltaTable(uri)
    day = dt.date.fromisoformat
    assert Lake.rows_in(table, Window("_change_date", day("2017-01-01"), day("2017-01-04"))) == 2
    assert Lake.rows_in(table, Window("_change_date", day("2017-01-05"), day("2017-01-06"))) == 0
    assert Lake.rows_in(table, Window("_change_date", day("2017-01-02"), day("2017-01-03"))) is None
    assert Lake.rows_in(table, None) == 2
    # A file written without statistics (another writer may): the log cannot tell, never "0 rows".
    log = next((tmp_path / "events" / "_delta_log").glob("*.json"))
    actions = [json.loads(line) for line in log.read_text().splitlines()]
    for action in actions:
        action.get("add", {}).pop("stats", None)
    log.write_text("\n".join(json.dumps(action) for action in actions) + "\n")
    table = DeltaTable(uri)
    assert Lake.rows_in(table, None) is None
    assert Lake.rows_in(table, Window("_change_date", day("2017-01-01"), day("2017-01-04"))) is None


def test_inputs_read_only_the_partitions_asked_for(lake_root: str, spark_resource: SparkResource) -> None:
    asset = events_asset("replace_partition")
    SOURCE["events"] = rows(*[(f"k{d}", f"2017-01-{d:02d}", d) for d in range(1, 8)])
    assert materialize([asset], spark_resource, "2017-01-01", "2017-01-07").success

    assert materialize([asset, seen_as_spark], spark_resource, "2017-01-03", "2017-01-04").success
    seen = SOURCE["seen"]
    assert isinstance(seen, DataFrame)
    assert sorted(r["id"] for r in seen.collect()) == ["k3", "k4"]
    assert dict(seen.dtypes)["_change_ts"] == "timestamp_ntz"  # zone-less stays zone-less

    # Outside Spark (the warehouse sync), the window's rows as a stream of Arrow batches.
    assert materialize([asset, seen_as_arrow], spark_resource, "2017-01-05").success
    assert SOURCE["seen"]["id"].to_pylist() == ["k5"]


def test_partition_pruning_skips_other_partitions_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spark_resource: SparkResource
) -> None:
    """Days are not directories: the window selects files by their min/max statistics."""
    monkeypatch.setenv("MEDALLION_LAKE_URI", str(tmp_path))
    asset = events_asset("replace_partition")
    SOURCE.clear()
    for day, key in (("2017-01-01", "a"), ("2017-01-02", "b")):
        SOURCE["events"] = rows((key, day, 1))
        assert materialize([asset], spark_resource, day).success
    files = pa.table(DeltaTable(str(tmp_path / "bronze" / "events")).get_add_actions(flatten=True))
    assert not any(name.startswith("partition.") for name in files.column_names)
    second_day = pc.equal(files["min._change_date"].cast(pa.string()), "2017-01-02")
    (damaged,) = files.filter(second_day)["path"].to_pylist()
    (tmp_path / "bronze" / "events" / damaged).write_bytes(b"not parquet")  # only its reader fails
    first_day = Window("_change_date", dt.date(2017, 1, 1), dt.date(2017, 1, 2))
    lake, key = Lake.from_settings(get_settings()), dg.AssetKey(["bronze", "events"])
    assert lake.table(spark_resource.session(), key, first_day).count() == 1  # Spark skips it too
    upstream = asset.to_source_asset()
    assert materialize([upstream, seen_as_arrow], spark_resource, "2017-01-01").success
    assert SOURCE["seen"]["id"].to_pylist() == ["a"]
    assert not materialize([upstream, seen_as_arrow], spark_resource, "2017-01-02").success


def test_missing_table_is_a_clear_error(lake_root: str, spark_resource: SparkResource) -> None:
    result = materialize(
        [events_asset("insert_new").to_source_asset(), seen_as_arrow], spark_resource, "2017-01-01"
    )
    assert not result.success
    message = result.get_step_failure_events()[0].event_specific_data.error.cause.message
    assert "bronze/events has no Delta table at" in message and "materialize it first" in message


def test_unreachable_store_is_a_clear_error_without_secrets(
    monkeypatch: pytest.MonkeyPatch, spark_resource: SparkResource
) -> None:
    monkeypatch.setenv("MEDALLION_LAKE_URI", "s3://lake/unreachable")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    SOURCE["events"] = rows(("a", "2017-01-01", 1))
    started = time.perf_counter()
    result = materialize([events_asset("insert_new")], spark_resource, "2017-01-01")
    assert not result.success and time.perf_counter() - started < 60
    error = result.get_step_failure_events()[0].event_specific_data.error
    text = str(error.cause.message if error.cause else error.message)
    assert "cannot reach the Delta table at s3://lake/unreachable/bronze/events" in text
    assert SECRET not in text


def test_no_secret_in_metadata(lake_root: str, spark_resource: SparkResource) -> None:
    SOURCE["events"] = rows(("a", "2017-01-01", 1))
    result = materialize([events_asset("insert_new")], spark_resource, "2017-01-01")
    assert result.success
    assert SECRET not in repr(output_metadata(result))


WRITER = """
import sys, datetime as dt, numpy as np, pyarrow as pa, dagster as dg
from medallion_assets.resources.delta_lake import DeltaLakeIOManager, LakeResource, lake_metadata
from medallion_assets.resources.spark import SparkResource
from medallion_assets.specs import LakeTable
spec = LakeTable("bronze", "big", ("id",), "_change_date", "replace_partition")
n = int(sys.argv[1])
@dg.asset(key=spec.asset_path, partitions_def=dg.DailyPartitionsDefinition(start_date="2017-01-01"),
          metadata=lake_metadata(spec), io_manager_key="lake")
def big() -> pa.Table:
    rng = np.random.default_rng(int(sys.argv[2]))
    return pa.table({"id": np.arange(n), "payload": rng.random(n), "noise": rng.integers(0, 2**62, n),
                     "_change_date": pa.array([dt.date(2017, 1, 1)] * n, pa.date32())})
lake = DeltaLakeIOManager(spark=SparkResource(), lakehouse=LakeResource())
dg.materialize([big], partition_key="2017-01-01", resources={"lake": lake})
print("done")
"""


def test_a_killed_write_leaves_the_previous_version(tmp_path: Path) -> None:
    """Invariant 4: kill the writer while it writes data files; the table stays at its last commit."""
    env = {**os.environ, "MEDALLION_LAKE_URI": str(tmp_path), "MEDALLION_HOME": str(tmp_path / "home")}

    def write(rows_count: int, seed: int) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-c", WRITER, str(rows_count), str(seed)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    assert write(1000, 1).wait(timeout=120) == 0
    table_dir = tmp_path / "bronze" / "big"
    before = DeltaTable(str(table_dir))
    assert before.version() == 0 and before.to_pyarrow_dataset().count_rows() == 1000

    writer = write(30_000_000, 2)
    deadline = time.monotonic() + 120
    while not any(
        p.stat().st_size > 0
        for p in table_dir.rglob("*.parquet")
        if p.stat().st_mtime > time.time() - 60
        and p.name not in {f.split("/")[-1] for f in before.file_uris()}
    ):
        assert writer.poll() is None, "the big write finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(writer.pid, signal.SIGKILL)
    writer.wait()

    after = DeltaTable(str(table_dir))
    assert after.version() == 0 and after.to_pyarrow_dataset().count_rows() == 1000
    assert write(2000, 3).wait(timeout=300) == 0  # the re-run completes, without duplicates
    final = DeltaTable(str(table_dir))
    assert final.version() == 1 and final.to_pyarrow_dataset().count_rows() == 2000


BAD_CREDENTIALS = """
import json, os, socket, subprocess, sys, time
from pathlib import Path
import boto3, dagster as dg, pyarrow as pa, datetime as dt
from medallion_assets.resources.delta_lake import DeltaLakeIOManager, LakeResource, lake_metadata
from medallion_assets.resources.spark import SparkResource
from medallion_assets.specs import LakeTable

with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
# moto enforces IAM auth after creating the user and key (4 actions); its own process, like MinIO.
moto = str(Path(sys.executable).parent / "moto_server")
server = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)],
                          env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "4"},
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
endpoint = "http://127.0.0.1:%s" % port
for _ in range(300):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        break
    except OSError:
        time.sleep(0.1)
iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x",
                   aws_secret_access_key="y")
iam.create_user(UserName="lake")
key = iam.create_access_key(UserName="lake")["AccessKey"]
policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
iam.put_user_policy(UserName="lake", PolicyName="all", PolicyDocument=json.dumps(policy))
boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key["AccessKeyId"],
             aws_secret_access_key=key["SecretAccessKey"]).create_bucket(Bucket="lake")

spec = LakeTable("bronze", "events", ("id",), "_change_date", "insert_new")
@dg.asset(key=spec.asset_path, partitions_def=dg.DailyPartitionsDefinition(start_date="2017-01-01"),
          metadata=lake_metadata(spec), io_manager_key="lake")
def events() -> pa.Table:
    return pa.table({"id": ["a"], "_change_date": pa.array([dt.date(2017, 1, 1)], pa.date32())})

os.environ.update(MEDALLION_LAKE_URI="s3://lake/lake", AWS_ENDPOINT_URL=endpoint, AWS_REGION="us-east-1",
                  AWS_ACCESS_KEY_ID=key["AccessKeyId"])
outcome = {}
for label, secret in (("good", key["SecretAccessKey"]), ("bad", "wrong-secret-value")):
    os.environ["AWS_SECRET_ACCESS_KEY"] = secret
    lake = DeltaLakeIOManager(spark=SparkResource(), lakehouse=LakeResource())
    result = dg.materialize([events], partition_key="2017-01-01", raise_on_error=False,
                            resources={"lake": lake})
    failure = result.get_step_failure_events()
    outcome[label] = failure[0].event_specific_data.error.cause.message if failure else "ok"
server.terminate()
print(json.dumps(outcome))
"""


def test_bad_credentials_are_a_clear_error_without_secrets(tmp_path: Path) -> None:
    """Against an S3 server that enforces credentials (moto with IAM auth, in its own process)."""
    result = subprocess.run(
        [sys.executable, "-c", BAD_CREDENTIALS],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "MEDALLION_HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["good"] == "ok"
    assert "cannot reach the Delta table at s3://lake/lake/bronze/events" in outcome["bad"]
    assert "403 Forbidden" in outcome["bad"] or "privileges" in outcome["bad"]
    assert "wrong-secret-value" not in outcome["bad"]


def test_a_table_partitioned_by_day_streams_its_window(tmp_path: Path) -> None:
    """Tables written by the earlier layout (a directory per day: the day is in the path, not in
    the files) stream the window's rows with their day, a batch at a time."""
    lake, key = Lake(str(tmp_path), {}), dg.AssetKey(["bronze", "old"])
    days = [dt.date(2017, 1, d) for d in (1, 2, 3)]
    write_deltalake(
        lake.uri(key),
        pa.table({"id": ["a", "b", "c"], "_change_date": pa.array(days, pa.date32())}),
        partition_by=["_change_date"],
    )
    window = Window("_change_date", dt.date(2017, 1, 2), dt.date(2017, 1, 4))
    rows = lake.read_batches(key, window).read_all().sort_by("id")  # files in no given order
    assert rows.to_pylist() == [
        {"id": "b", "_change_date": days[1]},
        {"id": "c", "_change_date": days[2]},
    ]
