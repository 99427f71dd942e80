"""What our batched event log storages store equals what Dagster's stock storages store, as the UI
reads it (dagster_internals.py).

The same scenario runs in a stock instance and in ours, on SQLite and on PostgreSQL (each instance
in a database of its own): a daily-partitioned asset `numbers` with a partitioned asset check and a
downstream `doubled`, materialized in one ranged run over 20 partitions; a second ranged run over
an overlapping range in which `doubled` fails; a third ranged run created but never executed (its
planned events stored, its partitions in progress). Then everything a user sees is read back from
both instances with Dagster's public reading code, with run ids, storage ids and timestamps replaced
by the position of the run (or event) in the scenario, and compared: status by partition,
materialized partitions, the latest materialization, the asset's summary row, every run's event log,
materializations, failures and planned events per partition, their tags, and the asset check's
executions and partition state. Absolute outcomes are asserted too, so that two empty or equally
broken instances cannot pass, and in our instance the batch path is checked to have stored the
asset events (the planned events of the unexecuted run, and the ranged steps' materializations).
Then our SQLite storage's reads reuse their connections (the stock one opens 6-7 per read), and a
wipe closes them. Last, a run of ours leaves SIGTERM as it found it (`execute_without_output_capture`).
"""

# No `from __future__ import annotations`: Dagster inspects the context annotations.

import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)
from dagster._core.events.log import EventLogEntry

from medallion_assets import dagster_internals as event_batches
from medallion_assets.automation.audit import audit_rows
from medallion_assets.resources.instance import instance_yaml
from medallion_assets.settings import get_settings
from medallion_assets.tags import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG
from medallion_assets_tests.helpers import booked_instance, scratch_database

BATCH_SIZE = "DAGSTER_EVENT_BATCH_SIZE"
FAIL_DOUBLED = "medallion_test/fail_doubled"  # a run tag: `doubled` raises in that run
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
STOCK_SQLITE = "telemetry:\n  enabled: false\n"
STOCK_POSTGRES = "storage:\n  postgres:\n    postgres_url:\n      env: DAGSTER_PG_URL\n"

DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-02-10")
KEYS = DAILY.get_partition_keys()  # 40 days
FIRST = KEYS[0:20]  # run 1: materializes both assets
SECOND = KEYS[10:25]  # run 2: `numbers` again, `doubled` fails
THIRD = KEYS[22:30]  # run 3: created, never executed
NUMBERS, DOUBLED = dg.AssetKey("numbers"), dg.AssetKey("doubled")
CHECK = dg.AssetCheckKey(NUMBERS, "numbers_positive")


# Code versions make the data versions (event tags) the same in every instance: without them, Dagster
# derives a materialization's data version from its run id.
@dg.asset(partitions_def=DAILY, backfill_policy=dg.BackfillPolicy.single_run(), code_version="1")
def numbers(context: dg.AssetExecutionContext) -> None:
    context.add_output_metadata({"days": len(context.partition_keys)})


@dg.asset_check(asset=numbers, partitions_def=DAILY)
def numbers_positive(context: dg.AssetCheckExecutionContext) -> None:
    """Fails on the fourth day. A ranged step's AssetCheckResult has no partition, so the check logs
    an evaluation per partition, each of the partition's latest materialization (as Dagster would)."""
    op = context.op_execution_context
    latest = latest_materializations(context.instance, op.partition_keys)
    for partition in op.partition_keys:
        record = latest[partition]
        target = AssetCheckEvaluationTargetMaterializationData(
            storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
        )
        op.log_event(
            dg.AssetCheckEvaluation(
                NUMBERS,
                CHECK.name,
                passed=partition != KEYS[3],
                partition=partition,
                target_materialization_data=target,
            )
        )


def latest_materializations(
    instance: dg.DagsterInstance, partitions: Sequence[str]
) -> dict[str, dg.EventLogRecord]:
    """The latest materialization of each of these partitions of `numbers`."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=NUMBERS, asset_partitions=list(partitions)), limit=10_000
    ).records
    return {record.partition_key: record for record in reversed(records)}


@dg.asset(
    partitions_def=DAILY, backfill_policy=dg.BackfillPolicy.single_run(), deps=[numbers], code_version="1"
)
def doubled(context: dg.AssetExecutionContext) -> None:
    if context.run.tags.get(FAIL_DOUBLED):
        raise RuntimeError("asked to fail")


DEFS = dg.Definitions(
    assets=[numbers, doubled],
    asset_checks=[numbers_positive],
    jobs=[
        dg.define_asset_job("everything", dg.AssetSelection.all()),
        # Without the check, a run's planned events are asset events only: one batch for our path.
        dg.define_asset_job("assets_only", dg.AssetSelection.assets(numbers, doubled).without_checks()),
    ],
)


def range_tags(keys: Sequence[str]) -> dict[str, str]:
    return {PARTITION_RANGE_START_TAG: keys[0], PARTITION_RANGE_END_TAG: keys[-1]}


def run_scenario(instance: dg.DagsterInstance) -> list[str]:
    """The three runs; their ids in scenario order."""
    everything = DEFS.resolve_job_def("everything")
    first = everything.execute_in_process(instance=instance, tags=range_tags(FIRST), run_config=QUIET)
    assert first.success
    second = everything.execute_in_process(
        instance=instance,
        tags={**range_tags(SECOND), FAIL_DOUBLED: "yes"},
        run_config=QUIET,
        raise_on_error=False,
    )
    assert not second.success
    third = instance.create_run_for_job(DEFS.resolve_job_def("assets_only"), tags=range_tags(THIRD))
    return [first.run_id, second.run_id, third.run_id]


def materializations(instance: dg.DagsterInstance, key: dg.AssetKey) -> Sequence[dg.EventLogRecord]:
    return instance.fetch_materializations(key, limit=1000, ascending=True).records


def failures(instance: dg.DagsterInstance, key: dg.AssetKey) -> Sequence[dg.EventLogRecord]:
    return instance.fetch_failed_materializations(key, limit=1000, ascending=True).records


def planned(instance: dg.DagsterInstance, key: dg.AssetKey) -> Sequence[dg.EventLogRecord]:
    return instance.get_event_records(
        dg.EventRecordsFilter(dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED, asset_key=key),
        ascending=True,
    )


class Normalizer:
    """Replaces run ids by the run's index in the scenario and storage ids by the event they name."""

    def __init__(self, instance: dg.DagsterInstance, run_ids: Sequence[str]):
        self.run_index = {run_id: index for index, run_id in enumerate(run_ids)}
        self.events: dict[int, tuple[Any, ...]] = {}  # storage id (as the index reads it) -> event
        for key in (NUMBERS, DOUBLED):
            for record in [
                *materializations(instance, key),
                *failures(instance, key),
                *planned(instance, key),
            ]:
                self.events[record.storage_id] = self.event(record.event_log_entry)

    def run(self, run_id: str | None) -> int | None:
        return None if run_id is None else self.run_index[run_id]

    def event(self, entry: EventLogEntry | None) -> tuple[Any, ...] | None:
        if entry is None:
            return None
        event = entry.dagster_event
        if event is None:
            return ("log", self.run(entry.run_id), entry.user_message)
        return (
            event.event_type_value,
            self.run(entry.run_id),
            event.step_key,
            event.asset_key.to_user_string() if event.asset_key else None,
            event.partition,
        )

    def storage_id(self, storage_id: int | None) -> tuple[Any, ...] | None:
        return None if storage_id is None else self.events[storage_id]

    def record(self, record: Any) -> tuple[Any, ...] | None:
        return None if record is None else self.event(record.event_log_entry)

    def tags(self, tags: dict[str, str]) -> dict[str, Any]:
        # Data-version pointers to the input's materialization name it by storage id.
        return {
            name: self.storage_id(int(value)) if name.startswith("dagster/input_event_pointer/") else value
            for name, value in tags.items()
        }


def asset_view(instance: dg.DagsterInstance, key: dg.AssetKey, norm: Normalizer) -> dict[str, Any]:
    """What the UI shows of one asset, without ids or times."""
    status = instance.get_status_by_partition(key, KEYS, DAILY)
    materialized = materializations(instance, key)
    (entry,) = instance.get_asset_records([key])
    summary = entry.asset_entry
    latest_by_partition = instance.get_latest_storage_id_by_partition(
        key, dg.DagsterEventType.ASSET_MATERIALIZATION
    )
    return {
        "status": {partition: str(value) for partition, value in (status or {}).items()},
        "materialized": sorted(instance.get_materialized_partitions(key)),
        "latest materialization": norm.event(instance.get_latest_materialization_event(key)),
        "materializations": [norm.record(r) for r in materialized],
        "materialization metadata": [
            {name: value.value for name, value in r.asset_materialization.metadata.items()}
            for r in materialized
        ],
        "materializations per partition": Counter(r.partition_key for r in materialized),
        "failures": [norm.record(r) for r in failures(instance, key)],
        "planned": [norm.record(r) for r in planned(instance, key)],
        "latest materialization by partition": {
            partition: norm.storage_id(storage_id) for partition, storage_id in latest_by_partition.items()
        },
        "latest planned by partition": {
            partition: norm.run(info.run_id) if info else None
            for partition in (None, KEYS[5], KEYS[15], KEYS[23], KEYS[35])
            for info in [instance.get_latest_planned_materialization_info(key, partition)]
        },
        "summary": {
            "last materialization": norm.record(summary.last_materialization_record),
            "last run": norm.run(summary.last_run_id),
            "last observation": norm.record(summary.last_observation_record),
            "last planned": norm.storage_id(summary.last_planned_materialization_storage_id),
            "last planned run": norm.run(summary.last_planned_materialization_run_id),
            "last failure": norm.record(summary.last_failed_to_materialize_record),
        },
        "event tags": sorted(
            (norm.tags(dict(tags)) for tags in instance.get_event_tags_for_asset(key)), key=repr
        ),
    }


def check_view(instance: dg.DagsterInstance, norm: Normalizer) -> dict[str, Any]:
    """What the UI shows of the asset check: its executions, latest one and partition state."""
    storage = instance.event_log_storage

    def execution(record: Any) -> tuple[Any, ...] | None:
        return None if record is None else (str(record.status), norm.run(record.run_id), record.partition)

    latest = storage.get_latest_asset_check_execution_by_key([CHECK]).get(CHECK)
    (state,) = storage.get_asset_check_state([(CHECK, DAILY)]).values()
    (summary,) = storage.get_asset_check_summary_records([CHECK]).values()
    return {
        "history": [execution(r) for r in storage.get_asset_check_execution_history(CHECK, limit=1000)],
        "latest": execution(latest),
        "summary": execution(summary.last_check_execution_record),
        "summary last run": norm.run(summary.last_run_id),
        "state": {
            str(status): sorted(subset.subset_value.get_partition_keys())
            for status, subset in state.subsets.items()
        },
        "state in progress runs": sorted(norm.run(run_id) for run_id in state.in_progress_runs),
        "partitions": sorted(
            (
                str(info.partition_key),
                str(info.latest_execution_status),
                norm.run(info.latest_planned_run_id),
                norm.storage_id(info.latest_materialization_storage_id),
                norm.storage_id(info.latest_target_materialization_storage_id),
            )
            for info in storage.get_asset_check_partition_info([CHECK])
        ),
    }


def what_the_ui_sees(instance: dg.DagsterInstance, run_ids: Sequence[str]) -> dict[str, Any]:
    norm = Normalizer(instance, run_ids)
    runs = [instance.get_run_by_id(run_id) for run_id in run_ids]
    return {
        "asset keys": sorted(key.to_user_string() for key in instance.all_asset_keys()),
        "runs": [(run.job_name, str(run.status), norm.run(run.run_id)) for run in runs if run],
        "event logs": [[norm.event(e) for e in instance.all_logs(run_id)] for run_id in run_ids],
        "assets": {key.to_user_string(): asset_view(instance, key, norm) for key in (NUMBERS, DOUBLED)},
        "check": check_view(instance, norm),
    }


@contextmanager
def instance_from(dagster_yaml: str, home: Path) -> Iterator[dg.DagsterInstance]:
    """An instance of this dagster.yaml in a new DAGSTER_HOME (the environment is the caller's)."""
    home.mkdir()
    (home / "dagster.yaml").write_text(dagster_yaml)
    os.environ["DAGSTER_HOME"] = str(home)
    with dg.DagsterInstance.get() as instance:
        yield instance


def unset_batch_size(monkeypatch: pytest.MonkeyPatch) -> None:
    # Set, then deleted: the monkeypatch remembers it was unset and undoes what our storage sets.
    monkeypatch.setenv(BATCH_SIZE, "0")
    monkeypatch.delenv(BATCH_SIZE)


def stock_and_ours(database: str, home: Path) -> dict[str, str]:
    """The dagster.yaml of the stock instance and of ours (read with DAGSTER_PG_URL set for PostgreSQL)."""
    stock = STOCK_POSTGRES if database == "postgres" else STOCK_SQLITE
    return {"stock": stock, "ours": instance_yaml(get_settings(), home)}


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_batched_storage_stores_what_the_stock_storage_stores(
    database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))  # restored after the test
    monkeypatch.delenv("DAGSTER_PG_URL", raising=False)
    batched: Counter[tuple[str, str]] = Counter()  # (run id, event type) stored by our batch path
    index_asset_events = event_batches._index_asset_events

    def spy(storage: Any, conn: Any, events: Sequence[EventLogEntry], ids: Sequence[int]) -> None:
        batched.update((event.run_id, event.dagster_event_type.value) for event in events)
        index_asset_events(storage, conn, events, ids)

    monkeypatch.setattr(event_batches, "_index_asset_events", spy)
    seen: dict[str, dict[str, Any]] = {}
    run_ids: dict[str, list[str]] = {}
    for kind in ("stock", "ours"):
        if database == "postgres":  # each instance in a database of its own
            url = scratch_database(request.getfixturevalue("pg_url"), f"event_batches_{kind}")
            monkeypatch.setenv("DAGSTER_PG_URL", url.replace("postgresql://", "postgresql+psycopg2://", 1))
        unset_batch_size(monkeypatch)
        with instance_from(stock_and_ours(database, tmp_path / kind)[kind], tmp_path / kind) as instance:
            storage = type(instance.event_log_storage).__name__
            if kind == "ours":
                assert (
                    storage == f"Batched{'Postgres' if database == 'postgres' else 'Sqlite'}EventLogStorage"
                )
                assert os.environ.get(BATCH_SIZE) == str(event_batches.EVENT_BATCH_SIZE)
            else:
                assert not storage.startswith("Batched")
                assert BATCH_SIZE not in os.environ
            run_ids[kind] = run_scenario(instance)
            seen[kind] = what_the_ui_sees(instance, run_ids[kind])
            for run_id in run_ids[kind][:2]:  # the finished runs: the audit counts their events in SQL
                counted = audit_rows(instance, run_id)
                assert counted == audit_rows(instance, run_id, count_in_sql=False), (database, kind)
                assert max(row.partitions or 0 for row in counted) > 1

    stock, ours = seen["stock"], seen["ours"]
    for part, value in stock.items():  # part by part, for a readable failure
        if part == "assets":
            for key, view in value.items():
                for name, got in view.items():
                    assert ours["assets"][key][name] == got, f"{database}: {key}: {name}"
        else:
            assert ours[part] == value, f"{database}: {part}"
    assert ours == stock
    assert_expected_outcome(stock)
    # Our batch path stored the ranged steps' materializations and every run's planned asset events
    # (the check's planned events, between them, through the stock code).
    index = {run_id: i for i, run_id in enumerate(run_ids["ours"])}
    assert {(index[run_id], kind): n for (run_id, kind), n in batched.items()} == {
        (0, "ASSET_MATERIALIZATION"): 2 * len(FIRST),
        (1, "ASSET_MATERIALIZATION"): len(SECOND),
        (0, "ASSET_MATERIALIZATION_PLANNED"): 2 * len(FIRST),
        (1, "ASSET_MATERIALIZATION_PLANNED"): 2 * len(SECOND),
        (2, "ASSET_MATERIALIZATION_PLANNED"): 2 * len(THIRD),
    }


def assert_expected_outcome(seen: dict[str, Any]) -> None:
    """What the scenario must show, whichever storage stored it."""
    assert [status for _, status, _ in seen["runs"]] == [
        "DagsterRunStatus.SUCCESS",
        "DagsterRunStatus.FAILURE",
        "DagsterRunStatus.NOT_STARTED",
    ]
    numbers, doubled = seen["assets"]["numbers"], seen["assets"]["doubled"]

    def statuses(view: dict[str, Any]) -> dict[str, list[str]]:
        by_status: dict[str, list[str]] = {}
        for partition, status in view["status"].items():
            by_status.setdefault(status, []).append(partition)
        return by_status

    in_progress, untouched = list(THIRD), KEYS[30:]
    assert statuses(numbers) == {
        "AssetPartitionStatus.MATERIALIZED": KEYS[:22],
        "AssetPartitionStatus.IN_PROGRESS": in_progress,
        "None": untouched,
    }
    assert statuses(doubled) == {
        "AssetPartitionStatus.MATERIALIZED": KEYS[:10],
        "AssetPartitionStatus.FAILED": KEYS[10:22],
        "AssetPartitionStatus.IN_PROGRESS": in_progress,
        "None": untouched,
    }
    assert numbers["materialized"] == KEYS[:25] and doubled["materialized"] == FIRST
    assert numbers["latest materialization"][1:] == (1, "numbers", "numbers", SECOND[-1])
    assert doubled["latest materialization"][1:] == (0, "doubled", "doubled", FIRST[-1])
    assert numbers["materializations per partition"] == Counter(FIRST) + Counter(SECOND)
    assert len(numbers["planned"]) == len(FIRST) + len(SECOND) + len(THIRD)
    assert all(tags.get("dagster/data_version") for tags in numbers["event tags"])
    check = seen["check"]
    # One execution per run and partition: the planned record, completed by its evaluation.
    assert len(check["history"]) == len(FIRST) + len(SECOND)
    assert {status for status, _, _ in check["history"]} == {
        "AssetCheckExecutionRecordStatus.SUCCEEDED",
        "AssetCheckExecutionRecordStatus.FAILED",
    }
    assert check["state"]["AssetCheckExecutionResolvedStatus.FAILED"] == [KEYS[3]]
    assert check["state"]["AssetCheckExecutionResolvedStatus.SUCCEEDED"] == [
        key for key in KEYS[:25] if key != KEYS[3]
    ]


def test_sqlite_reads_reuse_their_connections_and_a_wiped_instance_records_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stock SQLite storage opened 6-7 connections, each on a new engine, to read an asset's latest
    # event (schema checks before the query): ~12.7 ms; ours keeps an engine and its connection per
    # shard and remembers what the schema has: ~1.5 ms. The UI, sensors and every check step read so.
    opened: list[str] = []
    connect = sqlite3.dbapi2.connect  # what SQLAlchemy's SQLite dialect calls
    monkeypatch.setattr(sqlite3.dbapi2, "connect", lambda *a, **k: opened.append(a[0]) or connect(*a, **k))
    with booked_instance(tmp_path / "dagster") as instance:
        first = dg.materialize([numbers], instance=instance, partition_key=KEYS[0], run_config=QUIET)
        assert first.success and instance.all_logs(first.run_id)
        opened.clear()
        for _ in range(10):
            assert instance.get_latest_materialization_event(NUMBERS) is not None
            assert instance.get_asset_records([NUMBERS])
        assert len(opened) <= 2, Counter(opened)  # the stock storage: 130
        # A wipe deletes the runs' files and empties the index (its schema stays): no kept connection
        # may still read a deleted run's events, and the instance records again.
        instance.wipe()
        assert instance.get_latest_materialization_event(NUMBERS) is None
        assert not instance.all_logs(first.run_id)
        assert dg.materialize([numbers], instance=instance, partition_key=KEYS[1], run_config=QUIET).success
        latest = instance.get_latest_materialization_event(NUMBERS)
        assert latest is not None and latest.asset_materialization.partition == KEYS[1]


def test_a_build_in_a_background_job_can_still_be_killed_after_a_run() -> None:
    # A background job ignores SIGINT, and Dagster maps SIGTERM to SIGINT's handler when a run ends:
    # without our restore, `kill` of a `medallion build &` did nothing between its runs.
    build_in_background = """
import os, signal, time
import dagster as dg
from medallion_assets.dagster_internals import execute_without_output_capture
signal.signal(signal.SIGINT, signal.SIG_IGN)  # what `&` in a non-interactive shell does
signal.signal(signal.SIGTERM, signal.SIG_DFL)  # whatever the test's own process has (CI's ignores it)

@dg.op
def one() -> int:
    return 1

@dg.job(executor_def=dg.in_process_executor)
def tiny() -> None:
    one()

with dg.DagsterInstance.ephemeral() as instance:
    assert execute_without_output_capture(tiny, instance, {}, {}).success
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(10)
raise SystemExit("SIGTERM was ignored")
"""
    done = subprocess.run([sys.executable, "-c", build_in_background], capture_output=True, text=True)
    assert done.returncode == -signal.SIGTERM, done.stderr[-2000:]
