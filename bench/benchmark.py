"""Benchmark the platform end to end at a scale (not a test: it prints figures).

    python bench/benchmark.py --scale 1

The issue-16 measure, in the order a user meets it: generate the Olist files, load the source with
the history up to the last day of regular trading (Olist thins out over its last weeks), build every
asset (bronze, silver, quarantine, gold, the DuckDB warehouse, every check) as `medallion build`
does, with its time broken down per layer, checks and what happens outside the steps; the source
sensor's ticks; then one day of source changes carried through gold and the warehouse (what a
daily run pays, in a Spark session of its own as each command and run of the daemon; with --days
N, the last N days of regular trading one after the other, the source loaded N - 1 days shorter,
and their mean and spread: a day's build is mostly fixed cost, and its run-to-run spread needs
several days to see); with --bigquery the sync to the BigQuery
emulator. Next to it, the same gold reports computed by DuckDB in-process from the same CSV files
(bench/duckdb_reference.py: the physical limit of this work on one machine) and the ratio. Per
stage: wall time, rows, rows/s; at the end the peak memory during the builds of this process (it
runs Dagster's runs and steps; the files are generated and loaded in child processes), of the
Spark JVM and of the embedded PostgreSQL. Spark is the default topology (the embedded Spark
Connect server) unless MEDALLION_SPARK=local.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import psutil

from medallion_assets.automation.source_changes import read_cursor, write_cursor
from medallion_assets.build import BuildSummary, build, format_summary
from medallion_assets.definitions import build_definitions, code_location
from medallion_assets.resources.kafka_server import KafkaServer
from medallion_assets.resources.postgres import source_database_url, stop_embedded_server
from medallion_assets.resources.spark import close_connect_sessions
from medallion_assets.resources.spark_server import SparkServer
from medallion_assets.settings import Settings, get_settings
from medallion_assets.specs import TABLES_BY_NAME
from medallion_assets_tests.bigquery_emulator import PROJECT, bigquery_emulator
from olist_source.generator import generate, write_kaggle_files
from olist_source.kaggle_csv import read_directory
from olist_source.replay import regular_trading_end
from olist_source.system import StepReport, advance_source, load_source

sys.path.insert(0, str(Path(__file__).parent))
from duckdb_reference import reference_reports

T = TypeVar("T")


class Stage:
    rows = 0
    seconds = 0.0  # set when the stage ends


@contextmanager
def stage(label: str) -> Iterator[Stage]:
    result = Stage()
    started = time.perf_counter()
    yield result
    seconds = result.seconds = time.perf_counter() - started
    rate = f"{result.rows / seconds:>14,.0f} rows/s" if result.rows else ""
    print(f"{label:<52}{seconds:>9.2f} s{result.rows:>14,} rows{rate}", flush=True)


def report(summary: BuildSummary) -> None:
    """The build's summary, and what its asset checks cost (their steps' time) within it."""
    print("\n".join("    " + line for line in format_summary(summary).splitlines()))
    evaluated = sum(o.checks_passed + o.checks_failed for o in summary.assets.values())
    seconds = sum(o.check_seconds for o in summary.assets.values())
    share = seconds / summary.seconds if summary.seconds else 0
    print(f"    asset checks: {evaluated} evaluations, {seconds:.1f} s of check steps ({share:.0%} of build)")


def sensor_ticks(settings: Settings) -> None:
    """What a tick of the source sensor costs against this source and lake: the first (watermarks
    read from bronze in the lake), an idle one, and one that finds the last day's changes."""
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def("source_changes")
    resources = {key: defs.resources[key] for key in ("source_db", "lakehouse")}

    def tick(label: str, cursor: str | None) -> dg.SensorResult:
        started = time.perf_counter()
        result = sensor.evaluate_tick(dg.build_sensor_context(cursor=cursor, resources=resources))
        requested = sum(len(r.asset_selection or ()) for r in result.run_requests)
        print(f"{label:<46}{time.perf_counter() - started:>9.3f} s{requested:>14} tables requested")
        return result

    first = tick("source sensor: first tick (reads bronze)", None)
    tick("source sensor: tick, nothing new", first.cursor)
    marks = read_cursor(first.cursor) or {}
    day_before = {name: mark - dt.timedelta(days=1) if mark else None for name, mark in marks.items()}
    tick("source sensor: tick, one day of changes", write_cursor(day_before))


def changed_rows(report: StepReport) -> int:
    return sum(c.inserted + c.updated for c in report.changes.values())


def layer_breakdown(summary: BuildSummary) -> None:
    """Where a build's time went: each layer's steps, the checks' steps (their times summed: two
    run at a time), the wall time with a step running, and the rest: the search for stale order
    dates (Spark jobs), the audit (the runs' events read back, rows to PostgreSQL), and Dagster's
    runs (starting them, booking events, Spark's start)."""
    by_layer: dict[str, float] = {}
    for key, outcome in summary.assets.items():
        layer = key.split("/")[0]
        by_layer[layer] = by_layer.get(layer, 0.0) + outcome.seconds
    checks = sum(o.check_seconds for o in summary.assets.values())
    parts = [f"{layer} {seconds:.1f}" for layer, seconds in by_layer.items()]
    summed = sum(by_layer.values()) + checks
    rest = summary.seconds - summary.steps_seconds
    stale, audit = summary.stale_seconds, summary.audit_seconds
    outside = f"stale dates {stale:.1f}, audit {audit:.1f}, runs {rest - stale - audit:.1f}"
    print(
        f"    step time (s): {', '.join(parts)}, checks {checks:.1f}: {summed:.1f} s of steps in"
        f" {summary.steps_seconds:.1f} s with a step running ({summed / max(summary.steps_seconds, 1e-9):.2f}"
        f" at a time); outside steps {rest:.1f} ({outside})"
    )


class PeakMemory:
    """The peak resident memory of this process (the one that runs Dagster's runs and steps), of
    the Spark JVM (the embedded server, or this process's own JVM with MEDALLION_SPARK=local), of
    the embedded PostgreSQL and of the embedded Kafka broker, sampled every 0.2 s from a thread
    while the block runs (a service that did not run is left out of the figures)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.peaks = {"run process": 0.0, "Spark JVM": 0.0, "PostgreSQL": 0.0, "Kafka broker": 0.0}
        self.when: dict[str, dt.datetime] = {}
        self._stop = threading.Event()

    def sample(self) -> None:
        me = psutil.Process()
        server = SparkServer.of(self.settings).status().pid
        jvms = [psutil.Process(server)] if server else []
        jvms += [child for child in me.children(recursive=True) if "java" in child.name()]
        broker = KafkaServer.of(self.settings).status().pid
        now = {
            "run process": me.memory_info().rss / 2**20,
            "Spark JVM": sum(_rss(jvm) for jvm in jvms) / 2**20,
            "PostgreSQL": embedded_server_mib(self.settings.embedded_postgres_dir),
            "Kafka broker": _rss(psutil.Process(broker)) / 2**20 if broker else 0.0,
        }
        for name, mib in now.items():
            if mib > self.peaks[name]:
                self.peaks[name], self.when[name] = mib, dt.datetime.now(dt.UTC)

    def at_peak(self, summary: BuildSummary) -> str:
        """Which steps of this build were running when the run process peaked (if it did then)."""
        moment = self.when.get("run process")
        if moment is None:
            return "no sample"
        peak = moment.timestamp()
        running, before = [], (0.0, "")
        with dg.DagsterInstance.get() as instance:
            for run in summary.runs:
                started: dict[str, float] = {}
                for record in instance.all_logs(run, of_type=set(STEP_EVENTS)):
                    step, at = record.step_key, record.timestamp
                    if at <= peak and at > before[0]:
                        before = (at, f"{record.dagster_event_type.value} {step}")
                    if record.dagster_event_type == dg.DagsterEventType.STEP_START:
                        started[step] = at
                    elif step in started and started[step] <= peak <= at:
                        running.append(step)
        if running:
            return f"during {', '.join(running)}"
        if not before[1]:
            return "outside this build (the peak came earlier)"
        return f"outside the steps, {peak - before[0]:.1f} s after {before[1]}"

    def __enter__(self) -> PeakMemory:
        def loop() -> None:
            while not self._stop.wait(0.2):
                with contextlib.suppress(psutil.Error):
                    self.sample()

        threading.Thread(target=loop, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def __str__(self) -> str:
        return "; ".join(f"{name} {mib:,.0f} MiB" for name, mib in self.peaks.items() if mib)


STEP_EVENTS = (
    dg.DagsterEventType.STEP_START,
    dg.DagsterEventType.STEP_SUCCESS,
    dg.DagsterEventType.STEP_FAILURE,
)


def _rss(process: psutil.Process) -> int:
    with contextlib.suppress(psutil.Error):
        return process.memory_info().rss
    return 0


def prepare_files(scale: float, seed: int, csv_dir: Path) -> int:
    """Generate and write the Kaggle files (in a child process: the run process's memory is the
    build's alone)."""
    result = generate(scale, seed)
    write_kaggle_files(result, csv_dir)
    return sum(result.row_counts().values())


def regular_end_of(csv_dir: Path) -> Any:
    return regular_trading_end(read_directory(csv_dir, tables=[TABLES_BY_NAME["orders"]])[0]["orders"])


def in_child(function: Callable[..., T], *args: Any) -> T:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as child:
        return child.submit(function, *args).result()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--bigquery", action="store_true", help="also sync to BigQuery (the emulator)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--days", type=int, default=1, help="daily builds after the full build")
    args = parser.parse_args()
    if args.days < 1:
        parser.error("--days: at least one day")

    work = Path(tempfile.mkdtemp(prefix="medallion-bench-"))
    # Everything (this script, the build, the resources) reads one environment; Spark is the
    # default topology (the embedded Spark Connect server, under the work folder) unless
    # MEDALLION_SPARK=local is set.
    os.environ.update(MEDALLION_HOME=str(work / "home"), DAGSTER_HOME=str(work / "dagster"))
    for name in ("MEDALLION_LAKE_URI", "MEDALLION_SOURCE_URL", "DAGSTER_PG_URL", "SPARK_REMOTE"):
        os.environ.pop(name, None)
    settings = get_settings()
    csv_dir = work / "olist"
    quiet = {"echo": lambda _: None, "show_progress": False}
    print(f"scale {args.scale:g}, seed {args.seed}, work folder {work}, Spark {settings.spark_mode}")
    started = time.perf_counter()
    memory = PeakMemory(settings)
    try:
        with stage("generate and write the Kaggle CSV files") as s:
            s.rows = in_child(prepare_files, args.scale, args.seed, csv_dir)
        print(f"{'':<52}{sum(p.stat().st_size for p in csv_dir.iterdir()) / 2**20:>9.0f} MiB of CSV")
        # As the quickstart, up to the end of regular trading, but for its last days: the daily runs'
        # (the days after it are in Olist's thin tail, not days of a live shop).
        regular_end = in_child(regular_end_of, csv_dir)  # the orders file read elsewhere too
        as_of = regular_end.astype("datetime64[us]").item() - dt.timedelta(days=args.days)
        with stage("start embedded PostgreSQL"):
            url = source_database_url(settings)
        full = time.perf_counter()
        with stage(f"source load (history up to {as_of:%Y-%m-%d})") as s:
            s.rows = changed_rows(
                in_child(functools.partial(load_source, url, csv_dir, as_of, seed=args.seed))
            )
        with memory, stage("build: every layer, check and the DuckDB warehouse") as s:
            summary = build(code_location(), **quiet)
            s.rows = sum(outcome.rows for outcome in summary.assets.values())
        full_seconds = time.perf_counter() - full
        report(summary)
        layer_breakdown(summary)
        print(f"    run process peak so far {memory.peaks['run process']:,.0f} MiB {memory.at_peak(summary)}")
        sensor_ticks(settings)
        day_seconds = []
        for n in range(args.days):
            day = as_of.date() + dt.timedelta(days=n)
            # Each day in a Spark session of its own, as each command and each run of the daemon is.
            close_connect_sessions()
            with memory, stage(f"one day ({day}) of changes: source to warehouse") as s:
                s.rows = changed_rows(advance_source(url, to=as_of + dt.timedelta(days=n + 1)))
                summary = build(code_location(), start=day, end=day, **quiet)
            day_seconds.append(s.seconds)
            report(summary)
            layer_breakdown(summary)
            peak = memory.peaks["run process"]
            print(f"    run process peak so far {peak:,.0f} MiB {memory.at_peak(summary)}")
        if len(day_seconds) > 1:
            print(
                f"{len(day_seconds)} days: mean {statistics.mean(day_seconds):.1f} s, median"
                f" {statistics.median(day_seconds):.1f} s, {min(day_seconds):.1f}-{max(day_seconds):.1f} s"
            )
        if args.bigquery:
            warehouse_sync(work, day)
        with stage("DuckDB reference: the gold reports from the CSV files") as s:
            reference = reference_reports(csv_dir)
            s.rows = sum(reference.rows.values())
        print(
            f"full build (source load + build) {full_seconds:.1f} s; DuckDB reference "
            f"{reference.seconds:.2f} s; ratio {full_seconds / reference.seconds:,.0f}x"
        )
    finally:
        SparkServer.of(settings).stop()
        stop_embedded_server(settings)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"total {time.perf_counter() - started:.1f} s; peak memory during the builds: {memory}")


def warehouse_sync(work: Path, last_day: dt.date) -> None:
    """Every gold table to each warehouse over the whole range, then the last day again (a daily
    sync). The build's stale-date check (Spark) is part of it; the per-asset lines show the sync steps."""
    quiet = {"echo": lambda _: None, "show_progress": False}
    with contextlib.ExitStack() as stack:
        for name in ("bigquery",):
            if name == "bigquery":
                endpoint = stack.enter_context(bigquery_emulator(work / "bqemulator.log"))
                os.environ.update(
                    MEDALLION_WAREHOUSE="bigquery",
                    MEDALLION_BIGQUERY_PROJECT=PROJECT,
                    MEDALLION_BIGQUERY_ENDPOINT=endpoint,
                )
            with stage(f"warehouse ({name}): every gold table, whole range") as s:
                summary = build(code_location(), "group:warehouse", **quiet)
                s.rows = sum(o.rows for o in summary.assets.values())
            report(summary)
            with stage(f"warehouse ({name}): the last day again") as s:
                summary = build(code_location(), "group:warehouse", start=last_day, end=last_day, **quiet)
                s.rows = sum(o.rows for o in summary.assets.values())
            report(summary)
    for name in ("MEDALLION_WAREHOUSE", "MEDALLION_BIGQUERY_PROJECT", "MEDALLION_BIGQUERY_ENDPOINT"):
        os.environ.pop(name, None)


def embedded_server_mib(pgdata: Path) -> float:
    total = 0
    for proc in psutil.process_iter(["name", "cmdline", "memory_info"]):
        if proc.info["name"] == "postgres" and any(
            str(pgdata) in part for part in proc.info["cmdline"] or []
        ):
            total += proc.info["memory_info"].rss
            total += sum(child.memory_info().rss for child in proc.children(recursive=True))
    return total / 2**20


if __name__ == "__main__":
    main()
