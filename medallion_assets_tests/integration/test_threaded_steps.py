"""The threaded executor (dagster_internals.threaded_in_process_executor) runs a run's independent
steps side by side and otherwise does what Dagster's in_process executor does: the same job, run
with each executor in an on-disk instance, ends with the same status for every step, the same
materializations and the same check results; and with ours two independent steps overlapped.
(The platform's builds run on it everywhere: every build test checks their tables.)"""

# No `from __future__ import annotations`: Dagster inspects the context annotations.

import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

from medallion_assets.build import steps_wall_seconds
from medallion_assets.dagster_internals import execute_without_output_capture, threaded_in_process_executor
from medallion_assets_tests.helpers import booked_instance

NAP = 1.5  # seconds each of the two slow assets takes


@dg.asset
def slow_left() -> int:
    time.sleep(NAP)
    return 1


@dg.asset
def slow_right() -> int:
    time.sleep(NAP)
    return 1


@dg.asset
def broken(slow_left: int) -> int:
    raise ValueError("a broken step")


@dg.asset
def after_broken(broken: int) -> int:
    return broken


@dg.asset(check_specs=[dg.AssetCheckSpec("positive", asset="right_child")])
def right_child(slow_right: int):
    yield dg.Output(2)
    yield dg.AssetCheckResult(check_name="positive", passed=True)


def run(executor: dg.ExecutorDefinition, home: Path) -> tuple[dict[str, str], set[str], float, dict, float]:
    """Each step's last status, the assets materialized, the overlap of the two slow steps (seconds
    both ran at once), the check results and the wall time with a step running."""
    job = dg.Definitions(
        assets=[slow_left, slow_right, broken, after_broken, right_child],
        jobs=[dg.define_asset_job("everything")],
        executor=executor,
    ).resolve_job_def("everything")
    with booked_instance(home) as instance:
        result = execute_without_output_capture(job, instance, {}, {})
        events = instance.all_logs(result.run_id)
        status: dict[str, str] = {}
        spans: dict[str, list[float]] = {}
        for record in events:
            event = record.dagster_event
            if event is None or event.step_key is None:
                continue
            if event.event_type_value in ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
                status[event.step_key] = event.event_type_value
                spans.setdefault(event.step_key, []).append(record.timestamp)
        materialized = {
            r.dagster_event.asset_key.to_user_string()
            for r in events
            if r.dagster_event and r.dagster_event.event_type_value == "ASSET_MATERIALIZATION"
        }
        left, right = spans["slow_left"], spans["slow_right"]
        overlap = min(left[-1], right[-1]) - max(left[0], right[0])
        checks = {
            key.to_user_string(): record.status.value
            for key, record in instance.event_log_storage.get_latest_asset_check_execution_by_key(
                [dg.AssetCheckKey(dg.AssetKey("right_child"), "positive")]
            ).items()
        }
        assert not result.success
        busy = steps_wall_seconds(instance, result.run_id)
    return status, materialized, overlap, checks, busy


def test_steps_run_side_by_side_and_end_as_with_the_in_process_executor(tmp_path: Path) -> None:
    stock = run(dg.in_process_executor, tmp_path / "stock")
    ours = run(threaded_in_process_executor, tmp_path / "ours")
    assert (
        ours[0]
        == stock[0]
        == {
            "slow_left": "STEP_SUCCESS",
            "slow_right": "STEP_SUCCESS",
            "broken": "STEP_FAILURE",
            "right_child": "STEP_SUCCESS",
        }
    )  # after_broken never started
    assert ours[1] == stock[1] == {"slow_left", "slow_right", "right_child"}
    assert ours[3] == stock[3] and list(ours[3].values()) == ["SUCCEEDED"]
    assert stock[2] < 0  # one after the other
    assert ours[2] > NAP / 2  # side by side
    # The build's summary counts the wall time with a step running once, however many ran.
    assert 2 * NAP <= stock[4] < 2 * NAP + 2
    assert NAP <= ours[4] < 2 * NAP - ours[2] + 1


INTERRUPTED = """
import sys, time
from pathlib import Path
import dagster as dg
from medallion_assets.build import steps_wall_seconds
from medallion_assets.dagster_internals import execute_without_output_capture, threaded_in_process_executor
from medallion_assets_tests.helpers import booked_instance

home = Path(sys.argv[1])

@dg.asset
def endless() -> None:
    (home / "started").touch()
    time.sleep(60)

@dg.asset
def quick() -> None:
    pass

job = dg.Definitions(
    assets=[endless, quick], jobs=[dg.define_asset_job("both")], executor=threaded_in_process_executor
).resolve_job_def("both")
with booked_instance(home / "dagster") as instance:
    result = execute_without_output_capture(job, instance, {}, {})
    print("run", result.run_id, result.success)
"""


def test_an_interrupted_run_stops_at_once_and_records_its_running_step_as_interrupted(
    tmp_path: Path,
) -> None:
    """SIGTERM reaches the run's main thread only: the step running in a thread is recorded as
    failed by the interrupt and the run ends now, not when the step would have."""
    worker = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "started").exists():
            assert worker.poll() is None and time.monotonic() < deadline, "the step never started"
            time.sleep(0.1)
        sent = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=30)
        assert time.monotonic() - sent < 10  # the step alone would have slept a minute
    finally:
        worker.kill()  # a no-op when it ended
    run_id, success = out.split()[-2:]
    assert success == "False"
    with booked_instance(tmp_path / "dagster") as instance:
        failures = [
            r.dagster_event
            for r in instance.all_logs(run_id)
            if r.dagster_event and r.dagster_event.event_type_value == "STEP_FAILURE"
        ]
        # `quick` may still have been running too (a busy machine): then it is interrupted as well.
        assert "endless" in {f.step_key for f in failures} <= {"endless", "quick"}
        assert {f.step_failure_data.error_source.value for f in failures} == {"INTERRUPT"}
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
