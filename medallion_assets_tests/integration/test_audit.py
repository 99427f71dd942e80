"""The audit log: real runs of the pipeline land in PostgreSQL (audit.run_logs) as one row per asset
with its partitions, times, row counts, status and error; recording twice changes nothing; the
table is created on first use; the sensor records finished runs once and loses none while the
database is down. Everything runs against the session's real PostgreSQL, in a database of its own."""

import datetime as dt
import time
from collections.abc import Iterator

import dagster as dg
import pytest
from deltalake import DeltaTable

from medallion_assets.automation.audit import (
    SETTLE,
    AuditRow,
    audit_finished_runs,
    audit_rows,
    record_run,
    write_rows,
)
from medallion_assets.build import build
from medallion_assets.definitions import code_location
from medallion_assets.resources.postgres import AuditDatabase, connect
from medallion_assets_tests.helpers import HandmadeBuild, scratch_database

AUDIT_DATABASE = "audit_test"
DOWN = "postgresql://auditor:audit-password@127.0.0.1:1/audit"  # nothing listens on port 1
pytestmark = pytest.mark.xdist_group("handmade")  # `handmade` asks for the session's handmade_build


@pytest.fixture(scope="module")
def audit_url(pg_url: str) -> Iterator[str]:
    """A database of its own on the session's server (other tests' data stays untouched), also set
    as MEDALLION_AUDIT_URL: builds in this module audit there, not into an embedded server of their
    own under their temporary MEDALLION_HOME."""
    url = scratch_database(pg_url, AUDIT_DATABASE, fresh=False)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MEDALLION_AUDIT_URL", url)
        yield url


@pytest.fixture(scope="module")
def handmade(audit_url: str, request: pytest.FixtureRequest) -> HandmadeBuild:
    # Asked for under MEDALLION_AUDIT_URL, so that if this module builds the shop, its builds audit here.
    return request.getfixturevalue("handmade_build")


def query(url: str, sql: str, *params: object) -> list[dict]:
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute(sql, params or None)
        return cur.fetch_arrow_table().to_pylist()


def logged(url: str, run_ids: list[str]) -> dict[tuple[str, str], dict]:
    """The audit rows of these runs, by (run id, asset)."""
    rows = []
    for run_id in run_ids:
        rows += query(url, "SELECT * FROM audit.run_logs WHERE run_id = $1", run_id)
    return {(row["run_id"], row["asset"]): row for row in rows}


def metadata(instance: dg.DagsterInstance, run_id: str, asset: str) -> dict:
    """The metadata of the asset's (last) materialization in the run."""
    found = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = entry.dagster_event.step_materialization_data.materialization
        if materialization.asset_key.to_user_string() == asset:
            found = materialization.metadata
    assert found, f"{asset} was not materialized in run {run_id}"
    return found


def test_the_table_is_created_on_first_use(handmade: HandmadeBuild, audit_url: str) -> None:
    with connect(audit_url) as conn, conn.cursor() as cur:
        cur.execute("DROP SCHEMA IF EXISTS audit CASCADE")
    run_id = handmade.summary.runs[0]
    written = record_run(handmade.instance, run_id, audit_url)

    assert written == len(audit_rows(handmade.instance, run_id)) > 0
    assert len(logged(audit_url, [run_id])) == written
    columns = query(
        audit_url,
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = 'audit' AND table_name = 'run_logs' ORDER BY ordinal_position",
    )
    assert [c["column_name"] for c in columns] == [*AuditRow.__dataclass_fields__, "recorded_at"]
    key = query(
        audit_url,
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a"
        " ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
        " WHERE i.indrelid = 'audit.run_logs'::regclass AND i.indisprimary ORDER BY a.attname",
    )
    assert [k["attname"] for k in key] == ["asset", "run_id"]


def test_a_successful_build_is_recorded_one_row_per_asset(handmade: HandmadeBuild, audit_url: str) -> None:
    instance, runs = handmade.instance, handmade.summary.runs
    for run_id in runs:
        record_run(instance, run_id, audit_url)
    rows = logged(audit_url, runs)
    by_asset = {asset: row for (_, asset), row in rows.items()}
    assert len(by_asset) == len(rows)  # each asset is built by exactly one run of the build
    built = {key for key, outcome in handmade.summary.assets.items() if outcome.partitions}
    assert set(by_asset) == built
    assert {row["status"] for row in rows.values()} == {"materialized"}
    assert all(row["error"] is None for row in rows.values())

    # bronze: the run's whole range in one row, rows out = the table's rows (one build of the history)
    bronze = by_asset["bronze/orders"]
    run = instance.get_run_by_id(bronze["run_id"])
    first, last = (
        run.tags["dagster/asset_partition_range_start"],
        run.tags["dagster/asset_partition_range_end"],
    )
    assert (bronze["partition_start"], bronze["partition_end"]) == (first, last)
    assert bronze["partitions"] == (dt.date.fromisoformat(last) - dt.date.fromisoformat(first)).days + 1 > 1
    assert (
        bronze["rows_out"] == metadata(instance, bronze["run_id"], "bronze/orders")["dagster/row_count"].value
    )
    assert (
        bronze["rows_out"]
        == DeltaTable(str(handmade.lake / "bronze" / "orders")).to_pyarrow_dataset().count_rows()
    )
    assert bronze["rows_in"] is None and bronze["rows_quarantined"] is None
    assert bronze["started_at"] <= bronze["ended_at"]
    assert bronze["duration_seconds"] > 0
    assert bronze["duration_seconds"] == pytest.approx(
        (bronze["ended_at"] - bronze["started_at"]).total_seconds(), abs=0.002
    )
    assert bronze["job_name"] == run.job_name

    # silver: it read every bronze row of the same range; its quarantine shares the step and its times
    silver, quarantine = by_asset["silver/orders"], by_asset["quarantine/orders"]
    accounting = metadata(instance, silver["run_id"], "silver/orders")
    assert silver["rows_in"] == accounting["rows_read"].value == bronze["rows_out"]
    assert silver["rows_quarantined"] == accounting["rows_quarantined"].value
    assert silver["rows_out"] == accounting["dagster/row_count"].value
    assert silver["rows_in"] >= silver["rows_out"] + silver["rows_quarantined"]  # the rest was superseded
    assert quarantine["rows_quarantined"] == silver["rows_quarantined"] == quarantine["rows_out"]
    assert quarantine["rows_in"] is None
    assert (quarantine["started_at"], quarantine["ended_at"]) == (silver["started_at"], silver["ended_at"])
    assert (silver["partition_start"], silver["partition_end"]) == (first, last)

    # gold, unpartitioned: no partitions, the whole table's rows
    dim = by_asset["gold/dim_customer"]
    assert dim["partition_start"] is None and dim["partition_end"] is None and dim["partitions"] is None
    assert (
        dim["rows_out"]
        == DeltaTable(str(handmade.lake / "gold" / "dim_customer")).to_pyarrow_dataset().count_rows()
    )

    # recorded again (by the CLI and by the sensor): still one row per asset, refreshed
    record_run(instance, bronze["run_id"], audit_url)
    again = logged(audit_url, runs)
    assert again.keys() == rows.keys()
    key = (bronze["run_id"], "bronze/orders")
    assert again[key]["recorded_at"] > rows[key]["recorded_at"]
    assert {k: v for k, v in again[key].items() if k != "recorded_at"} == {
        k: v for k, v in rows[key].items() if k != "recorded_at"
    }


def test_the_rows_from_counted_events_equal_the_rows_from_every_event(
    handmade: HandmadeBuild, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    # The audit counts a run's per-partition events in the event log's table (dagster_internals):
    # the rows are those of reading every event back, for ranged, unpartitioned and failed runs.
    failed_instance, failed_run = failing_build(monkeypatch, tmp_path)
    runs = [(handmade.instance, run_id) for run_id in handmade.summary.runs] + [(failed_instance, failed_run)]
    partitions = []
    for instance, run_id in runs:
        counted = audit_rows(instance, run_id)
        assert counted == audit_rows(instance, run_id, count_in_sql=False) and counted, run_id
        partitions += [row.partitions for row in counted]
    assert None in partitions and 1 in partitions and max(p or 0 for p in partitions) > 1  # every kind


def failing_build(
    monkeypatch: pytest.MonkeyPatch, tmp_path, echo=lambda _: None
) -> tuple[dg.DagsterInstance, str]:
    """A real build whose bronze fails (its source database is down) before silver can run."""
    monkeypatch.setenv("MEDALLION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDALLION_SOURCE_URL", "postgresql://etl:db-password@127.0.0.1:1/olist")
    instance = dg.DagsterInstance.ephemeral()
    day = dt.date(2017, 1, 1)
    selection = "key:bronze/orders or key:silver/orders or key:quarantine/orders"
    summary = build(code_location(), selection, day, day, echo=echo, instance=instance)
    assert summary.failed_steps == ["bronze__orders"] and len(summary.runs) == 1
    return instance, summary.runs[0]


def test_a_failed_build_is_recorded_with_its_error_and_what_it_skipped(
    audit_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    _, run_id = failing_build(monkeypatch, tmp_path)
    rows = logged(audit_url, [run_id])  # recorded by the build itself, as `medallion build` does
    assert {asset for _, asset in rows} == {"bronze/orders", "silver/orders", "quarantine/orders"}

    bronze = rows[(run_id, "bronze/orders")]
    assert bronze["status"] == "failed"
    assert "cannot connect to the source database" in bronze["error"] and "127.0.0.1" in bronze["error"]
    assert "\n" not in bronze["error"]
    assert (bronze["partition_start"], bronze["partition_end"], bronze["partitions"]) == (
        "2017-01-01",
        "2017-01-01",
        1,
    )
    assert bronze["started_at"] <= bronze["ended_at"] and bronze["rows_out"] is None
    for asset in ("silver/orders", "quarantine/orders"):
        skipped = rows[(run_id, asset)]
        assert skipped["status"] == "skipped"
        assert skipped["error"] == "not executed: step(s) bronze__orders failed"
        assert skipped["started_at"] is None and skipped["duration_seconds"] is None
    everything = query(audit_url, "SELECT string_agg(t::text, ' ') AS s FROM audit.run_logs t")[0]["s"]
    assert "db-password" not in everything


def test_a_build_goes_on_when_the_audit_database_is_down(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("MEDALLION_AUDIT_URL", DOWN)
    lines: list[str] = []
    _, run_id = failing_build(monkeypatch, tmp_path, echo=lines.append)  # returns: no audit error raised
    warning = next(line for line in lines if line.startswith(f"warning: run {run_id} not in the audit log"))
    assert "cannot connect to the audit database postgresql://auditor:***@127.0.0.1:1/audit" in warning
    assert "audit-password" not in "\n".join(lines)


def test_the_sensor_records_finished_runs_once_and_loses_none_while_the_database_is_down(
    handmade: HandmadeBuild, audit_url: str
) -> None:
    instance, runs = handmade.instance, handmade.summary.runs
    write_rows([], audit_url)  # creates the table if this test runs alone
    for run_id in runs:
        query(audit_url, "DELETE FROM audit.run_logs WHERE run_id = $1 RETURNING run_id", run_id)
    # The sensor leaves runs of the last seconds for the next tick (their update may not be committed).
    last_update = max(r.update_timestamp for r in instance.get_run_records(dg.RunsFilter(run_ids=runs)))
    time.sleep(max(0.0, (last_update + SETTLE - dt.datetime.now(dt.UTC)).total_seconds() + 0.1))

    # The database down: nothing recorded, the cursor stays where it was, and no password is shown.
    def tick(url: str, cursor: str | None) -> dg.SensorResult:
        resources = {"audit_db": AuditDatabase(database_url=url)}
        return audit_finished_runs.evaluate_tick(
            dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
        )

    down = tick(DOWN, None)
    assert down.cursor is None and not down.run_requests
    assert "cannot connect to the audit database postgresql://auditor:***@" in down.skip_message
    assert "audit-password" not in down.skip_message
    assert logged(audit_url, runs) == {}

    # Back up: the first tick (no cursor) records the runs of the last day, and moves the cursor.
    first = tick(audit_url, None)
    assert first.cursor is not None and first.skip_message.startswith("recorded ")
    rows = logged(audit_url, runs)
    assert {run_id for run_id, _ in rows} == set(runs)
    expected = sum(len(audit_rows(instance, run_id)) for run_id in runs)
    assert len(rows) == expected

    # The next tick finds nothing new: the cursor stays, no row is added or rewritten.
    second = tick(audit_url, first.cursor)
    assert second.cursor == first.cursor
    assert second.skip_message == "no finished run to record"
    assert logged(audit_url, runs) == rows
