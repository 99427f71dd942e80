"""The `lake_maintenance` job and its weekly schedule, built from the table specs by one factory.

One op per lake table: `OPTIMIZE` (Z-ordered by the spec's columns), then `VACUUM` with the
retention of the settings (`MEDALLION_VACUUM_RETENTION_HOURS`, at least 168 h). Each op is in the
concurrency pool of the step that writes its table (bronze/orders; silver/orders for both silver
and quarantine orders, one multi-asset; gold/facts for both facts), so where the instance limits
pools (the PostgreSQL instance's dagster.yaml: 1 per pool) maintenance and a write of the same
table never run at once, one waits for the other. Where pools are not limited (the SQLite default),
the op still skips a table that an in-progress run writes; a write that starts during the
maintenance then meets Delta's conflict check (one of the two commits fails, nothing is lost).

No `from __future__ import annotations`: Dagster reads the ops' resource annotations at definition.
"""

from collections.abc import Iterable, Mapping, Sequence

import dagster as dg

from medallion_assets.maintenance.operations import check_retention, optimize, vacuum
from medallion_assets.maintenance.runs import (
    MAINTENANCE_JOB,
    describe_runs,
    maintenance_op_name,
    runs_writing,
)
from medallion_assets.resources.delta_lake import Lake, LakeResource
from medallion_assets.resources.spark import SparkResource
from medallion_assets.settings import Settings
from medallion_assets.specs import LakeTable

SCHEDULE = "weekly_lake_maintenance"
WEEKLY = "0 3 * * 0"  # Sundays 03:00 UTC, after the daily catch-up (00:30)


def writer_pools(layers: Iterable[dg.Definitions]) -> dict[dg.AssetKey, str]:
    """The pool of the step that materializes each asset of these definitions."""
    pools: dict[dg.AssetKey, str] = {}
    for assets_def in (a for layer in layers for a in layer.assets or ()):
        if isinstance(assets_def, dg.AssetsDefinition) and assets_def.is_executable:
            for key in assets_def.keys:
                if assets_def.op.pool:
                    pools[key] = assets_def.op.pool
    return pools


def skip_reason(context: dg.OpExecutionContext, lake: Lake, key: dg.AssetKey) -> str | None:
    # Other maintenance runs are left to the pools (or Delta's conflict check): two of them skipping
    # each other's tables would both skip everything.
    writers = [
        run
        for run in runs_writing(context.instance, key, other_than=context.run_id)
        if run.job_name != MAINTENANCE_JOB
    ]
    if writers:
        return f"run(s) in progress write it: {describe_runs(writers)}"
    return "not built yet" if lake.open(lake.uri(key)) is None else None


def maintenance_op(table: LakeTable, pool: str, retention_hours: int) -> dg.OpDefinition:
    """The op that compacts and vacuums one table (skipped while not built or while a run writes it)."""
    key = dg.AssetKey(table.asset_path)
    name = key.to_user_string()

    @dg.op(
        name=maintenance_op_name(key),
        pool=pool,
        out=dg.Out(dg.Nothing),
        description=f"OPTIMIZE {name} (Z-ordered by its window column and zorder_by when it is not"
        f" partitioned by them), then VACUUM it keeping {retention_hours} h of history.",
        tags={"medallion/table": name},
    )
    def maintain(context: dg.OpExecutionContext, spark: SparkResource, lakehouse: LakeResource):
        hours = check_retention(retention_hours)  # before anything is touched
        lake = lakehouse.lake()
        skipped = skip_reason(context, lake, key)
        if skipped:
            context.log.info(f"{name}: skipped, {skipped}")
            yield dg.Output(None, metadata={"skipped": skipped})
            return
        session = spark.session()
        compaction = optimize(lake, session, table)
        vacuumed = vacuum(lake, session, key, hours)
        yield dg.Output(
            None,
            metadata={
                "files_before": compaction.before.files,
                "files_after": compaction.after.files,
                "bytes_before": compaction.before.bytes,
                "bytes_after": compaction.after.bytes,
                "rows_before": compaction.before.rows,
                "rows_after": compaction.after.rows,
                "zorder_by": ", ".join(compaction.zorder_by) or "-",
                "version_before": compaction.before.version,
                "version_after": vacuumed.version,
                "retention_hours": vacuumed.retention_hours,
                "vacuum_files_deleted": vacuumed.files_deleted,
                "vacuum_bytes_deleted": vacuumed.bytes_deleted,
                "dagster/uri": lake.uri(key),
            },
        )

    return maintain


def maintenance_job(
    tables: Sequence[LakeTable], pools: Mapping[dg.AssetKey, str], retention_hours: int
) -> dg.JobDefinition:
    """One op per table, each in the pool of its table's writer; a table without one is an error
    here (maintenance could then run beside a write of it)."""
    missing = [t for t in tables if dg.AssetKey(t.asset_path) not in pools]
    if missing:
        names = ", ".join("/".join(t.asset_path) for t in missing)
        raise ValueError(f"no writer pool for {names}: maintenance would not be kept apart from writes")
    ops = [maintenance_op(t, pools[dg.AssetKey(t.asset_path)], retention_hours) for t in tables]

    @dg.job(
        name=MAINTENANCE_JOB,
        # One process, one Spark session; the tables one after the other (each op waits for its pool).
        executor_def=dg.in_process_executor,
        description=f"OPTIMIZE (Z-ordered) and VACUUM every lake table, keeping {retention_hours} h of"
        " history; tables not built yet, or written by a run in progress, are skipped.",
    )
    def lake_maintenance() -> None:
        for op in ops:
            op()

    return lake_maintenance


def maintenance_definitions(
    tables: Sequence[LakeTable], pools: Mapping[dg.AssetKey, str], settings: Settings
) -> dg.Definitions:
    """The job and its weekly schedule, off unless MEDALLION_AUTOMATION is on (like the other
    automation: it writes every table)."""
    job = maintenance_job(tables, pools, settings.vacuum_retention_hours)
    status = dg.DefaultScheduleStatus.RUNNING if settings.automation else dg.DefaultScheduleStatus.STOPPED
    schedule = dg.ScheduleDefinition(
        name=SCHEDULE, job=job, cron_schedule=WEEKLY, execution_timezone="UTC", default_status=status
    )
    return dg.Definitions(jobs=[job], schedules=[schedule])
