"""The one module on Dagster's private APIs, pinned to the version below. It holds four things that
no public API offers:

- event log storages that store a batch of Dagster events in one transaction per database, and
  read on a kept connection without asking the schema again each time;
- `execute_without_output_capture`: a run executed in this process that does not keep every
  step's output for a result object (`JobDefinition.execute_in_process` keeps them: each output is
  a Spark DataFrame with the data it came from, and a scale-1 build ran the Spark driver out of
  memory with them alive until the run ended);
- `run_events_in_short`: what the audit needs of a run's events, its per-partition events counted
  in the event log's table (SqlEventLogStorageTable, `run_connection`) rather than read one by one;
- `threaded_in_process_executor`: a run's steps in its own process (one Spark session, as with the
  in_process executor) and two at a time, in threads. On these two cores a step leaves one idle
  most of the time (a small query is the Spark driver's planning, one thread, or Python's): the
  hand-made build, 139 s in steps one after the other, takes 101-105 s two at a time, the same
  tables to the row. Dagster's multiprocess executor would start a process per step (and, for a local
  session, a JVM). It runs Dagster's own step code and `ActiveExecution` (the plan's state: what
  may run, what a failure skips, retries, pools) as the in-process and multiprocess executors do:
  `dagster_event_sequence_for_step`, `_trigger_hook`, `ExecuteRunWithPlanIterable`,
  `PlanExecutionContextManager`, `InstanceConcurrencyContext`, `step_failure_event_from_exc_info`.

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

The private APIs the storages use: the storages' `_connect`, SQLite's `_db_lock`, `_initdb`,
`_initialized_dbs`, `conn_string_for_shard` and engine settings (`create_engine`,
`SQLITE_BUSY_TIMEOUT_SECONDS`), and SqlEventLogStorage's `_event_to_row`, `_store_asset_event_tags`,
`_store_asset_event`, `_store_asset_check_evaluation_planned`, `has_secondary_index` and
`has_asset_key_col`.
The storage switches batching on (`DAGSTER_EVENT_BATCH_SIZE`) in every process that opens the
instance (the CLI, `dagster dev`, the daemon, each run worker): they all read dagster.yaml.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
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
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._core.events import ASSET_EVENTS, DagsterEvent, EngineEventData
from dagster._core.events.log import EventLogEntry
from dagster._core.execution.api import ExecuteRunWithPlanIterable
from dagster._core.execution.compute_logs import create_compute_log_file_key
from dagster._core.execution.context.system import (
    PlanExecutionContext,
    PlanOrchestrationContext,
    StepExecutionContext,
)
from dagster._core.execution.context_creation_job import PlanExecutionContextManager
from dagster._core.execution.execute_in_process import core_execute_in_process
from dagster._core.execution.plan.active import ActiveExecution
from dagster._core.execution.plan.execute_plan import _trigger_hook, dagster_event_sequence_for_step
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.execution.plan.objects import ErrorSource, step_failure_event_from_exc_info
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.execution.retries import RetryMode, get_retries_config
from dagster._core.executor.in_process import InProcessExecutor
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log import SqlEventLogStorage, SqliteEventLogStorage
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable, SqlEventLogStorageTable
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData, deserialize_value, serialize_value
from dagster_postgres import PostgresEventLogStorage
from dagster_postgres.utils import create_pg_engine, get_token_provider_from_config, pg_url_from_config
from sqlalchemy.engine import Connection

DAGSTER_VERSION = "1.13.27"  # the private APIs above were read in this version
# Events per batch: a ranged step's materializations (one per partition) and a run's planned events
# arrive as one batch each; a whole history is ~800 partitions per asset.
EVENT_BATCH_SIZE = 10_000
POSTGRES_OVERFLOW = 10  # PostgreSQL connections a process may open beyond its kept one, at once
ENGINES_KEPT = 16  # SQLite engines (and connections) kept: the index's and the latest runs' shards
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


def sqlite_engine(conn_string: str) -> sa.Engine:
    """An engine that keeps its connection open between uses (the stock storage opens one per read
    or write: the file, its WAL and schema each time). A connection is used by one thread at a time
    (the storage's lock), by any thread."""
    return create_engine(
        conn_string,
        poolclass=sa.QueuePool,
        pool_size=1,
        max_overflow=4,  # a shard opened again inside its own transaction
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
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


class _SchemaRemembered(SqlEventLogStorage):
    """Most reads first ask whether a secondary index was migrated or a column of the asset-key table
    exists, each on a connection of its own: ~850 of the hand-made build's ~3,200 SQLite connections.
    Migrations only add, so what is present is remembered, as dagster-postgres remembers its
    secondary indexes (a wipe empties the tables, the schema and the migrations' marks stay)."""

    def has_secondary_index(self, name: str) -> bool:
        return self._schema_has("secondary index", name, super().has_secondary_index)

    def has_asset_key_col(self, column_name: str) -> bool:
        return self._schema_has("asset key column", column_name, super().has_asset_key_col)

    def _schema_has(self, kind: str, name: str, ask: Callable[[str], bool]) -> bool:
        present: set[tuple[str, str]] = self.__dict__.setdefault("_present", set())  # asked in __init__
        if (kind, name) in present:
            return True
        if ask(name):
            present.add((kind, name))
            return True
        return False


class BatchedSqliteEventLogStorage(_SchemaRemembered, _CheckPlannedOnce, SqliteEventLogStorage):
    """The SQLite event log under `$DAGSTER_HOME/history/runs`, storing a batch per transaction."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        _check_version()
        self._batch = threading.local()  # the open connections of the batch being stored, per thread
        self._engines: dict[str, sa.Engine] = {}  # per shard, see _shard_connection
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
            with self._shard_connection(shard) as conn:
                yield conn
            return
        if shard not in shared:  # the shard's one transaction, committed when the batch ends
            shared[shard] = self._batch.stack.enter_context(self._shard_connection(shard))
        yield shared[shard]

    @contextmanager
    def _shard_connection(self, shard: str) -> Iterator[Connection]:
        """The stock `_connect` on an engine kept per shard, with its connection: the stock one makes
        an engine and a connection each time. With the schema's answers remembered, an asset's
        latest materialization is read in 1.5 ms instead of 12.7 (bench/bookkeeping.py) and the
        hand-made build's run process spends a third less CPU."""
        with self._db_lock:
            engine = self._engines.pop(shard, None) or sqlite_engine(self.conn_string_for_shard(shard))
            if shard not in self._initialized_dbs:  # as the stock code: once, and again after a wipe
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            self._engines[shard] = engine  # the most recent last
            while len(self._engines) > ENGINES_KEPT:
                self._engines.pop(next(iter(self._engines))).dispose()
            with engine.connect() as conn, conn.begin():
                yield conn

    def wipe(self) -> None:
        with self._db_lock:  # the runs' files are deleted: no connection may stay on them
            while self._engines:
                self._engines.popitem()[1].dispose()
            super().wipe()

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


class BatchedPostgresEventLogStorage(_SchemaRemembered, _CheckPlannedOnce, PostgresEventLogStorage):
    """The PostgreSQL event log, storing a batch in one connection and one transaction."""

    def __init__(self, *args: Any, **kwargs: Any):
        _check_version()
        self._batch = threading.local()  # the connection of the batch being stored, per thread
        super().__init__(*args, **kwargs)
        # dagster-postgres opens a connection per statement outside the webserver (NullPool): 11.6
        # ms per read of an asset's latest materialization, 2.0 on a kept connection. One idle
        # connection per process; threads that read at once (the daemon's) open more, closed when
        # returned. Checked before use: the server may have restarted since.
        self._engine.dispose()
        self._engine = create_pg_engine(
            self.postgres_url,
            self._token_provider,
            isolation_level="AUTOCOMMIT",
            pool_size=1,
            max_overflow=POSTGRES_OVERFLOW,
            pool_pre_ping=True,
        )
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


# ------------------------------------------------------------------ steps side by side, in threads

STEP_THREADS = 2  # steps at once: the machine's two cores, shared by the JVM and this process


def _steps_in_threads(
    job_context: PlanExecutionContext, execution_plan: ExecutionPlan, max_concurrent: int
) -> Iterator[DagsterEvent]:
    """Dagster's `inner_plan_execution_iterator` with up to `max_concurrent` steps running at once,
    each in a thread of this process. The steps share the run's resources (one Spark session) as
    they do in the in-process executor; each step's events reach the plan's bookkeeping here, in
    this thread, in the order the step made them; what may run next, and what a failure skips, is
    decided by Dagster's own `ActiveExecution`, as for its multiprocess executor.

    An interrupt (SIGTERM, SIGINT, a termination from the UI) reaches this thread only: the steps
    still running are recorded as failed by the interrupt and left behind (daemon threads: they
    end with the process; a Delta commit is atomic, so a table keeps its previous version or gets
    the new one whole), and the run stops at once, as it did with the step in this thread."""
    finished = object()
    events: queue.Queue[tuple[str, object]] = queue.Queue()

    def run(step_context: StepExecutionContext) -> None:
        key = step_context.step.key
        try:
            for event in dagster_event_sequence_for_step(step_context):
                events.put((key, event))
        except BaseException as error:  # raised again in the orchestrating thread
            events.put((key, error))
        finally:
            events.put((key, finished))

    compute_logs = job_context.instance.compute_log_manager
    step_keys = [step.key for step in execution_plan.get_steps_to_execute_in_topo_order()]
    with ExitStack() as stack:
        concurrency = stack.enter_context(
            InstanceConcurrencyContext(job_context.instance, job_context.dagster_run)
        )
        active = stack.enter_context(
            ActiveExecution(
                execution_plan,
                retry_mode=job_context.retry_mode,
                max_concurrent=max_concurrent,
                instance_concurrency_context=concurrency,
                step_dependency_config=job_context.step_dependency_config,
            )
        )
        # The process's output goes to the run's compute log, as with the in-process executor.
        log_key = compute_logs.build_log_key_for_run(job_context.run_id, create_compute_log_file_key())
        log_context = stack.enter_context(compute_logs.capture_logs(log_key))
        yield DagsterEvent.capture_logs(job_context, step_keys, log_key, log_context)
        running: dict[str, tuple[StepExecutionContext, list[DagsterEvent]]] = {}
        while not active.is_complete or running:
            if active.check_for_interrupts():
                active.mark_interrupted()
                yield from _abandon(job_context, [context for context, _ in running.values()])
                raise DagsterExecutionInterruptedError()
            for step in active.get_steps_to_execute(limit=max_concurrent - len(running)):
                step_context = job_context.for_step(step, active.get_known_state())
                running[step.key] = (step_context, [])
                threading.Thread(target=run, args=(step_context,), name=step.key, daemon=True).start()
            yield from active.concurrency_event_iterator(job_context)
            if not running:
                active.sleep_til_ready()  # a step waits for a retry or a pool's slot
                continue
            try:
                key, event = events.get(timeout=0.5)  # then look for an interrupt again
            except queue.Empty:
                continue
            if isinstance(event, BaseException):
                raise event
            step_context, produced = running[key]
            if event is finished:
                del running[key]
                active.verify_complete(job_context, key)
                for plan_event in active.plan_events_iterator(job_context):  # skips after a failure
                    produced.append(plan_event)
                    yield plan_event
                yield from _trigger_hook(step_context, produced)
                continue
            assert isinstance(event, DagsterEvent)
            produced.append(event)
            yield event
            active.handle_event(event)


def _abandon(job_context: PlanExecutionContext, steps: list[StepExecutionContext]) -> Iterator[DagsterEvent]:
    """The failure of each step still running when the run was interrupted, as Dagster records an
    interrupted step."""
    yield DagsterEvent.engine_event(
        job_context,
        f"Interrupted: {len(steps)} step(s) still running left behind",
        EngineEventData.interrupted([context.step.key for context in steps]),
    )
    for step_context in steps:
        try:
            raise DagsterExecutionInterruptedError("the run was interrupted while this step ran")
        except DagsterExecutionInterruptedError:
            yield step_failure_event_from_exc_info(
                step_context, sys.exc_info(), error_source=ErrorSource.INTERRUPT
            )


class ThreadedExecutor(InProcessExecutor):
    """The in-process executor, its steps side by side in threads (`_steps_in_threads`)."""

    def __init__(self, retries: RetryMode, max_concurrent: int):
        super().__init__(retries=retries)
        self.max_concurrent = max_concurrent

    def execute(
        self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan
    ) -> Iterator[DagsterEvent]:
        yield from ExecuteRunWithPlanIterable(
            execution_plan=plan_context.execution_plan,
            iterator=lambda job_context, execution_plan: _steps_in_threads(
                job_context, execution_plan, self.max_concurrent
            ),
            execution_context_manager=PlanExecutionContextManager(
                job=plan_context.job,
                retry_mode=plan_context.retry_mode,
                execution_plan=plan_context.execution_plan,
                run_config=plan_context.run_config,
                dagster_run=plan_context.dagster_run,
                instance=plan_context.instance,
                raise_on_error=plan_context.raise_on_error,
                output_capture=plan_context.output_capture,
                step_dependency_config=self.step_dependency_config,
            ),
        )


@dg.executor(
    name="threaded_in_process",
    config_schema={
        "max_concurrent": dg.Field(int, default_value=STEP_THREADS, description="Steps at once."),
        "retries": get_retries_config(),
    },
)
def threaded_in_process_executor(init_context: dg.InitExecutorContext) -> ThreadedExecutor:
    """Every step in the run's process, as with Dagster's in_process executor (one Spark session,
    no process or JVM per step), and up to `max_concurrent` of them at once, in threads."""
    config = init_context.executor_config
    return ThreadedExecutor(RetryMode.from_config(config["retries"]), config["max_concurrent"])  # type: ignore[arg-type]
