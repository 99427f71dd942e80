"""The audit log: one row per asset per pipeline run in PostgreSQL table `audit.run_logs`.

Dagster's event log already knows everything about a run, but only Dagster can read it, and its
retention is Dagster's. The audit log is a plain table anyone with SQL can query ("what ran last
night, how long did it take, how many rows, what failed and why") and that outlives the instance.

One row per asset the run planned to materialize (its ASSET_MATERIALIZATION_PLANNED events), not
one per partition: a backfill of 800 days is one run and one row per asset, with the range
(`partition_start`..`partition_end`) and the number of partitions. Times are those of the step
that produced the asset (a multi-asset step such as `silver_orders`, which writes silver/orders and
quarantine/orders, gives both rows its times). Status:
- `materialized`: the step succeeded and materialized the asset;
- `failed`: the step failed or never finished (the error is the root cause's first line), or the
  run failed before the step could start;
- `skipped`: the step never ran, because an upstream step or a blocking check failed (the error
  names the failed steps) or the run was canceled first.

Row counts come from the materialization metadata the pipeline writes (for a range, every
partition's materialization carries the same range-wide values, so they are taken once):

| column             | metadata key         | written by                                                   |
|--------------------|----------------------|--------------------------------------------------------------|
| `rows_out`         | `dagster/row_count`  | DeltaLakeIOManager.handle_output: rows of the table inside   |
|                    |                      | the materialized window after the write (whole table when    |
|                    |                      | unpartitioned), every lake asset                             |
| `rows_in`          | `rows_read`          | silver/<table>: the bronze rows the batch read; NULL for     |
|                    |                      | bronze, quarantine and gold, which record no input count     |
| `rows_quarantined` | `rows_quarantined`   | silver/<table> and quarantine/<table>: the batch's rows that |
|                    |                      | broke a rule; NULL elsewhere                                 |

The stream lane's runs (bronze/<stream>, quarantine/<stream>) have no partitions: their rows say
what they read from Kafka instead, `rows_in` the records read (`records_read`) and `offsets_start`,
`offsets_end` the offsets ({topic: {partition: offset}}, JSON) before and after the run.

Where it goes: MEDALLION_AUDIT_URL, else the embedded server under $MEDALLION_HOME (schema `audit`),
never the source system (MEDALLION_SOURCE_URL), which is someone's production database we only read.
`medallion build` records each of its runs as it finishes; the `audit_finished_runs` sensor records
every finished run of the instance (every code location, in-process builds included). Recording is
an upsert on (run_id, asset), so a run recorded by both leaves one row per asset.
"""

# No `from __future__ import annotations`: Dagster inspects the sensor's context annotation.
import datetime as dt
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import astuple, dataclass, field, fields
from typing import Any

import adbc_driver_postgresql.dbapi as adbc_dbapi
import dagster as dg
import pyarrow as pa

from medallion_assets.dagster_internals import PlannedPartitions, run_events_in_short
from medallion_assets.progress import root_cause
from medallion_assets.resources.postgres import AuditDatabase, SourceUnavailableError, connect, redact
from medallion_assets.specs import UNDECLARED_COLUMNS

SCHEMA = "audit"
TABLE = f"{SCHEMA}.run_logs"
MATERIALIZED, FAILED, SKIPPED = "materialized", "failed", "skipped"
_STATUSES = (MATERIALIZED, FAILED, SKIPPED)
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
_RUN_ENDED = dict(zip(FINISHED, ["succeeded", "failed", "was canceled"], strict=True))
MAX_ERROR_CHARS = 500


# Timestamps with a zone: they land in timestamptz.
_UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")


def _column(sql_type: str, arrow_type: pa.DataType) -> dict[str, Any]:
    """A column of the audit table: its PostgreSQL type and the Arrow type its values are bound with."""
    return {"sql": sql_type, "arrow": arrow_type}


@dataclass(frozen=True)
class AuditRow:
    """One row of audit.run_logs; this declaration gives the table's DDL and the Arrow binding schema."""

    run_id: str = field(metadata=_column("text NOT NULL", pa.string()))
    job_name: str = field(metadata=_column("text NOT NULL", pa.string()))
    asset: str = field(metadata=_column("text NOT NULL", pa.string()))
    partition_start: str | None = field(metadata=_column("text", pa.string()))
    partition_end: str | None = field(metadata=_column("text", pa.string()))
    partitions: int | None = field(metadata=_column("integer", pa.int32()))
    started_at: dt.datetime | None = field(metadata=_column("timestamptz", _UTC_TIMESTAMP))
    ended_at: dt.datetime | None = field(metadata=_column("timestamptz", _UTC_TIMESTAMP))
    duration_seconds: float | None = field(metadata=_column("double precision", pa.float64()))
    rows_in: int | None = field(metadata=_column("bigint", pa.int64()))
    rows_out: int | None = field(metadata=_column("bigint", pa.int64()))
    rows_quarantined: int | None = field(metadata=_column("bigint", pa.int64()))
    status: str = field(metadata=_column(f"text NOT NULL CHECK (status IN {_STATUSES})", pa.string()))
    error: str | None = field(metadata=_column("text", pa.string()))
    # Source columns bronze landed that its spec does not declare (schema evolution), comma-separated.
    undeclared_columns: str | None = field(metadata=_column("text", pa.string()))
    # The stream lane's runs: the Kafka offsets read from and up to, {topic: {partition: offset}}.
    offsets_start: str | None = field(metadata=_column("text", pa.string()))
    offsets_end: str | None = field(metadata=_column("text", pa.string()))


_ARROW_SCHEMA = pa.schema([(f.name, f.metadata["arrow"]) for f in fields(AuditRow)])
_COLUMN_DDL = ",\n    ".join(f"{f.name} {f.metadata['sql']}" for f in fields(AuditRow))
DDL = [
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    {_COLUMN_DDL},
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, asset)
)""",
    f"CREATE INDEX IF NOT EXISTS run_logs_asset_started ON {TABLE} (asset, started_at)",
    # Columns added since the table was first created by an earlier version.
    f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS undeclared_columns text",
    f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS offsets_start text",
    f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS offsets_end text",
]
# Two recorders (a build and the sensor) may create the table at once; concurrent CREATE ... IF NOT
# EXISTS can still collide in the catalog, so creation is serialised on this advisory lock.
_DDL_LOCK = 7_4_2026


class AuditUnavailableError(RuntimeError):
    """The audit database cannot be reached or refused the rows; the message never has a password."""


_COLUMNS = ", ".join(_ARROW_SCHEMA.names)
_PARAMS = ", ".join(f"${i}" for i in range(1, len(_ARROW_SCHEMA) + 1))
_UPSERT = (
    f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES ({_PARAMS}) ON CONFLICT (run_id, asset) DO UPDATE SET "
    + ", ".join(f"{n} = EXCLUDED.{n}" for n in _ARROW_SCHEMA.names if n not in ("run_id", "asset"))
    + ", recorded_at = now()"
)

_EVENTS = {
    dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
    dg.DagsterEventType.STEP_START,
    dg.DagsterEventType.STEP_SUCCESS,
    dg.DagsterEventType.STEP_FAILURE,
    dg.DagsterEventType.ASSET_MATERIALIZATION,
    dg.DagsterEventType.RUN_FAILURE,
}


def _utc(timestamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC)


def _first_line(text: str) -> str:
    text = text.strip()
    # Redacted before it is cut: a cut could separate a URL's password from the '@' that marks it.
    return redact(text.splitlines()[0])[:MAX_ERROR_CHARS] if text else ""


def _text(metadata: dict, key: str) -> str | None:
    value = metadata.get(key)
    return None if value is None else str(value.value)


def _int(metadata: dict, key: str) -> int | None:
    value = metadata.get(key)
    return None if value is None else int(value.value)


@dataclass
class _Planned:
    step: str | None
    partitions: set[str]  # keys read from events
    counted: PlannedPartitions | None = None  # or counted in the event log's table

    def span(self) -> tuple[int, str | None, str | None]:
        """How many partitions, the first and the last key (daily keys sort by date)."""
        if self.counted is not None:
            return self.counted.count, self.counted.first, self.counted.last
        keys = sorted(self.partitions)
        return len(keys), keys[0] if keys else None, keys[-1] if keys else None


def run_events(instance: dg.DagsterInstance, run_id: str, page: int = 1000) -> Iterator[dg.EventLogEntry]:
    """The run's events of the kinds the audit reads, a page at a time: a backfill's run has
    thousands (one per partition and asset), and read at once they cost the run process ~200 MiB."""
    cursor = None
    while True:
        found = instance.get_records_for_run(run_id, cursor=cursor, of_type=_EVENTS, limit=page)
        yield from (record.event_log_entry for record in found.records)
        if not found.has_more:
            return
        cursor = found.cursor


def audit_rows(instance: dg.DagsterInstance, run_id: str, count_in_sql: bool = True) -> list[AuditRow]:
    """One row per asset the finished run planned to materialize, from the run's event log (with
    `count_in_sql=False`, from every one of its events read back, as the stock API gives them)."""
    record = next(iter(instance.get_run_records(dg.RunsFilter(run_ids=[run_id]), limit=1)), None)
    if record is None:
        raise ValueError(f"no run {run_id} in the Dagster instance")
    run = record.dagster_run
    if run.status not in FINISHED:
        raise ValueError(f"run {run_id} has not finished ({run.status.value})")

    planned: dict[str, _Planned] = {}
    # The per-partition events counted in SQL where the event log is a SQL one (every instance of
    # ours): read one by one they were most of the audit's time.
    in_short = run_events_in_short(instance, run_id, _EVENTS) if count_in_sql else None
    if in_short is None:
        events: Iterable[dg.EventLogEntry] = run_events(instance, run_id)
    else:
        counted, events = in_short
        planned = {asset: _Planned(plan.step, set(), plan) for asset, plan in counted.items()}
    step_started: dict[str, float] = {}
    step_ended: dict[str, tuple[float, str | None]] = {}  # step -> (time, error or None on success)
    metadata: dict[str, dict] = {}  # asset -> its (last) materialization's metadata
    run_failure: str | None = None
    for entry in events:
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type
        if kind == dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED:
            asset = planned.setdefault(event.asset_key.to_user_string(), _Planned(event.step_key, set()))
            # One event per partition, or one per asset with the run's whole subset (depends on storage).
            if event.partition is not None:
                asset.partitions.add(event.partition)
            elif event.partitions_subset is not None:
                asset.partitions.update(event.partitions_subset.get_partition_keys())
        elif kind == dg.DagsterEventType.STEP_START:
            step_started.setdefault(event.step_key, entry.timestamp)  # a retry keeps the first start
        elif kind == dg.DagsterEventType.STEP_SUCCESS:
            step_ended[event.step_key] = (entry.timestamp, None)
        elif kind == dg.DagsterEventType.STEP_FAILURE:
            data = event.event_specific_data
            cause = root_cause(data.error) if data is not None and data.error is not None else ""
            step_ended[event.step_key] = (entry.timestamp, _first_line(cause or event.message or "failed"))
        elif kind == dg.DagsterEventType.ASSET_MATERIALIZATION:
            # A range run reports one materialization per partition, all with the range's metadata.
            materialization = event.step_materialization_data.materialization
            metadata[materialization.asset_key.to_user_string()] = dict(materialization.metadata)
        elif kind == dg.DagsterEventType.RUN_FAILURE:
            data = event.event_specific_data
            error = getattr(data, "error", None)
            run_failure = _first_line((root_cause(error) if error else "") or event.message or "")

    ended_how = _RUN_ENDED.get(run.status, run.status.value.lower())
    failed_steps = sorted(step for step, (_, error) in step_ended.items() if error is not None)
    tags = run.tags
    rows = []
    for asset, plan in sorted(planned.items()):
        count, first, last = plan.span()
        start, end = _partition_bounds(count, first, last, tags)
        started = step_started.get(plan.step)
        ended, error = step_ended.get(plan.step, (None, None))
        if started is not None and ended is None:  # still running when the run ended (canceled)
            ended = record.end_time
            error = f"the step did not finish: the run {ended_how}"
        if started is None:
            status = FAILED if (run_failure and not failed_steps) else SKIPPED
            if failed_steps:
                error = _first_line(f"not executed: step(s) {', '.join(failed_steps)} failed")
            elif run_failure:
                error = run_failure
            else:
                error = f"not executed: the run {ended_how}"
        elif error is not None:
            status = FAILED
        elif asset in metadata:
            status = MATERIALIZED
        else:
            status, error = SKIPPED, "the step succeeded without materializing it"
        values = metadata.get(asset, {})
        rows.append(
            AuditRow(
                run_id=run_id,
                job_name=run.job_name,
                asset=asset,
                partition_start=start,
                partition_end=end,
                partitions=count or None,
                started_at=_utc(started) if started is not None else None,
                ended_at=_utc(ended) if ended is not None else None,
                duration_seconds=round(ended - started, 3)
                if started is not None and ended is not None
                else None,
                rows_in=_int(values, "rows_read") if "rows_read" in values else _int(values, "records_read"),
                rows_out=_int(values, "dagster/row_count"),
                rows_quarantined=_int(values, "rows_quarantined"),
                status=status,
                error=error,
                undeclared_columns=_text(values, UNDECLARED_COLUMNS),
                offsets_start=_json(values, "offsets_start"),
                offsets_end=_json(values, "offsets_end"),
            )
        )
    return rows


def _json(metadata: dict, key: str) -> str | None:
    value = metadata.get(key)
    return json.dumps(value.value, sort_keys=True) if isinstance(value, dg.JsonMetadataValue) else None


def _partition_bounds(
    count: int, first: str | None, last: str | None, tags: dict[str, str]
) -> tuple[str | None, str | None]:
    """The run's partition range as its tags name it (a range or one key); else the planned keys'."""
    if not count:
        return None, None
    if "dagster/asset_partition_range_start" in tags:
        return tags["dagster/asset_partition_range_start"], tags.get("dagster/asset_partition_range_end")
    if "dagster/partition" in tags:
        return tags["dagster/partition"], tags["dagster/partition"]
    return first, last


def _ensure_table(cur: adbc_dbapi.Cursor) -> None:
    cur.execute(f"SELECT pg_advisory_xact_lock({_DDL_LOCK})")
    for statement in DDL:
        cur.execute(statement)


def write_rows(rows: Iterable[AuditRow], url: str) -> int:
    """Create the table if missing and upsert the rows on (run_id, asset), in one transaction."""
    names = _ARROW_SCHEMA.names
    batch = pa.Table.from_pylist(
        [dict(zip(names, astuple(r), strict=True)) for r in rows], schema=_ARROW_SCHEMA
    )
    where = redact(url)
    try:
        with connect(url) as conn, conn.cursor() as cur:
            _ensure_table(cur)
            if batch.num_rows:
                cur.executemany(_UPSERT, batch)
    except SourceUnavailableError as exc:
        # connect() words it for the source; the reason after the URL is what matters here.
        reason = str(exc).partition(f"{where}: ")[2] or str(exc)
        raise AuditUnavailableError(f"cannot connect to the audit database {where}: {reason}") from None
    except adbc_dbapi.Error as exc:
        raise AuditUnavailableError(
            f"the audit database {where} refused the audit rows: {_first_line(str(exc))}"
        ) from None
    return batch.num_rows


def record_run(instance: dg.DagsterInstance, run_id: str, url: str) -> int:
    """Record a finished run in audit.run_logs (created on first use); the number of rows written."""
    return write_rows(audit_rows(instance, run_id), url)


# ------------------------------------------------------------------------------------------ sensor

FIRST_LOOK_BACK = dt.timedelta(hours=24)  # the first tick audits the last day, not all history
# A run's update time is taken before its status is committed: a run finishing just now could
# still appear with an earlier time than one already seen, so the sensor leaves the last seconds.
SETTLE = dt.timedelta(seconds=5)
MAX_RUNS_PER_TICK = 25
TICK_BUDGET_SECONDS = 40.0  # well inside the daemon's 60 s sensor timeout; the rest waits a tick


def _parse_cursor(cursor: str | None) -> tuple[dt.datetime, str] | None:
    if not cursor:
        return None
    value = json.loads(cursor)
    return dt.datetime.fromisoformat(value["updated_at"]), value["run_id"]


def _format_cursor(updated_at: dt.datetime, run_id: str) -> str:
    return json.dumps({"updated_at": updated_at.isoformat(), "run_id": run_id})


@dg.sensor(
    name="audit_finished_runs",
    description="Records every finished run, of every code location, in the audit table audit.run_logs.",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
def audit_finished_runs(context: dg.SensorEvaluationContext, audit_db: AuditDatabase) -> dg.SensorResult:
    now = dt.datetime.now(dt.UTC)
    position = _parse_cursor(context.cursor)
    # updated_after is strict: start a microsecond early so runs sharing the cursor's time are seen,
    # then drop those already recorded (same time, run id not after the cursor's).
    since = position[0] - dt.timedelta(microseconds=1) if position else now - FIRST_LOOK_BACK
    records = context.instance.get_run_records(
        dg.RunsFilter(statuses=FINISHED, updated_after=since, updated_before=now - SETTLE),
        order_by="update_timestamp",
        ascending=True,
        limit=MAX_RUNS_PER_TICK,
    )
    pending = sorted(
        (r for r in records if position is None or (r.update_timestamp, r.dagster_run.run_id) > position),
        key=lambda r: (r.update_timestamp, r.dagster_run.run_id),
    )
    if not pending:
        return dg.SensorResult(skip_reason="no finished run to record", cursor=context.cursor)
    # Only now: the embedded server is started by the first call, not on every idle tick.
    url = audit_db.url()
    cursor, recorded, unreadable, started = context.cursor, 0, 0, time.monotonic()
    for record in pending:
        if time.monotonic() - started > TICK_BUDGET_SECONDS:
            break
        try:
            record_run(context.instance, record.dagster_run.run_id, url)
        except AuditUnavailableError as exc:
            # The cursor stays before this run: the next tick tries it again, no run is lost.
            return dg.SensorResult(skip_reason=f"audit not recorded, will retry: {exc}", cursor=cursor)
        except Exception as exc:  # a run whose events cannot be read must not block every later run
            context.log.error(f"run {record.dagster_run.run_id} not audited: {redact(str(exc))[:500]}")
            unreadable += 1
        else:
            recorded += 1
        cursor = _format_cursor(record.update_timestamp, record.dagster_run.run_id)
    skipped = f", {unreadable} unreadable (see the tick's log)" if unreadable else ""
    return dg.SensorResult(skip_reason=f"recorded {recorded} run(s) in {TABLE}{skipped}", cursor=cursor)


AUDIT_SENSORS = [audit_finished_runs]
