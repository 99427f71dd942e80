"""Which Dagster runs in progress write a lake table.

A restore refuses to go while one does (its commit would be lost under the run's, or the run's
under the restore), and the maintenance job skips the table (pools keep maintenance and writes
apart only where the instance limits them, see jobs.py). A run writes a table when its asset
selection holds the table's key, else when a step it executes materializes the key (its execution
plan), when it is a maintenance run with a step for the table, or when it is a gold refresh (which
writes gold through runs of its own, one stretch after another, so its own plan names no asset).
"""

from __future__ import annotations

import dagster as dg

from medallion_assets.automation.propagation import GOLD_JOB

MAINTENANCE_JOB = "lake_maintenance"
MAINTENANCE_OP_PREFIX = "maintain_"
# Runs that may still write: queued, starting, running, or stopping (a step may still be writing).
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def maintenance_op_name(key: dg.AssetKey) -> str:
    """The maintenance job's op for a table: `maintain_gold__fact_orders` for gold/fact_orders."""
    return MAINTENANCE_OP_PREFIX + "__".join(key.path)


def maintained_table(step_key: str) -> dg.AssetKey | None:
    """The table a maintenance step works on (None for another step)."""
    if not step_key.startswith(MAINTENANCE_OP_PREFIX):
        return None
    return dg.AssetKey(step_key.removeprefix(MAINTENANCE_OP_PREFIX).split("__"))


def planned_keys(instance: dg.DagsterInstance, run: dg.DagsterRun) -> set[dg.AssetKey]:
    """The assets the steps a run executes materialize, from its execution plan."""
    if run.execution_plan_snapshot_id is None:
        return set()
    plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
    executed = set(run.step_keys_to_execute or [step.key for step in plan.steps])
    keys: set[dg.AssetKey] = set()
    for step in plan.steps:
        if step.key not in executed:
            continue
        keys.update(o.properties.asset_key for o in step.outputs if o.properties and o.properties.asset_key)
        table = maintained_table(step.key) if run.job_name == MAINTENANCE_JOB else None
        if table is not None:
            keys.add(table)
    return keys


def writes(instance: dg.DagsterInstance, run: dg.DagsterRun, key: dg.AssetKey) -> bool:
    if run.job_name == GOLD_JOB:
        return key.path[0] == "gold"
    if run.asset_selection is not None:
        return key in run.asset_selection
    return key in planned_keys(instance, run)


def runs_writing(
    instance: dg.DagsterInstance, key: dg.AssetKey, other_than: str | None = None
) -> list[dg.DagsterRun]:
    """The runs in progress that write the table (`other_than`: a run id left out, the caller's)."""
    runs = instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS))
    return [run for run in runs if run.run_id != other_than and writes(instance, run, key)]


def describe_runs(runs: list[dg.DagsterRun]) -> str:
    return ", ".join(f"{run.run_id} ({run.job_name}, {run.status.value})" for run in runs)
