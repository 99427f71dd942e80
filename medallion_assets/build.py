"""`medallion build`: materialize a selection of assets over a date range, in dependency order.

Dagster cannot materialize assets of different partitionings in one run, so the selection is cut
into consecutive stretches of the dependency order that share a partitioning; each stretch is one
in-process run (one process, one Spark session) over the whole range, recorded in the Dagster
instance like any run. Progress is printed as steps finish; a summary ends the build.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from medallion_assets.automation.audit import record_run
from medallion_assets.dagster_internals import execute_without_output_capture
from medallion_assets.gold.wide import stale_dates
from medallion_assets.progress import progress_config
from medallion_assets.resources.instance import ensure_dagster_home
from medallion_assets.resources.postgres import SourceDatabase, redact
from medallion_assets.resources.spark import start_in_background
from medallion_assets.settings import get_settings
from medallion_assets.sources.olist_db import source_change_dates
from medallion_assets.specs import GOLD_WIDE
from medallion_assets.tags import (
    BUILD_TAG,
    LANE_TAG,
    PARTITION_RANGE_END_TAG,
    PARTITION_RANGE_START_TAG,
    STREAM_LANE,
)

Echo = Callable[[str], None]
# Downstream of order dates (the report too: in the last run of gold and the warehouse, not its own).
ORDER_DATE_LAYERS = ("gold", "warehouse", "interface")


@dataclass
class AssetOutcome:
    key: str
    partitions: int = 0
    rows: int = 0
    seconds: float = 0.0
    checks_passed: int = 0
    checks_failed: int = 0
    check_seconds: float = 0.0


@dataclass
class BuildSummary:
    runs: list[str] = field(default_factory=list)
    assets: dict[str, AssetOutcome] = field(default_factory=dict)
    failed_steps: list[str] = field(default_factory=list)
    # "asset check (SEVERITY)" of every failed check, warnings included.
    failed_checks: list[str] = field(default_factory=list)
    seconds: float = 0.0
    range: tuple[dt.date, dt.date] | None = None
    # Parts of the time outside the runs' steps: finding gold's stale order dates, the audit.
    stale_seconds: float = 0.0
    audit_seconds: float = 0.0
    # Wall time with at least one step running: steps run two at a time, so their times add up to more.
    steps_seconds: float = 0.0

    @property
    def success(self) -> bool:
        return not self.failed_steps

    @property
    def check_warnings(self) -> list[str]:
        """Failed checks of WARN severity: signals (a Black Friday), not failures of the data."""
        return [check for check in self.failed_checks if check.endswith("(WARN)")]

    @property
    def check_errors(self) -> list[str]:
        return [check for check in self.failed_checks if not check.endswith("(WARN)")]


def build(
    definitions: dg.Definitions,
    selection: str | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    echo: Echo = print,
    instance: dg.DagsterInstance | None = None,
    tags: dict[str, str] | None = None,
    show_progress: bool = True,
    checks: bool = True,
) -> BuildSummary:
    """Build the `selection` of `definitions` (the code location's: `definitions.code_location()`).

    Runs are recorded in the DAGSTER_HOME instance unless another `instance` is given (tests pass
    an ephemeral one: booking each partition in SQLite costs ~10 ms). Every run is tagged
    `medallion/build` (the propagation sensor leaves such runs alone: they run every layer).
    `checks=False` runs the assets without their checks (and so without the blocking ones' gates):
    for code that judges the data itself, like tests of what a layer holds."""
    ensure_dagster_home(get_settings())
    # The lake, Spark and the databases as the code location configures them, initialized here
    # (secrets set as dg.EnvVar are read from the environment now).
    shared = {key: definitions.resources[key] for key in ("spark", "lakehouse", "source_db", "audit_db")}
    with dg.build_resources(shared) as resources:
        return _build(
            definitions, resources, selection, start, end, echo, instance, tags, show_progress, checks
        )


def _build(
    definitions: dg.Definitions,
    resources: Any,
    selection: str | None,
    start: dt.date | None,
    end: dt.date | None,
    echo: Echo,
    instance: dg.DagsterInstance | None,
    tags: dict[str, str] | None,
    show_progress: bool,
    checks: bool,
) -> BuildSummary:
    started = time.perf_counter()
    graph = definitions.resolve_asset_graph()
    keys = _resolve(selection, graph)
    if not keys:
        raise ValueError(f"the selection {selection!r} matches no asset")
    ordered = [key for key in graph.toposorted_asset_keys if key in keys]
    summary = BuildSummary()
    # Gold's and the warehouse's partitions are order dates, the other layers' change dates: never
    # one run for both.
    stretches = _stretches(
        ordered,
        lambda key: (graph.get(key).partitions_def, key.path[0] in ORDER_DATE_LAYERS),
        lambda key: graph.get(key).parent_keys,
    )
    if any(partitions is not None for (partitions, _), _ in stretches):
        summary.range = _date_range(resources.source_db, start, end)
    if any(key.path[0] != "bronze" for key in ordered):  # every layer after bronze uses Spark
        start_in_background(resources.spark)
    jobs = [
        dg.define_asset_job(
            f"medallion_build_{index}",
            selection=_selected(stretch, checks),
            partitions_def=partitions,
        )
        for index, ((partitions, _), stretch) in enumerate(stretches, start=1)
    ]
    with_jobs = dg.Definitions.merge(definitions, dg.Definitions(jobs=jobs))  # every stretch's job
    # A given instance stays open for the caller; the DAGSTER_HOME one is closed after the build.
    with nullcontext(instance) if instance else dg.DagsterInstance.get() as instance:
        for job, ((partitions, by_order_date), stretch) in zip(jobs, stretches, strict=True):
            job_def = with_jobs.resolve_job_def(job.name)
            # Each run: its job (the stretch's, or a part of it), the assets it builds, its window.
            if partitions is None:
                ranges: list[tuple[dg.JobDefinition, list[dg.AssetKey], tuple[str, str] | None]] = [
                    (job_def, stretch, None)
                ]
            elif by_order_date:
                session, lake = resources.spark.session(), resources.lakehouse.lake()
                searching = time.perf_counter()
                stale, moved = stale_dates(session, lake)
                summary.stale_seconds += time.perf_counter() - searching
                windows = _order_date_ranges(stale, partitions, summary.range, echo)
                ranges = [(job_def, stretch, window) for window in windows]
                for subset, window in _current_attribute_runs(
                    moved, windows, stretch, graph, partitions, echo
                ):
                    keys = [key for key in stretch if key in subset]
                    no_checks = None if checks else set()  # None: the checks of the subset's assets
                    subset_job = job_def.get_subset(asset_selection=subset, asset_check_selection=no_checks)
                    ranges.append((subset_job, keys, window))
            else:
                ranges = [(job_def, stretch, _clamp(partitions, summary.range))]
            for run_job, keys, window in ranges:
                layers = ", ".join(dict.fromkeys(key.path[0] for key in keys))
                label = f"run {len(summary.runs) + 1} ({layers})"
                run_tags = {BUILD_TAG: "cli", **(tags or {})}
                partition_count = 0
                if window is None:
                    echo(f"{label}: {len(keys)} unpartitioned asset(s)")
                else:
                    run_tags |= {
                        PARTITION_RANGE_START_TAG: window[0],
                        PARTITION_RANGE_END_TAG: window[1],
                    }
                    partition_count = len(
                        partitions.get_partition_keys_in_range(dg.PartitionKeyRange(*window))
                    )
                    echo(f"{label}: {len(keys)} asset(s) over partitions {window[0]}..{window[1]}")
                config = progress_config(
                    label, len(run_job.nodes_in_topological_order), partition_count, quiet=not show_progress
                )
                result = execute_without_output_capture(run_job, instance, run_tags, config)
                summary.runs.append(result.run_id)
                auditing = time.perf_counter()
                try:  # the audit never fails a build: the audit_finished_runs sensor can record it later
                    record_run(instance, result.run_id, resources.audit_db.url())
                except Exception as exc:
                    echo(f"warning: run {result.run_id} not in the audit log: {redact(str(exc))}")
                summary.audit_seconds += time.perf_counter() - auditing
                summary.steps_seconds += steps_wall_seconds(instance, result.run_id)
                _collect(result, summary)
                if not result.success:
                    break
            if not summary.success:
                break  # later stretches depend on this one
    summary.seconds = time.perf_counter() - started
    return summary


# Stale order dates closer than this are recomputed in one run: a run costs more than a few days.
MERGE_GAP_DAYS = 31


def _order_date_ranges(
    stale: list[dt.date], partitions: dg.PartitionsDefinition, requested: tuple[dt.date, dt.date], echo: Echo
) -> list[tuple[str, str]]:
    """The order-date partitions to (re)compute: the requested range, plus every older order date
    whose facts a change has made stale (a late review, a status change), in as few runs as sensible."""
    keys = partitions.get_partition_keys()
    first_key, last_key = dt.date.fromisoformat(keys[0]), dt.date.fromisoformat(keys[-1])
    outside = [d for d in stale if not first_key <= d <= last_key]
    if outside:
        echo(f"warning: {len(outside)} order date(s) outside the partitions {keys[0]}..{keys[-1]} not built")
    intervals = sorted([requested, *[(d, d) for d in stale if first_key <= d <= last_key]])
    merged: list[list[dt.date]] = []
    for begin, end in intervals:
        if merged and begin <= merged[-1][1] + dt.timedelta(days=MERGE_GAP_DAYS):
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([begin, end])
    outside_requested = [d for d in stale if not requested[0] <= d <= requested[1]]
    echo(f"gold: {len(stale)} order date(s) changed, {len(outside_requested)} outside the requested range")
    return [_clamp(partitions, (begin, end)) for begin, end in merged]


def _current_attribute_runs(
    stale: dict[str, set[dt.date]],
    windows: list[tuple[str, str]],
    stretch: list[dg.AssetKey],
    graph: dg.AssetGraph,
    partitions: dg.PartitionsDefinition,
    echo: Echo,
) -> list[tuple[set[dg.AssetKey], tuple[str, str]]]:
    """Runs for wide tables whose current attributes changed on order dates the fact ranges leave
    out (a customer moved): the wide table and what the stretch builds from it (its warehouse copy)
    only, not every fact and report of those dates. One range from the first such date to the last:
    a customer's orders lie anywhere in the history, and rebuilding a wide table whole costs less
    than a run per gap (~12 s with its copy and checks at scale 1; a run of the whole stretch ~40 s)."""
    runs = []
    keys = partitions.get_partition_keys()
    for name, dates in stale.items():
        key = dg.AssetKey(GOLD_WIDE[name].asset_path)
        days = [d.isoformat() for d in dates if keys[0] <= d.isoformat() <= keys[-1]]  # as gold's own
        outside = sorted(dt.date.fromisoformat(d) for d in days if not any(a <= d <= b for a, b in windows))
        if key not in stretch or not outside:
            continue
        subset = set(dg.AssetSelection.assets(key).downstream().resolve(graph)) & set(stretch)
        echo(f"{name}: current attributes changed on {len(outside)} more order date(s)")
        runs.append((subset, _clamp(partitions, (outside[0], outside[-1]))))
    return runs


def _selected(keys: list[dg.AssetKey], checks: bool) -> dg.AssetSelection:
    """These assets, with their checks or without."""
    assets = dg.AssetSelection.assets(*keys)
    return assets if checks else assets.without_checks()


def _resolve(selection: str | None, graph: dg.AssetGraph) -> set[dg.AssetKey]:
    """The selected assets. The stream lane (Kafka's event tables, the stream sensor's) is built
    only by a selection of nothing else (`tag:medallion/lane=stream`, `key:bronze/review_events`),
    each stream whole: its bronze and quarantine tables are one step. So is a silver table with its
    quarantine, and a fact with its items: a selection of one (`+key:gold/daily_order_report`) gets
    the other (Dagster refuses a job with one output of an op that writes both)."""
    streams = set(dg.AssetSelection.tag(LANE_TAG, STREAM_LANE).resolve(graph))
    if not selection:
        return set(graph.materializable_asset_keys) - streams
    try:
        chosen = dg.AssetSelection.from_string(selection)
        keys = set(chosen.required_multi_asset_neighbors().resolve(graph))
    except dg.DagsterInvalidSubsetError as exc:
        hint = f" (for every asset under a prefix write key:{selection})" if selection.endswith("/*") else ""
        raise ValueError(f"the selection {selection!r} matches no asset{hint}: {exc}") from None
    if keys - streams:
        return keys - streams
    return {key for key in streams if key.path[-1] in {chosen.path[-1] for chosen in keys}}


def _stretches(
    ordered: list[dg.AssetKey], partitioning: Callable, parents: Callable
) -> list[tuple[Any, list[dg.AssetKey]]]:
    """Cut the dependency order into as few runs as possible: each stretch takes every asset of its
    partitioning whose selected parents are built (by earlier stretches or by itself)."""
    selected, done = set(ordered), set()
    stretches: list[tuple[Any, list[dg.AssetKey]]] = []
    remaining = list(ordered)
    while remaining:
        kind = partitioning(remaining[0])
        stretch: list[dg.AssetKey] = []
        for key in remaining:  # in dependency order, so parents inside the stretch come first
            ready = all(p in done or p in stretch or p not in selected for p in parents(key))
            if partitioning(key) == kind and ready:
                stretch.append(key)
        done.update(stretch)
        remaining = [key for key in remaining if key not in done]
        stretches.append((kind, stretch))
    return stretches


def _date_range(
    source: SourceDatabase, start: dt.date | None, end: dt.date | None
) -> tuple[dt.date, dt.date]:
    if start is None or end is None:  # only then asked: an embedded source would be started for it
        held = source_change_dates(source.url())
        if held is None:
            raise ValueError("the source holds no rows: load it first (medallion source load)")
        start, end = start or held[0], end or held[1]
    if end < start:
        raise ValueError(f"--to {end} is before --from {start}")
    return start, end


def _clamp(partitions: dg.PartitionsDefinition, window: tuple[dt.date, dt.date]) -> tuple[str, str]:
    keys = partitions.get_partition_keys()
    first = max(window[0].isoformat(), keys[0])
    last = min(window[1].isoformat(), keys[-1])
    if first > last:
        raise ValueError(
            f"no daily partition between {window[0]} and {window[1]} (partitions start {keys[0]})"
        )
    return first, last


STEP_BOUNDS = {
    dg.DagsterEventType.STEP_START,
    dg.DagsterEventType.STEP_SUCCESS,
    dg.DagsterEventType.STEP_FAILURE,
}


def steps_wall_seconds(instance: dg.DagsterInstance, run_id: str) -> float:
    """The wall time during which at least one of the run's steps ran (the union of their spans)."""
    records, cursor = [], None
    while True:
        page = instance.get_records_for_run(run_id, cursor=cursor, of_type=STEP_BOUNDS, limit=1000)
        records += page.records
        if not page.has_more:
            break
        cursor = page.cursor
    started: dict[str, float] = {}
    spans = []
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.is_step_start:
            started[event.step_key] = record.event_log_entry.timestamp
        elif event.step_key in started:
            spans.append((started.pop(event.step_key), record.event_log_entry.timestamp))
    busy, reached = 0.0, float("-inf")
    for begin, end in sorted(spans):
        busy += max(0.0, end - max(begin, reached))
        reached = max(reached, end)
    return busy


def _collect(result: dg.ExecuteInProcessResult, summary: BuildSummary) -> None:
    counted: set[tuple[str, str]] = set()
    # A multi-asset step materializes several assets: its time goes to the first one it yields.
    first_asset_of_step: dict[str, str] = {}
    checked_by_step: dict[str, str] = {}  # a check step's time goes to the asset it checks
    for event in result.all_events:
        if event.is_step_materialization:
            asset = event.step_materialization_data.materialization.asset_key.to_user_string()
            first_asset_of_step.setdefault(event.step_key, asset)
        elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            checked_by_step[event.step_key] = event.event_specific_data.asset_key.to_user_string()
    for event in result.all_events:
        if event.is_step_materialization:
            materialization = event.step_materialization_data.materialization
            key = materialization.asset_key.to_user_string()
            outcome = summary.assets.setdefault(key, AssetOutcome(key))
            outcome.partitions += 1
            # A ranged step reports one materialization per partition, all with the range's metadata.
            row_count = materialization.metadata.get("dagster/row_count")
            if row_count is not None and (event.step_key, key) not in counted:
                outcome.rows += int(row_count.value)
                counted.add((event.step_key, key))
        elif event.is_step_success and event.step_key in checked_by_step:
            key = checked_by_step[event.step_key]
            summary.assets.setdefault(key, AssetOutcome(key)).check_seconds += (
                event.event_specific_data.duration_ms / 1000
            )
        elif event.is_step_success:
            key = first_asset_of_step.get(event.step_key, event.step_key)
            summary.assets.setdefault(key, AssetOutcome(key)).seconds += (
                event.event_specific_data.duration_ms / 1000
            )
        elif event.is_step_failure:
            summary.failed_steps.append(event.step_key)
        elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            outcome = summary.assets.setdefault(
                evaluation.asset_key.to_user_string(), AssetOutcome(evaluation.asset_key.to_user_string())
            )
            if evaluation.passed:
                outcome.checks_passed += 1
            else:
                outcome.checks_failed += 1
                summary.failed_checks.append(
                    f"{outcome.key} {evaluation.check_name} ({evaluation.severity.value})"
                )


def format_summary(summary: BuildSummary) -> str:
    lines = [
        f"{'asset':<42}{'partitions':>11}{'rows':>12}{'seconds':>9}{'checks ok/failed':>18}{'seconds':>9}"
    ]
    for o in summary.assets.values():
        checks = f"{o.checks_passed}/{o.checks_failed}"
        lines.append(
            f"{o.key:<42}{o.partitions:>11,}{o.rows:>12,}{o.seconds:>9.1f}{checks:>18}{o.check_seconds:>9.1f}"
        )
    if summary.check_errors:
        lines.append("failed checks (see their metadata in the UI): " + "; ".join(summary.check_errors))
    if summary.check_warnings:
        lines.append("warnings (see their metadata in the UI): " + "; ".join(summary.check_warnings))
    span = f" over {summary.range[0]}..{summary.range[1]}" if summary.range else ""
    state = "succeeded" if summary.success else f"FAILED at {', '.join(summary.failed_steps)}"
    lines.append(
        f"build {state}{span}: {len(summary.assets)} assets in {len(summary.runs)} run(s), "
        f"{summary.seconds:.1f}s; runs {', '.join(summary.runs)}"
    )
    return "\n".join(lines)
