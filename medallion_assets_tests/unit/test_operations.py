"""Operations a person on call expects (issue 20, part 4), the parts without a service: freshness
policies on gold and the warehouse, Dagster's column-schema change checks on every table, retries of
transient failures in the automation's runs, and the alert texts and which evaluations alert. (The
sensors against an on-disk instance and a real webhook: integration/test_operations_alerts.py.)"""

import datetime as dt
from typing import TYPE_CHECKING

import dagster as dg
import pytest

from medallion_assets.automation import alerts
from medallion_assets.automation.alerts import (
    ALERT_SENSORS,
    check_alert_text,
    error_check_failures,
    stale_alert_text,
    turned_stale,
)
from medallion_assets.automation.freshness import DAILY_REFRESH, FRESHNESS_BY_GROUP
from medallion_assets.automation.propagation import (
    GOLD_JOB,
    next_run_request,
    retry_tags_of,
    silver_request,
    window_tags,
)
from medallion_assets.automation.source_changes import bronze_run_request
from medallion_assets.definitions import build_definitions
from medallion_assets.interface.assets import REPORT_KEY
from medallion_assets.resources import retries
from medallion_assets.resources.retries import (
    RETRY_TAGS,
    backoff_seconds,
    is_transient,
    retry_when_unreachable,
)
from medallion_assets.sources.olist_db import NewChanges
from medallion_assets.specs.interface import WAREHOUSE_VIEWS
from medallion_assets.tags import (
    PARTITION_RANGE_END_TAG,
    PARTITION_RANGE_START_TAG,
    TRANSIENT_RETRIES_TAG,
)

if TYPE_CHECKING:  # not exported at dagster's top level
    from dagster._core.definitions.assets.graph.asset_graph import AssetGraph

UI = "http://dagster.example:3000/"


@pytest.fixture(scope="module")
def graph() -> "AssetGraph":
    return build_definitions().resolve_asset_graph()


# ------------------------------------------------------------------------------------ freshness


def test_freshness_policies_on_exactly_gold_the_warehouse_and_the_report(graph: "AssetGraph") -> None:
    with_policy = {key for key in graph.materializable_asset_keys if graph.get(key).freshness_policy}
    layers = ("gold", "warehouse", "interface")
    expected = {key for key in graph.materializable_asset_keys if key.path[0] in layers}
    assert with_policy == expected and len(expected) == 35
    assert set(FRESHNESS_BY_GROUP) == set(layers)
    policy = graph.get(dg.AssetKey(["gold", "fact_orders"])).freshness_policy
    assert policy == DAILY_REFRESH.policy()
    assert isinstance(policy, dg.FreshnessPolicy)


def test_the_deadline_follows_the_daily_catch_up() -> None:
    """The window opens when the catch-up starts (00:30) and closes at 02:00: the refresh it
    propagates must land in between, every day."""
    catch_up = next(s for s in build_definitions().schedules if s.name == "daily_catch_up")
    assert catch_up.cron_schedule == "30 0 * * *" and catch_up.execution_timezone in (None, "UTC")
    assert DAILY_REFRESH.cron == "0 2 * * *" and DAILY_REFRESH.timezone == "UTC"
    opens = dt.datetime(2024, 1, 2, 2, 0) - DAILY_REFRESH.window
    assert (opens.hour, opens.minute) == (0, 30)


# --------------------------------------------------------------------- column-schema change checks


def test_schema_change_checks_on_every_lake_and_warehouse_table(graph: "AssetGraph") -> None:
    checked = {k.asset_key for k in graph.asset_check_keys if k.name == "column_schema_change"}
    views = {dg.AssetKey(view.asset_path) for view in WAREHOUSE_VIEWS.values()}
    assert checked == set(graph.materializable_asset_keys) - views - {REPORT_KEY}  # tables only
    assert {"bronze", "silver", "quarantine", "gold", "warehouse"} == {k.path[0] for k in checked}
    assert dg.AssetKey(["bronze", "clickstream"]) in checked  # the stream lane records its schema too
    spec = graph.get_check_spec(
        dg.AssetCheckKey(dg.AssetKey(["gold", "fact_orders"]), "column_schema_change")
    )
    assert not spec.blocking  # a signal (WARN): breaking changes fail the blocking schema/contract


def test_a_schema_change_warns_in_a_run_of_one_partition_and_in_a_ranged_run() -> None:
    """The check compares the latest materialization with the latest one before its run: a ranged
    run records one per partition, all alike, so comparing the two latest would never see its change."""
    daily = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-10")
    widened = {"2024-01-02": "gift_wrap", "2024-01-04": "coupon"}  # from this day on

    @dg.asset(partitions_def=daily, key=["bronze", "t"], backfill_policy=dg.BackfillPolicy.single_run())
    def table(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        last = context.partition_key_range.end
        columns = [dg.TableColumn("a", "bigint")]
        columns += [dg.TableColumn(name, "boolean") for day, name in widened.items() if last >= day]
        return dg.MaterializeResult(metadata={"dagster/column_schema": dg.TableSchema(columns=columns)})

    from medallion_assets.quality.checks import column_schema_change_checks

    checks = column_schema_change_checks({table.key})
    runs = [("2024-01-01", "2024-01-01"), ("2024-01-02", "2024-01-02"), ("2024-01-03", "2024-01-05")]
    runs += [("2024-01-03", "2024-01-05")]  # the same range again: nothing changed
    with dg.DagsterInstance.ephemeral() as instance:
        outcomes = []
        for first, last in runs:
            tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
            result = dg.materialize([table, *checks], instance=instance, tags=tags)
            (evaluation,) = result.get_asset_check_evaluations()
            outcomes.append((evaluation.passed, evaluation.severity, evaluation.description))
    assert [passed for passed, _, _ in outcomes] == [True, False, False, True]
    assert outcomes[1][1] == dg.AssetCheckSeverity.WARN and "Added columns: gift_wrap" in outcomes[1][2]
    assert "Added columns: coupon" in outcomes[2][2]  # three partitions in one run, all alike


def test_a_schema_change_reported_outside_a_run_is_compared_with_the_one_before() -> None:
    """A materialization reported by hand (the UI's "Report materialization") has no run record:
    the check compares it with the materialization before it, not "no materialization yet"."""

    def schema(*names: str) -> dict[str, dg.TableSchema]:
        return {"dagster/column_schema": dg.TableSchema(columns=[dg.TableColumn(n, "bigint") for n in names])}

    @dg.asset(key=["bronze", "t"])
    def table() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata=schema("a"))

    from medallion_assets.quality.checks import column_schema_change_checks

    checks = column_schema_change_checks({table.key})
    with dg.DagsterInstance.ephemeral() as instance:
        assert dg.materialize([table], instance=instance).success
        instance.report_runless_asset_event(dg.AssetMaterialization(table.key, metadata=schema("a", "b")))
        result = dg.materialize(
            [table, *checks], instance=instance, selection=dg.AssetSelection.all_asset_checks()
        )
        (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.description == "Added columns: b"


# ------------------------------------------------------------------------------------- retries


def test_only_unreachable_is_transient() -> None:
    assert is_transient(RuntimeError("cannot connect to the source database host:5432: Connection refused"))
    assert is_transient(RuntimeError("cannot reach the Delta table at s3://lake/bronze/orders: timed out"))
    assert is_transient(
        RuntimeError("cannot write the Delta table at s3://x: Unable to execute HTTP request")
    )
    assert is_transient(ConnectionRefusedError(111, "Connection refused"))
    assert not is_transient(RuntimeError("cannot reach the Delta table at s3://lake/x: 403 Forbidden"))
    assert not is_transient(RuntimeError("row(s) have order_date outside the partition window"))
    assert not is_transient(RuntimeError("bronze/events has no Delta table at /x yet: materialize it first"))
    assert not is_transient(ValueError("timed out"))  # not a resource's error
    assert [backoff_seconds(n) for n in range(3)] == [30.0, 60.0, 120.0]


def test_a_transient_error_is_retried_only_in_the_automations_runs() -> None:
    down = RuntimeError("cannot connect to the source database db:5432: Connection refused")
    with pytest.raises(dg.RetryRequested) as request, retry_when_unreachable(RETRY_TAGS, previous_attempts=1):
        raise down
    assert request.value.max_retries == 3 and request.value.seconds_to_wait == 60.0
    assert request.value.__cause__ is down
    # A person's run, `medallion build`: fails at once.
    with pytest.raises(RuntimeError), retry_when_unreachable({}, previous_attempts=0):
        raise down
    with pytest.raises(RuntimeError), retry_when_unreachable(RETRY_TAGS, previous_attempts=0):
        raise RuntimeError("row(s) have order_date outside the partition window")  # a bug: no retry


def test_a_step_retries_with_backoff_then_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retries, "FIRST_WAIT_SECONDS", 0.01)
    attempts: list[int] = []

    @dg.asset
    def landed(context: dg.AssetExecutionContext) -> int:
        with retry_when_unreachable(context.run.tags, context.retry_number):
            attempts.append(context.retry_number)
            if len(attempts) < 3:
                raise RuntimeError("cannot reach the Delta table at s3://lake/x: Connection refused")
        return 1

    result = dg.materialize([landed], tags=RETRY_TAGS)
    assert result.success and attempts == [0, 1, 2]
    attempts.clear()
    result = dg.materialize([landed], raise_on_error=False)  # untagged: no retry
    assert not result.success and attempts == [0]


def test_the_automations_run_requests_allow_retries() -> None:
    changes = {"orders": NewChanges(rows=3, first=dt.datetime(2018, 3, 1), last=dt.datetime(2018, 3, 2))}
    bronze = bronze_run_request({"orders": None}, changes, ("2018-03-01", "2018-03-02"), set())
    assert bronze.tags[TRANSIENT_RETRIES_TAG] == "3"
    assert window_tags(("2018-03-01", "2018-03-02"), "daily_catch_up")[TRANSIENT_RETRIES_TAG] == "3"
    repository = build_definitions().get_repository_def()
    run = dg.DagsterRun(
        job_name="x",
        run_id="r1",
        asset_selection=frozenset({dg.AssetKey(["silver", "orders"])}),
        tags={PARTITION_RANGE_START_TAG: "2018-03-01", PARTITION_RANGE_END_TAG: "2018-03-02"},
    )
    gold = next_run_request(run, repository)
    assert gold is not None and gold.job_name == GOLD_JOB and gold.tags[TRANSIENT_RETRIES_TAG] == "3"
    silver = silver_request(
        run, {dg.AssetKey(["bronze", "orders"])}, repository, ("2018-03-01", "2018-03-01")
    )
    assert silver is not None and silver.tags[TRANSIENT_RETRIES_TAG] == "3"
    # The gold refresh hands the setting on to the runs of its build, and only when it has it.
    assert retry_tags_of({**RETRY_TAGS, "other": "x"}) == RETRY_TAGS and retry_tags_of({}) == {}


def test_the_stream_sensor_tags_its_runs_for_retries() -> None:
    """The stream sensor's request is built inline (it needs Kafka): its source says it."""
    import inspect

    from medallion_assets.automation import event_streams

    assert "**RETRY_TAGS" in inspect.getsource(event_streams.event_streams_sensor)


# -------------------------------------------------------------------------------------- alerts


def test_the_new_alert_sensors_are_on_and_launch_nothing() -> None:
    names = {sensor.name: sensor for sensor in ALERT_SENSORS}
    for name in ("alert_on_failed_checks", "alert_on_stale_assets"):
        assert names[name].default_status == dg.DefaultSensorStatus.RUNNING
        assert not names[name].targets


def checked_run() -> list[dg.EventLogEntry]:
    """One run of a tiny asset with four checks: passed, failed WARN, failed ERROR, failed blocking."""

    @dg.asset(
        check_specs=[
            dg.AssetCheckSpec("ok", asset="orders"),
            dg.AssetCheckSpec("drift_warn", asset="orders"),
            dg.AssetCheckSpec("drift_error", asset="orders"),
        ]
    )
    def orders() -> dg.Output:
        yield dg.Output(1)
        yield dg.AssetCheckResult(check_name="ok", passed=True)
        yield dg.AssetCheckResult(check_name="drift_warn", passed=False, severity=dg.AssetCheckSeverity.WARN)
        yield dg.AssetCheckResult(
            check_name="drift_error",
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            description="the day's rows fall outside the error band\nmore lines",
            metadata={"observed": 12, "expected": 480, "history": "x" * 500},
        )

    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([orders], instance=instance)
        assert result.success  # a non-blocking ERROR does not fail its run: hence the alert
        return list(instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION))


def test_only_failed_error_checks_alert() -> None:
    entries = checked_run()
    assert len(entries) == 3
    failures = error_check_failures(entries)
    assert [f.check_name for f in failures] == ["drift_error"]


def test_the_check_alert_says_what_failed_and_where() -> None:
    (failure,) = error_check_failures(checked_run())
    text = check_alert_text(failure, "0123456789abcdef", UI)
    lines = text.splitlines()
    assert lines[0] == "Asset check FAILED (ERROR): orders drift_error"
    assert lines[1] == "the day's rows fall outside the error band"  # the first line only
    assert "- observed: 12" in lines and "- expected: 480" in lines
    history = next(line for line in lines if line.startswith("- history: "))
    assert len(history) <= len("- history: ") + alerts.MAX_METADATA_CHARS and history.endswith("…")
    assert lines[-1] == "http://dagster.example:3000/runs/0123456789abcdef"


def test_the_stale_alert_names_the_asset_its_last_materialization_and_link() -> None:
    key = dg.AssetKey(["warehouse", "fact_orders"])
    at = dt.datetime(2024, 3, 1, 0, 42, tzinfo=dt.UTC).timestamp()
    assert stale_alert_text(key, at, UI) == (
        "Asset STALE (missed its freshness deadline): warehouse/fact_orders\n"
        "- last materialized: 2024-03-01 00:42 UTC\n"
        "http://dagster.example:3000/assets/warehouse/fact_orders"
    )
    assert "- last materialized: never" in stale_alert_text(key, None, UI)


def test_an_asset_alerts_once_per_miss_and_not_after_it_recovered() -> None:
    from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange

    a, b = dg.AssetKey(["gold", "a"]), dg.AssetKey(["gold", "b"])
    with dg.DagsterInstance.ephemeral() as instance:
        for key, old, new in [
            (a, FreshnessState.PASS, FreshnessState.FAIL),
            (b, FreshnessState.PASS, FreshnessState.FAIL),
            (b, FreshnessState.FAIL, FreshnessState.PASS),  # b recovered since
            (a, FreshnessState.FAIL, FreshnessState.FAIL),  # (never emitted; a repeat is one miss)
        ]:
            instance.report_runless_asset_event(
                FreshnessStateChange(key=key, previous_state=old, new_state=new, state_change_timestamp=0.0)
            )
        records = instance.event_log_storage.get_event_records(
            dg.EventRecordsFilter(event_type=dg.DagsterEventType.FRESHNESS_STATE_CHANGE), ascending=True
        )
        current = {k: r.freshness_state for k, r in instance.get_freshness_state_records([a, b]).items()}
    assert turned_stale(records, current) == [a]
