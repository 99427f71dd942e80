"""Benchmark the platform end to end at a scale (not a test: it prints figures).

    python bench/benchmark.py --scale 1

Stages: generate the Olist files, read them back, derive the change history, load the source as of
the first quarter of history, advance it in steps to the end, load everything at once, then build
bronze, time the source sensor's ticks (first, idle, a day of changes), then silver, then gold over
the whole range (every daily partition), then gold once more
with nothing changed (what a daily run pays for the dimensions and the stale-date check), then the
warehouse sync of every gold table to DuckDB and to BigQuery (the emulator, `make emulator`), whole
and for the last day, and show per-asset times (silver's first step includes starting Spark). Per
stage: wall time, rows, rows/s; at the end the peak memory of this process and the memory of the
embedded PostgreSQL server.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import psutil

from medallion_assets.automation.source_changes import read_cursor, source_changes_sensor, write_cursor
from medallion_assets.build import BuildSummary, build, format_summary
from medallion_assets.partitions import daily_partitions
from medallion_assets.resources.postgres import source_database_url, stop_embedded_server
from medallion_assets.settings import Settings, get_settings
from medallion_assets.sources.generator import generate, write_kaggle_files
from medallion_assets.sources.kaggle_csv import read_directory
from medallion_assets.sources.replay import build_replay
from medallion_assets.sources.source_system import StepReport, advance_source, load_source
from medallion_assets_tests.bigquery_emulator import PROJECT, bigquery_emulator


class Stage:
    rows = 0


@contextmanager
def stage(label: str) -> Iterator[Stage]:
    result = Stage()
    started = time.perf_counter()
    yield result
    seconds = time.perf_counter() - started
    rate = f"{result.rows / seconds:>14,.0f} rows/s" if result.rows else ""
    print(f"{label:<46}{seconds:>9.2f} s{result.rows:>14,} rows{rate}", flush=True)


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
    sensor = source_changes_sensor(daily_partitions(settings), dg.DefaultSensorStatus.STOPPED)

    def tick(label: str, cursor: str | None) -> dg.SensorResult:
        started = time.perf_counter()
        result = sensor.evaluate_tick(dg.build_sensor_context(cursor=cursor))
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--steps", type=int, default=12, help="advance steps from the as-of point to the end")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument(
        "--in-memory-instance",
        action="store_true",
        help="record runs in an in-memory Dagster instance: measures the data work without the "
        "~10 ms per partition and asset that the SQLite instance on disk costs",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="medallion-bench-"))
    # Everything (this script, the build, the resources) reads one environment.
    os.environ.update(MEDALLION_HOME=str(work / "home"), DAGSTER_HOME=str(work / "dagster"))
    for name in ("MEDALLION_LAKE_URI", "MEDALLION_SOURCE_URL"):
        os.environ.pop(name, None)
    settings = get_settings()
    instance = dg.DagsterInstance.ephemeral() if args.in_memory_instance else None
    csv_dir = work / "olist"
    print(f"scale {args.scale:g}, seed {args.seed}, work folder {work}")
    started = time.perf_counter()
    try:
        with stage("generate (in memory)") as s:
            result = generate(args.scale, args.seed)
            s.rows = sum(result.row_counts().values())
        with stage("write Kaggle CSV files") as s:
            write_kaggle_files(result, csv_dir)
            s.rows = sum(result.row_counts().values())
        del result
        print(f"{'':<46}{sum(p.stat().st_size for p in csv_dir.iterdir()) / 2**20:>9.0f} MiB of CSV")
        with stage("read CSV files (typed, validated)") as s:
            tables, _ = read_directory(csv_dir)
            s.rows = sum(t.num_rows for t in tables.values())
        with stage("derive change history (row versions)") as s:
            replay = build_replay(tables, seed=args.seed)
            s.rows = sum(replay.version_counts().values())
        genesis, end = (
            replay.genesis.astype("datetime64[us]").item(),
            replay.end.astype("datetime64[us]").item(),
        )
        del tables, replay
        with stage("start embedded PostgreSQL"):
            url = source_database_url(settings)
        as_of = genesis + (end - genesis) / 4
        with stage(f"source load as of {as_of:%Y-%m-%d}") as s:
            s.rows = changed_rows(load_source(url, csv_dir, as_of=as_of, seed=args.seed))
        with stage(f"source advance to the end in {args.steps} steps") as s:
            step = (end - as_of) / args.steps
            for i in range(1, args.steps + 1):
                s.rows += changed_rows(advance_source(url, to=end if i == args.steps else as_of + step * i))
        with stage("source load of everything at once") as s:
            s.rows = changed_rows(load_source(url, csv_dir, seed=args.seed, replace=True))
        with stage("bronze: build every table over the whole range") as s:
            summary = build("key:bronze/*", echo=lambda _: None, instance=instance)
            s.rows = sum(outcome.rows for outcome in summary.assets.values())
        report(summary)
        sensor_ticks(settings)
        with stage("silver: build every table over the whole range") as s:
            summary = build("key:silver/* or key:quarantine/*", echo=lambda _: None, instance=instance)
            s.rows = sum(o.rows for key, o in summary.assets.items() if key.startswith("silver/"))
        report(summary)
        with stage("gold: dimensions, facts, reports, features") as s:
            summary = build("group:gold", echo=lambda _: None, instance=instance)
            s.rows = sum(o.rows for o in summary.assets.values())
        report(summary)
        with stage("gold again, nothing changed (the daily cost)") as s:
            last_day = summary.range[1] if summary.range else None
            quiet = {"echo": lambda _: None, "instance": instance}
            summary = build("group:gold", start=last_day, end=last_day, **quiet)
            s.rows = sum(o.rows for o in summary.assets.values())
        report(summary)
        warehouse_sync(work, last_day, instance)
        server_mib = embedded_server_mib(settings.embedded_postgres_dir)
        spark_mib = (
            sum(
                child.memory_info().rss
                for child in psutil.Process().children(recursive=True)
                if "java" in child.name()
            )
            / 2**20
        )
    finally:
        stop_embedded_server(settings)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"total {time.perf_counter() - started:.1f} s; peak memory of this process {peak:,.0f} MiB;"
        f" Spark JVM {spark_mib:,.0f} MiB at the end; PostgreSQL server processes {server_mib:,.0f} MiB"
    )


def warehouse_sync(work: Path, last_day: dt.date | None, instance: dg.DagsterInstance | None) -> None:
    """Every gold table to each warehouse over the whole range, then the last day again (a daily
    sync). The build's stale-date check (Spark) is part of it; the per-asset lines show the sync steps."""
    quiet = {"echo": lambda _: None, "instance": instance}
    with contextlib.ExitStack() as stack:
        for name in ("duckdb", "bigquery"):
            if name == "bigquery":
                endpoint = stack.enter_context(bigquery_emulator(work / "bqemulator.log"))
                os.environ.update(
                    MEDALLION_WAREHOUSE="bigquery",
                    MEDALLION_BIGQUERY_PROJECT=PROJECT,
                    MEDALLION_BIGQUERY_ENDPOINT=endpoint,
                )
            with stage(f"warehouse ({name}): every gold table, whole range") as s:
                summary = build("group:warehouse", **quiet)
                s.rows = sum(o.rows for o in summary.assets.values())
            report(summary)
            with stage(f"warehouse ({name}): the last day again") as s:
                summary = build("group:warehouse", start=last_day, end=last_day, **quiet)
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
