"""The one module on Dagster's private APIs, pinned to the version below. It holds three things that
no public API offers:

- event log storages that store a batch of Dagster events in one transaction per database;
- `execute_without_output_capture`: a run executed in this process that does not keep every
  step's output for a result object (`JobDefinition.execute_in_process` keeps them: each output is
  a Spark DataFrame with the data it came from, and a scale-1 build ran the Spark driver out of
  memory with them alive until the run ended);
- `run_events_in_short`: what the audit needs of a run's events, its per-partition events counted
  in the event log's table (SqlEventLogStorageTable, `run_connection`) rather than read one by one.

Event log storages.

Dagster books every partition of a ranged run: one planned event and one materialization per
partition and asset (a full build: ~30,000 events). With `DAGSTER_EVENT_BATCH_SIZE` set, Dagster
hands these to `store_event_batch` a batch at a time, but the stock SQLite storage stores them one
by one (two transactions on a fresh engine per event: ~15-30 ms), and the PostgreSQL one opens a
new connection for each statement of a planned event (NullPool: ~13-33 ms). These subclasses store
a batch in one connection and one transaction per database (the run's shard and the index): a
batch of asset events (planned, materialized, observed) as multi-row inserts of the stock rows,
with the asset's summary row updated from its last event of each kind, as dagster-postgres already
does for materializations; any other batch through the stock code, event by event. The UI reads
the rows with the stock code: materialized, failed and in-progress partitions show as before
(test_event_batches.py compares what both storages store).

The private APIs the storages use: the storages' `_connect`, SQLite's `_db_lock`, and
SqlEventLogStorage's `_event_to_row`, `_store_asset_event_tags`, `_store_asset_event` and
`_store_asset_check_evaluation_planned`.
The storage switches batching on (`DAGSTER_EVENT_BATCH_SIZE`) in every process that opens the
instance (the CLI, `dagster dev`, the daemon, each run worker): they all read dagster.yaml.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import dagster as dg
import sqlalchemy as sa
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationPlanned
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.events import ASSET_EVENTS
from dagster._core.events.log import EventLogEntry
from dagster._core.execution.execute_in_process import core_execute_in_process
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log import SqlEventLogStorage, SqliteEventLogStorage
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable, SqlEventLogStorageTable
from dagster._serdes import ConfigurableClassData, deserialize_value, serialize_value
from dagster_postgres import PostgresEventLogStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config
from sqlalchemy.engine import Connection

DAGSTER_VERSION = "1.13.27"  # the private APIs above were read in this version
# Events per batch: a ranged step's materializations (one per partition) and a run's planned events
# arrive as one batch each; a whole history is ~800 partitions per asset.
EVENT_BATCH_SIZE = 10_000
ROWS_PER_INSERT = 1_000  # SQLite binds at most 32,766 values per statement; an event row has 8


def enable_event_batches() -> None:
    """Make Dagster hand events to `store_event_batch` (a user's own setting wins)."""
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", str(EVENT_BATCH_SIZE))


def _is_asset_event(event: EventLogEntry) -> bool:
    return bool(
        event.dagster_event is not None
        and event.dagster_event_type in ASSET_EVENTS
        and event.dagster_event.asset_key
    )


def _store_in_order(
    storage: SqlEventLogStorage,
    events: Sequence[EventLogEntry],
    store_asset_events: Callable[[Sequence[EventLogEntry]], None],
) -> None:
    """Each stretch of asset events of one run (a run's planned events come sorted by key, asset
    and check events alternating) multi-row; any other event through the stock `store_event`."""
    for (_, asset_events), stretch in groupby(events, key=lambda e: (e.run_id, _is_asset_event(e))):
        if asset_events:
            for chunk in _chunks(list(stretch)):
                store_asset_events(chunk)
        else:
            for event in stretch:
                storage.store_event(event)


def _index_asset_events(
    storage: SqlEventLogStorage, conn: Connection, events: Sequence[EventLogEntry], ids: Sequence[int]
) -> None:
    """The index rows the stock `store_event` writes per asset event: its tags, and the asset's
    summary row, which each event of a kind overwrites (so the last of each kind is what stays)."""
    storage._store_asset_event_tags(conn, events, ids)
    last: dict[tuple[str, str], tuple[EventLogEntry, int]] = {}
    for event, event_id in zip(events, ids, strict=True):
        last[(event.dagster_event.asset_key.to_string(), event.dagster_event_type)] = (event, event_id)
    for event, event_id in sorted(last.values(), key=lambda pair: pair[1]):
        storage._store_asset_event(conn, event, event_id)


def _chunks(events: list[EventLogEntry]) -> Iterator[list[EventLogEntry]]:
    for start in range(0, len(events), ROWS_PER_INSERT):
        yield events[start : start + ROWS_PER_INSERT]


INSERT_RETURNING_IDS = SqlEventLogStorageTable.insert().returning(
    SqlEventLogStorageTable.c.id, sort_by_parameter_order=True
)


def _check_version() -> None:
    if dg.__version__ != DAGSTER_VERSION:
        raise RuntimeError(
            f"medallion's batched event storage was written for dagster {DAGSTER_VERSION}, "
            f"not {dg.__version__}: check dagster_internals.py against the new version's storages"
        )


class _CheckPlannedOnce(SqlEventLogStorage):
    """A ranged run's planned check is one event, stored as one row per partition; the stock code
    serializes the event again for each of those rows (~800 in a full build, ~1 s per check) and
    compiles them into one statement of ~800 VALUES."""

    def _store_asset_check_evaluation_planned(self, event: EventLogEntry, event_id: int | None) -> None:
        planned = event.get_dagster_event().event_specific_data
        assert isinstance(planned, AssetCheckEvaluationPlanned)
        keys = planned.partitions_subset.get_partition_keys() if planned.partitions_subset else [None]
        row = dict(
            asset_key=planned.asset_key.to_string(),
            check_name=planned.check_name,
            run_id=event.run_id,
            execution_status=AssetCheckExecutionRecordStatus.PLANNED.value,
            evaluation_event=serialize_value(event),
            evaluation_event_timestamp=self._event_insert_timestamp(event),
            evaluation_event_storage_id=event_id,
        )
        with self.index_connection() as conn:  # executemany: one statement compiled, not a VALUES list
            conn.execute(AssetCheckExecutionsTable.insert(), [{**row, "partition": k} for k in keys])


class BatchedSqliteEventLogStorage(_CheckPlannedOnce, SqliteEventLogStorage):
    """The SQLite event log under `$DAGSTER_HOME/history/runs`, storing a batch per transaction."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        _check_version()
        self._batch = threading.local()  # the open connections of the batch being stored, per thread
        super().__init__(base_dir, inst_data)
        # A batch holds the lock while it opens the connection of each shard it touches.
        self._db_lock = threading.RLock()
        enable_event_batches()

    @classmethod
    def from_config_value(  # the stock one builds the stock class
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> BatchedSqliteEventLogStorage:
        return cls(config_value["base_dir"], inst_data)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        shared: dict[str, Connection] | None = getattr(self._batch, "connections", None)
        if shared is None:
            with super()._connect(shard) as conn:
                yield conn
            return
        if shard not in shared:  # the shard's one transaction, committed when the batch ends
            shared[shard] = self._batch.stack.enter_context(super()._connect(shard))
        yield shared[shard]

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        with self._db_lock, ExitStack() as stack:
            self._batch.connections, self._batch.stack = {}, stack
            try:
                _store_in_order(self, events, self._store_asset_events)
            finally:
                self._batch.connections = None

    def _store_asset_events(self, events: Sequence[EventLogEntry]) -> None:
        # The stock store_event writes an asset event to the run's shard and mirrors it in the index.
        rows = [self._event_to_row(event) for event in events]
        with self.run_connection(events[0].run_id) as conn:
            conn.execute(SqlEventLogStorageTable.insert(), rows)
        with self.index_transaction() as conn:
            ids = list(conn.execute(INSERT_RETURNING_IDS, rows).scalars())
            _index_asset_events(self, conn, events, ids)


class BatchedPostgresEventLogStorage(_CheckPlannedOnce, PostgresEventLogStorage):
    """The PostgreSQL event log, storing a batch in one connection and one transaction."""

    def __init__(self, *args: Any, **kwargs: Any):
        _check_version()
        self._batch = threading.local()  # the connection of the batch being stored, per thread
        super().__init__(*args, **kwargs)
        enable_event_batches()

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> BatchedPostgresEventLogStorage:
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )

    def _connect(self) -> Any:
        shared: Connection | None = getattr(self._batch, "connection", None)
        return super()._connect() if shared is None else nullcontext(shared)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        with super()._connect() as conn:
            # The engine autocommits each statement; the batch is one transaction instead.
            conn = conn.execution_options(isolation_level="READ COMMITTED")
            with conn.begin():
                self._batch.connection = conn
                try:
                    _store_in_order(self, events, lambda chunk: self._store_asset_events(conn, chunk))
                finally:
                    self._batch.connection = None

    def _store_asset_events(self, conn: Connection, events: Sequence[EventLogEntry]) -> None:
        # One table holds runs' events and the index here: each event is inserted once.
        rows = [self._event_to_row(event) for event in events]
        ids = list(conn.execute(INSERT_RETURNING_IDS, rows).scalars())
        _index_asset_events(self, conn, events, ids)


def execute_without_output_capture(
    job: dg.JobDefinition, instance: dg.DagsterInstance, tags: dict[str, str], run_config: dict
) -> dg.ExecuteInProcessResult:
    """`job.execute_in_process`, minus its capture of every step's output for the result object.

    SIGTERM gets back its disposition when the run ends: Dagster then maps it to SIGINT's, which a
    process started as a background job (`medallion build &`) ignores, and `kill` would no longer
    stop such a build between its runs (during a run Dagster's handler stops the run cleanly)."""
    main_thread = threading.current_thread() is threading.main_thread()
    sigterm = signal.getsignal(signal.SIGTERM) if main_thread else None
    try:
        return core_execute_in_process(
            job=InMemoryJob(job_def=job),
            run_config=run_config,
            instance=instance,
            output_capturing_enabled=False,
            raise_on_error=False,
            run_tags=tags,
        )
    finally:
        if sigterm is not None:
            signal.signal(signal.SIGTERM, sigterm)


@dataclass(frozen=True)
class PlannedPartitions:
    """An asset's planned partitions in a run, counted in SQL: how many, the first and last key."""

    step: str | None
    count: int
    first: str | None
    last: str | None


def run_events_in_short(
    instance: dg.DagsterInstance, run_id: str, kinds: set[dg.DagsterEventType]
) -> tuple[dict[str, PlannedPartitions], list[EventLogEntry]] | None:
    """What the audit needs of a run's events without reading one event per partition (a full
    build's runs hold ~60,000: 15.7 s of a scale-1 build read them back): per asset its planned
    partitions counted in the event log's table (`PlannedPartitions`, keyed by the asset key's user
    string), and, in order, the events of `kinds` except the per-partition ones: each asset's last
    materialization and every planned event without a partition key (an unpartitioned asset, or a
    run's subset in one event). None when the instance's event log is not a SQL one."""
    storage = instance.event_log_storage
    if not isinstance(storage, SqlEventLogStorage):
        return None
    table = SqlEventLogStorageTable
    planned_kind = dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED.value
    materialized_kind = dg.DagsterEventType.ASSET_MATERIALIZATION.value
    per_partition = {planned_kind, materialized_kind}
    in_run = table.c.run_id == run_id
    with storage.run_connection(run_id) as conn:
        counted = conn.execute(
            sa.select(
                table.c.asset_key,
                table.c.step_key,
                sa.func.count(sa.distinct(table.c.partition)),
                sa.func.min(table.c.partition),
                sa.func.max(table.c.partition),
            )
            .where(in_run, table.c.dagster_event_type == planned_kind, table.c.partition.isnot(None))
            .group_by(table.c.asset_key, table.c.step_key)
        ).all()
        last_materializations = (
            sa.select(sa.func.max(table.c.id))
            .where(in_run, table.c.dagster_event_type == materialized_kind)
            .group_by(table.c.asset_key)
        )
        wanted = sa.or_(
            table.c.id.in_(last_materializations),
            sa.and_(table.c.dagster_event_type == planned_kind, table.c.partition.is_(None)),
            table.c.dagster_event_type.in_([k.value for k in kinds if k.value not in per_partition]),
        )
        rows = conn.execute(sa.select(table.c.event).where(in_run, wanted).order_by(table.c.id)).all()
    planned = {
        dg.AssetKey.from_db_string(key).to_user_string(): PlannedPartitions(step, count, first, last)
        for key, step, count, first, last in counted
    }
    return planned, [deserialize_value(row[0], EventLogEntry) for row in rows]
