"""Downstream propagation: a successful run of one layer requests the next, and a daily catch-up.

Why a sensor and not `AutomationCondition.eager()`: eager only follows the latest time partition,
and gold's partitions are order dates, while a day of source changes can touch any older order date
(a late review, a status change); which ones is known only by comparing silver with the stored facts
(`stale_dates`, a Spark job). So the chain is:

- a successful run that landed bronze days D1..D2 requests the silver tables fed by those bronze
  tables over D1..D2 (job `propagate_silver`);
- a successful run of the stream lane (unpartitioned: it lands whatever offsets were new) requests
  them over the event dates it landed (its materializations' `event_dates`), one run per stretch of
  consecutive dates, so a late event's day is rebuilt and no day between is;
- a successful run that wrote silver over D1..D2 requests `gold_refresh`, one run that does what
  `medallion build 'key:gold/* or key:warehouse/*'` does for D1..D2: the dimensions, the facts and
  reports of those order dates plus every stale older one, then customer_rfm, each followed by its
  warehouse sync (each stretch a recorded run of its own, tagged with the refresh's run id).

Blocking checks are respected because only *successful* runs propagate: a failed blocking check
fails its run (steps after it never start), so nothing downstream is requested; the failure alert
tells a person and the catch-up retries. Run keys name the upstream run, so a repeated tick never
requests the same step twice. Runs of `medallion build` (tag `medallion/build`) run every layer
themselves and are not propagated.

The daily catch-up lands yesterday and today again (late-committed rows; the drift check judges a
day only once the source is past it) plus the window of any pipeline run that failed in the last
7 days; propagation carries it to gold.
"""

# No `from __future__ import annotations`: Dagster inspects the context annotation at definition time.
import datetime as dt
import time
from collections.abc import Callable, Mapping

import dagster as dg

from medallion_assets.automation.source_changes import bronze_key
from medallion_assets.build import build, format_summary
from medallion_assets.resources.postgres import SourceDatabase, SourceUnavailableError
from medallion_assets.resources.retries import RETRY_TAGS
from medallion_assets.sources.olist_db import CHANGE_FEEDS, SourceStateError, source_time
from medallion_assets.tags import (
    BUILD_TAG,
    CHANGES_TAG,
    LANE_TAG,
    PARTITION_RANGE_END_TAG,
    PARTITION_RANGE_START_TAG,
    PARTITION_TAG,
    STREAM_LANE,
    TRANSIENT_RETRIES_TAG,
    TRIGGER_TAG,
)

SILVER_JOB = "propagate_silver"
GOLD_JOB = "gold_refresh"
CATCH_UP_DAYS_BACK = 7


def run_window(run: dg.DagsterRun) -> tuple[str, str] | None:
    """The change dates a run covered: its carried window, its partition range, or its partition."""
    tags = run.tags
    if CHANGES_TAG in tags:
        start, end = tags[CHANGES_TAG].split("..")
        return start, end
    if PARTITION_RANGE_START_TAG in tags:
        return tags[PARTITION_RANGE_START_TAG], tags[PARTITION_RANGE_END_TAG]
    if PARTITION_TAG in tags:
        return tags[PARTITION_TAG], tags[PARTITION_TAG]
    return None


def window_tags(window: tuple[str, str], trigger: str) -> dict[str, str]:
    return {
        PARTITION_RANGE_START_TAG: window[0],
        PARTITION_RANGE_END_TAG: window[1],
        CHANGES_TAG: f"{window[0]}..{window[1]}",
        TRIGGER_TAG: trigger,
        **RETRY_TAGS,  # a source or store down mid-run: the step waits and retries (resources/retries.py)
    }


def next_run_requests(
    run: dg.DagsterRun, repository: dg.RepositoryDefinition, instance: dg.DagsterInstance
) -> list[dg.RunRequest]:
    """What a successful run asks of the next layer (nothing for gold, or a run without a window)."""
    if BUILD_TAG in run.tags:
        return []
    graph = repository.asset_graph
    # A run launched from a job's selection names its assets; an ad-hoc one (`dg.materialize`) may not.
    named = run.asset_selection or materialized_keys(instance, run.run_id)
    selected = {key for key in named if graph.has(key)}
    streams = {key for key in selected if graph.get(key).tags.get(LANE_TAG) == STREAM_LANE}
    if streams:
        dates = landed_event_dates(instance, run.run_id, streams, repository)
        requests = [silver_request(run, streams, repository, s, f"@{s[0]}") for s in stretches(dates)]
        return [request for request in requests if request]
    request = next_run_request(run, repository)
    return [request] if request else []


def materialized_keys(instance: dg.DagsterInstance, run_id: str) -> set[dg.AssetKey]:
    return {
        entry.asset_materialization.asset_key
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        if entry.asset_materialization is not None
    }


def landed_event_dates(
    instance: dg.DagsterInstance, run_id: str, keys: set[dg.AssetKey], repository: dg.RepositoryDefinition
) -> list[dt.date]:
    """The event dates a stream run landed rows on (`event_dates` of its materializations) that
    are daily partitions downstream (an event dated outside them stays in bronze, where its check
    sees it)."""
    dates: set[str] = set()
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = entry.asset_materialization
        if materialization is not None and materialization.asset_key in keys:
            landed = materialization.metadata.get("event_dates")
            dates.update(landed.value if isinstance(landed, dg.JsonMetadataValue) else {})
    partitions = next(
        (
            node.partitions_def
            for key in keys
            for child in repository.asset_graph.get(key).child_keys
            if (node := repository.asset_graph.get(child)).partitions_def is not None
        ),
        None,
    )
    return sorted(
        dt.date.fromisoformat(day) for day in dates if partitions is None or partitions.has_partition_key(day)
    )


def stretches(dates: list[dt.date]) -> list[tuple[str, str]]:
    """Sorted dates as (first, last) stretches of consecutive days."""
    found: list[list[dt.date]] = []
    for day in dates:
        if found and day - found[-1][1] == dt.timedelta(days=1):
            found[-1][1] = day
        else:
            found.append([day, day])
    return [(first.isoformat(), last.isoformat()) for first, last in found]


def silver_request(
    run: dg.DagsterRun,
    landed: set[dg.AssetKey],
    repository: dg.RepositoryDefinition,
    window: tuple[str, str],
    trigger_suffix: str = "",
) -> dg.RunRequest | None:
    """Silver (and its quarantine) fed by the landed bronze tables, over the window."""
    graph = repository.asset_graph
    children = {child for key in landed for child in graph.get(key).child_keys}
    silver = sorted(k for k in children if k.path[0] in ("silver", "quarantine"))
    if not silver:
        return None
    return dg.RunRequest(
        run_key=f"silver-after-{run.run_id}{trigger_suffix}",
        job_name=SILVER_JOB,
        asset_selection=silver,
        tags=window_tags(window, f"after {run.run_id}"),
    )


def next_run_request(run: dg.DagsterRun, repository: dg.RepositoryDefinition) -> dg.RunRequest | None:
    """What a successful run of the batch lane asks of the next layer (None: nothing)."""
    selected = set(run.asset_selection or ())
    layers = {key.path[0] for key in selected}
    window = run_window(run)
    if window is None:
        return None
    if layers & {"silver", "quarantine"}:
        return dg.RunRequest(
            run_key=f"gold-after-{run.run_id}",
            job_name=GOLD_JOB,
            run_config={"ops": {"refresh_gold": {"config": {"start": window[0], "end": window[1]}}}},
            tags={CHANGES_TAG: f"{window[0]}..{window[1]}", TRIGGER_TAG: f"after {run.run_id}", **RETRY_TAGS},
        )
    if "bronze" in layers:
        return silver_request(run, {key for key in selected if key.path[0] == "bronze"}, repository, window)
    return None


class GoldWindow(dg.Config):
    start: str  # the change dates whose effects gold takes in, YYYY-MM-DD
    end: str


def retry_tags_of(tags: Mapping[str, str]) -> dict[str, str]:
    return {TRANSIENT_RETRIES_TAG: tags[TRANSIENT_RETRIES_TAG]} if TRANSIENT_RETRIES_TAG in tags else {}


# What a gold refresh builds: gold, its copies and views in the warehouse, and the report.
GOLD_REFRESH_SELECTION = "key:gold/* or key:warehouse/* or key:interface/*"


def gold_refresh_job(code_location: Callable[[], dg.Definitions]) -> dg.JobDefinition:
    """The job `gold_refresh`: one run that runs `medallion build` over gold and the warehouse for a
    window of change dates. `code_location` gives the Definitions to build from: the one seam
    through which a run starts the runs of a build (definitions.py passes it; this module never
    imports the code location, which holds this job)."""

    @dg.op(
        name="refresh_gold",
        description="Build gold and sync the warehouse for a window of change dates, as "
        f"`medallion build --select '{GOLD_REFRESH_SELECTION}'` does.",
    )
    def refresh_gold(context: dg.OpExecutionContext, config: GoldWindow) -> None:
        summary = build(
            code_location(),
            GOLD_REFRESH_SELECTION,
            dt.date.fromisoformat(config.start),
            dt.date.fromisoformat(config.end),
            echo=context.log.info,
            instance=context.instance,
            # The build's runs retry their steps as this run was told to (RETRY_TAGS), or not at all.
            tags={BUILD_TAG: context.run_id, **retry_tags_of(context.run.tags)},
        )
        context.log.info(format_summary(summary))
        if not summary.success:
            raise dg.Failure(
                description=f"gold refresh failed at {', '.join(summary.failed_steps)}",
                metadata={"runs": summary.runs, "failed_checks": summary.failed_checks},
            )

    @dg.job(name=GOLD_JOB, executor_def=dg.in_process_executor, description=refresh_gold.description)
    def gold_refresh() -> None:
        refresh_gold()

    return gold_refresh


# Silver over the days a bronze run landed (its partitions are the bronze run's window).
PROPAGATE_SILVER = dg.define_asset_job(SILVER_JOB, selection=dg.AssetSelection.groups("silver", "quarantine"))


def propagation_sensor(
    gold_refresh: dg.JobDefinition, status: dg.DefaultSensorStatus, every_seconds: int = 15
) -> dg.SensorDefinition:
    @dg.sensor(
        name="propagate_downstream",
        description="After a successful bronze run: silver over its days; after silver: gold.",
        minimum_interval_seconds=every_seconds,
        jobs=[PROPAGATE_SILVER, gold_refresh],
        default_status=status,
    )
    def propagate_downstream(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        # First tick: from now on (history was built already, or by `medallion build`).
        after = float(context.cursor) if context.cursor else time.time()
        # A run's update time is taken before its status is committed: the last seconds wait a tick,
        # so a run finishing now cannot slip in behind the cursor.
        settled = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
        records = context.instance.get_run_records(
            dg.RunsFilter(
                statuses=[dg.DagsterRunStatus.SUCCESS],
                updated_after=dt.datetime.fromtimestamp(after, dt.UTC),
                updated_before=settled,
            ),
            order_by="update_timestamp",
            ascending=True,
            limit=100,
        )
        repository = context.repository_def
        requests = [
            request
            for record in records
            for request in next_run_requests(record.dagster_run, repository, context.instance)
        ]
        cursor = records[-1].update_timestamp.timestamp() if records else after
        return dg.SensorResult(run_requests=requests, cursor=str(cursor))

    return propagate_downstream


def failed_since(instance: dg.DagsterInstance, since: dt.datetime) -> list[tuple[str, str]]:
    """The change windows of pipeline runs that failed since `since` (not those of `medallion build`)."""
    records = instance.get_run_records(
        dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE], created_after=since)
    )
    return [
        window
        for record in records
        if BUILD_TAG not in record.dagster_run.tags and (window := run_window(record.dagster_run))
    ]


def catch_up_schedule(
    partitions: dg.TimeWindowPartitionsDefinition, status: dg.DefaultScheduleStatus
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="daily_catch_up",
        description="Lands yesterday and today again, and any window that failed in the last 7 days.",
        cron_schedule="30 0 * * *",
        target=dg.AssetSelection.assets(*(bronze_key(name) for name in CHANGE_FEEDS)),
        default_status=status,
    )
    def daily_catch_up(
        context: dg.ScheduleEvaluationContext, source_db: SourceDatabase
    ) -> dg.RunRequest | dg.SkipReason:
        try:  # the source's present: a replayed source's clock is not the wall clock
            today = source_time(source_db.url()).date()
        except (SourceUnavailableError, SourceStateError) as exc:
            return dg.SkipReason(f"source not readable: {exc}")
        since = dt.datetime.now(dt.UTC) - dt.timedelta(days=CATCH_UP_DAYS_BACK)
        failed = [dt.date.fromisoformat(start) for start, _ in failed_since(context.instance, since)]
        start = min([today - dt.timedelta(days=1), *failed])
        first, last = partitions.get_first_partition_window(), partitions.get_last_partition_window()
        assert first is not None and last is not None
        window = (
            max(start, first.start.date()).isoformat(),
            min(today, last.start.date()).isoformat(),
        )
        scheduled = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
        return dg.RunRequest(
            run_key=f"catch-up-{scheduled:%Y-%m-%d}", tags=window_tags(window, "daily_catch_up")
        )

    return daily_catch_up
