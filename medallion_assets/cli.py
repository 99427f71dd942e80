"""The `medallion` command: generate Olist data, run the live source system, and the quick start."""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import adbc_driver_postgresql.dbapi as adbc_dbapi
import click
import dagster as dg
import pandas as pd
import pyarrow as pa
from pyspark.sql import SparkSession

from medallion_assets.build import build as run_build
from medallion_assets.build import format_summary
from medallion_assets.definitions import code_location
from medallion_assets.interface.report import write_report
from medallion_assets.maintenance import operations as lake_ops
from medallion_assets.resources.class_archive import ClassArchiveError, write_class_archive
from medallion_assets.resources.delta_lake import Lake, LakeError
from medallion_assets.resources.instance import ensure_dagster_home
from medallion_assets.resources.kafka import KafkaError, KafkaResource
from medallion_assets.resources.kafka_server import KafkaServer, KafkaServerError
from medallion_assets.resources.postgres import (
    SourceUnavailableError,
    connect,
    redact,
    source_database_url,
    stop_embedded_server,
)
from medallion_assets.resources.reports import ReportFolder
from medallion_assets.resources.spark import SparkResource
from medallion_assets.resources.spark_server import (
    LocalSpark,
    SparkJarsMissingError,
    SparkServer,
    SparkServerError,
)
from medallion_assets.resources.warehouse import WarehouseError
from medallion_assets.settings import get_settings
from medallion_assets.sources.olist_db import SourceStateError
from medallion_assets.specs import GOLD_REPORTS, LakeTable
from medallion_assets.specs.events import CLICKSTREAM, REVIEW_EVENTS
from medallion_assets.warehouse.assets import warehouse_for
from olist_source.events import clickstream_events, load_sessions, publish, review_events
from olist_source.generator import generate, write_kaggle_files
from olist_source.kaggle_csv import CsvLoadError
from olist_source.system import StepReport, advance_source, load_source, source_status

USER_ERRORS = (
    CsvLoadError,
    SourceUnavailableError,
    SourceStateError,
    LakeError,
    WarehouseError,
    SparkJarsMissingError,
    SparkServerError,
    ClassArchiveError,
    KafkaServerError,
    KafkaError,
    ValueError,
)


class MomentType(click.ParamType):
    """A moment in Olist's zone-less local time: YYYY-MM-DD (midnight) or YYYY-MM-DD HH:MM[:SS]."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> dt.datetime:
        if isinstance(value, dt.datetime):
            return value
        try:
            return dt.datetime.fromisoformat(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is not a time like 2017-06-01 or '2017-06-01 14:30:00'", param, ctx)


MOMENT = MomentType()


def user_errors(command: Callable) -> Callable:
    """Known failures (bad files, source down, wrong state) end with a clear message, not a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except USER_ERRORS as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


@click.group()
def main() -> None:
    """medallion: the Olist medallion lakehouse on Dagster."""


@main.command("generate")
@click.option(
    "--scale", type=float, default=1.0, show_default=True, help="1 is about Olist's size (~100k orders)."
)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@user_errors
def generate_command(scale: float, seed: int, out_dir: Path) -> None:
    """Write the nine Olist tables as Kaggle-format CSV files."""
    _generate(scale, seed, out_dir)


@main.group("source")
def source() -> None:
    """The live PostgreSQL source system (MEDALLION_SOURCE_URL, or embedded under MEDALLION_HOME)."""


@source.command("load")
@click.option(
    "--csv-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder with the nine Olist CSV files (generated, or Kaggle's).",
)
@click.option(
    "--as-of", type=MOMENT, default=None, help="Load what the business knew then. Default: everything."
)
@click.option(
    "--attribute-changes",
    type=click.Choice(["synthetic", "none"]),
    default="synthetic",
    show_default=True,
    help="Deterministic address/category/weight changes, so history exists.",
)
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of the attribute changes.")
@click.option("--on-bad-rows", type=click.Choice(["error", "skip"]), default="error", show_default=True)
@click.option("--replace", is_flag=True, help="Replace a source loaded before.")
@user_errors
def source_load(
    csv_dir: Path,
    as_of: dt.datetime | None,
    attribute_changes: str,
    seed: int,
    on_bad_rows: str,
    replace: bool,
) -> None:
    """Create the olist schema and load it as of a time."""
    url = _source_url()
    started = time.perf_counter()
    report = load_source(
        url,
        csv_dir,
        as_of,
        attribute_changes,  # type: ignore[arg-type]
        seed,
        on_bad_rows,  # type: ignore[arg-type]
        replace,
        progress=click.echo,
    )
    _print_step(f"loaded the source as of {report.as_of}", report, time.perf_counter() - started)


@source.command("advance")
@click.option("--to", "to", type=MOMENT, default=None, help="New source time. Default: the end of history.")
@click.option("--days", type=float, default=None, help="Advance by this many days instead.")
@click.option(
    "--events/--no-events",
    default=True,
    help="Also publish the web shop's events of the stretch to Kafka (default: yes).",
)
@user_errors
def source_advance(to: dt.datetime | None, days: float | None, events: bool) -> None:
    """Apply every change between the source clock and --to, in time order, and publish the web
    shop's events of that stretch (the reviews created and answered) to Kafka."""
    if to is not None and days is not None:
        raise click.UsageError("give --to or --days, not both")
    started = time.perf_counter()
    url = _source_url()
    report = advance_source(url, to, days)
    _print_step(f"advanced the source to {report.as_of}", report, time.perf_counter() - started)
    if events and report.previous is not None and report.as_of > report.previous:
        kafka = KafkaResource()
        for stream, events_of in ((REVIEW_EVENTS, review_events), (CLICKSTREAM, clickstream_events)):
            started = time.perf_counter()
            kafka.ensure_topic(stream.topic, stream.partitions)
            sent = publish(kafka.producer(), stream, events_of(url, report.previous, report.as_of))
            seconds = time.perf_counter() - started
            click.echo(f"published {sent:,} event(s) to {stream.topic} ({seconds:.1f}s)")


@main.group()
def events() -> None:
    """The web shop's events on Kafka."""


@events.command("produce")
@click.option("--rate", type=float, default=1000.0, show_default=True, help="Events per second.")
@click.option("--duration", type=float, default=10.0, show_default=True, help="Seconds to produce for.")
@click.option("--seed", type=int, default=42, show_default=True)
@user_errors
def events_produce(rate: float, duration: float, seed: int) -> None:
    """A load generator: shopping sessions (no checkout) on the clickstream topic at --rate events
    a second for --duration seconds, event times from the source clock on, products from the source."""
    if rate <= 0 or duration <= 0:
        raise click.UsageError("--rate and --duration must be positive")
    url = _source_url()
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT product_id FROM olist.products ORDER BY product_id")
        products = [product_id for (product_id,) in cur.fetchall()]
    if not products:
        raise click.UsageError("the source has no products: run `medallion source load` first")
    kafka = KafkaResource()
    kafka.ensure_topic(CLICKSTREAM.topic, CLICKSTREAM.partitions)
    sessions = load_sessions(seed, source_status(url).as_of, products)
    producer, started, sent = kafka.producer(), time.perf_counter(), 0
    total = int(rate * duration)
    while sent < total:  # paced: each tenth of a second what is due by then, every delivery checked
        due = min(total, int((time.perf_counter() - started) * rate) + 1)
        if due > sent:
            sent += publish(producer, CLICKSTREAM, (next(sessions) for _ in range(due - sent)))
        time.sleep(max(0.0, min(0.1, started + sent / rate - time.perf_counter())))
    seconds = time.perf_counter() - started
    click.echo(f"produced {sent:,} clickstream event(s) to {CLICKSTREAM.topic} in {seconds:.1f}s")


@source.command("status")
@user_errors
def source_status_command() -> None:
    """Print the source clock and the row count of every table."""
    status = source_status(_source_url())
    click.echo(f"source clock      {status.as_of}   (history {status.genesis} .. {status.end})")
    click.echo(f"loaded from       {status.loaded_from}   attribute changes: {status.attribute_changes}")
    click.echo(f"{'table':<36}{'rows':>12}{'pending':>12}   latest updated_at")
    for name, rows in status.rows.items():
        click.echo(
            f"{name:<36}{rows:>12,}{status.pending_versions[name]:>12,}   {status.latest_update[name]}"
        )


@source.command("sql")
@click.argument("query")
@user_errors
def source_sql(query: str) -> None:
    """Run one SQL statement on the source and print its result (read-only transaction)."""
    with connect(_source_url()) as conn, conn.cursor() as cur:
        cur.execute("SET TRANSACTION READ ONLY")
        try:
            cur.execute(query)
        except adbc_dbapi.Error as exc:
            raise click.ClickException(str(exc).strip().splitlines()[0]) from None
        table = cur.fetch_arrow_table()
    _print_table(table)


def _print_table(table: pa.Table) -> None:
    with pd.option_context("display.max_rows", 200, "display.width", 200, "display.max_columns", 30):
        click.echo(table.to_pandas().to_string(index=False))


@main.group("warehouse")
def warehouse() -> None:
    """The warehouse gold is synced to (MEDALLION_WAREHOUSE: the DuckDB file or BigQuery)."""


@warehouse.command("sql")
@click.argument("query")
@user_errors
def warehouse_sql(query: str) -> None:
    """Run one SQL statement on the warehouse and print its result (DuckDB: a read-only connection)."""
    _print_table(warehouse_for(get_settings()).query(query))


@source.command("stop")
def source_stop() -> None:
    """Stop the embedded PostgreSQL server (it keeps running between commands)."""
    stopped = stop_embedded_server(get_settings())
    click.echo("embedded PostgreSQL stopped" if stopped else "no embedded PostgreSQL was running")


@main.group("spark")
def spark() -> None:
    """The embedded Spark Connect server (under MEDALLION_HOME; it keeps running between commands)."""


@spark.command("start")
@user_errors
def spark_start() -> None:
    """Start the embedded Spark Connect server (if it is not running) and print its URL."""
    server = SparkServer.of(get_settings())
    started = time.perf_counter()
    url = server.start()
    click.echo(f"Spark Connect server at {url} ({time.perf_counter() - started:.1f}s); SPARK_REMOTE={url}")


@spark.command("status")
def spark_status() -> None:
    """Whether the embedded Spark Connect server runs, its URL, process and log."""
    status = SparkServer.of(get_settings()).status()
    state = f"running at {status.url} (pid {status.pid})" if status.running else "not running"
    click.echo(f"Spark Connect server {state}; log {status.log or '-'}")


@spark.command("archive")
@user_errors
def spark_archive() -> None:
    """Record the class data sharing archive our Spark JVMs start from (`make install` runs this)."""
    started = time.perf_counter()
    path = write_class_archive(LocalSpark.of(get_settings()))
    size = path.stat().st_size / 2**20
    click.echo(f"class archive {path} ({size:.0f} MiB) in {time.perf_counter() - started:.1f}s")


@spark.command("stop")
def spark_stop() -> None:
    """Stop the embedded Spark Connect server."""
    stopped = SparkServer.of(get_settings()).stop()
    click.echo("Spark Connect server stopped" if stopped else "no Spark Connect server was running")


@main.group("kafka")
def kafka() -> None:
    """The embedded Kafka broker (under MEDALLION_HOME; it keeps running between commands)."""


@kafka.command("start")
@user_errors
def kafka_start() -> None:
    """Start the embedded Kafka broker (if it is not running) and print its bootstrap address."""
    started = time.perf_counter()
    bootstrap = KafkaServer.of(get_settings()).start()
    click.echo(f"Kafka broker at {bootstrap} ({time.perf_counter() - started:.1f}s)")


@kafka.command("status")
def kafka_status() -> None:
    """Whether the embedded Kafka broker runs, its address, process and log."""
    status = KafkaServer.of(get_settings()).status()
    state = f"running at {status.bootstrap} (pid {status.pid})" if status.running else "not running"
    click.echo(f"Kafka broker {state}; log {status.log}")


@kafka.command("stop")
def kafka_stop() -> None:
    """Stop the embedded Kafka broker (a clean shutdown; its topics stay under MEDALLION_HOME)."""
    stopped = KafkaServer.of(get_settings()).stop()
    click.echo("Kafka broker stopped" if stopped else "no Kafka broker was running")


@main.group("lake")
def lake() -> None:
    """Time travel on the lake's Delta tables. TABLE is layer/name, e.g. gold/fact_orders."""


class LakeTableType(click.ParamType):
    """A lake table by its layer/name; an unknown name lists the known ones."""

    name = "TABLE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> LakeTable:
        if isinstance(value, LakeTable):
            return value
        try:
            return lake_ops.lake_table(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


LAKE_TABLE = LakeTableType()


def _lake_and_spark(table: LakeTable) -> tuple[Lake, SparkSession]:
    """The lake and a Spark session, started only once the table is known to exist (~10 s locally)."""
    lake = Lake.from_settings(get_settings())
    lake_ops.opened(lake, dg.AssetKey(table.asset_path))
    return lake, SparkResource().session()


@lake.command("history")
@click.argument("table", type=LAKE_TABLE)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Latest versions.")
@user_errors
def lake_history(table: LakeTable, limit: int) -> None:
    """The table's versions, newest first: time (UTC), operation, its key parameters and metrics."""
    commits = lake_ops.history(*_lake_and_spark(table), dg.AssetKey(table.asset_path), limit)
    click.echo(f"{'version':>8}  {'timestamp (UTC)':<23}  {'operation':<16}  details")
    for commit in commits:
        click.echo(f"{commit.version:>8}  {commit.timestamp:<23}  {commit.operation:<16}  {commit.details()}")


@lake.command("show")
@click.argument("table", type=LAKE_TABLE)
@click.option("--version", type=click.IntRange(min=0), default=None, help="The table as of this version.")
@click.option(
    "--as-of",
    default=None,
    help="The table as of this time (UTC unless it names a zone), e.g. '2026-01-31 12:00:00'.",
)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Rows printed.")
@user_errors
def lake_show(table: LakeTable, version: int | None, as_of: str | None, limit: int) -> None:
    """Rows of the table at a version or a time (default: the latest version)."""
    if version is not None and as_of is not None:
        raise click.UsageError("give --version or --as-of, not both")
    moment = None
    if as_of is not None:
        try:
            moment = dt.datetime.fromisoformat(as_of.strip())
        except ValueError:
            raise click.BadParameter(f"{as_of!r} is not a time like '2026-01-31 12:00:00'") from None
    rows = lake_ops.show(*_lake_and_spark(table), dg.AssetKey(table.asset_path), version, moment, limit)
    when = "the latest version"
    if version is not None:
        when = f"version {version}"
    elif moment is not None:
        when = f"{lake_ops.as_of_text(moment)} UTC"
    more = f" (the first {limit}: --limit shows more)" if rows.num_rows == limit else ""
    click.echo(f"{'/'.join(table.asset_path)} at {when}: {rows.num_rows} row(s){more}")
    if rows.num_rows:
        _print_table(rows)


@lake.command("restore")
@click.argument("table", type=LAKE_TABLE)
@click.option("--version", type=click.IntRange(min=0), required=True, help="The version to go back to.")
@user_errors
def lake_restore(table: LakeTable, version: int) -> None:
    """Make an earlier version the table's latest (a new RESTORE version; history is kept). Refused
    while a run of the Dagster instance (DAGSTER_HOME) writes the table."""
    ensure_dagster_home(get_settings())
    key = dg.AssetKey(table.asset_path)
    with dg.DagsterInstance.get() as instance:
        lake_ops.refuse_while_written(instance, key)  # before Spark starts; restore checks again
        restored = lake_ops.restore(*_lake_and_spark(table), instance, key, version)
    metrics = restored.metrics
    click.echo(
        f"restored {'/'.join(table.asset_path)} to version {version}: latest version {restored.before} ->"
        f" {restored.after} ({metrics.get('num_restored_files', 0)} file(s) restored,"
        f" {metrics.get('num_removed_files', 0)} removed)"
    )


@main.command("quickstart")
@click.option("--scale", type=float, default=0.1, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option(
    "--csv-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Use these Olist CSV files instead of generating them.",
)
@user_errors
def quickstart(scale: float, seed: int, csv_dir: Path | None) -> None:
    """The whole platform on embedded defaults: Olist data, a seeded live source, and where to look."""
    # The Spark server it starts makes one small build: the JIT's quick tier only (spark_server.py).
    os.environ.setdefault("MEDALLION_SPARK_JIT", "quick")
    settings = get_settings()
    started = time.perf_counter()
    if csv_dir is None:
        csv_dir = settings.home / "olist" / f"scale-{scale:g}-seed-{seed}"
        _generate(scale, seed, csv_dir)
    url = _source_url()
    # Up to the last day of regular trading: the thin weeks after it are for `source advance`.
    click.echo("loading the source")
    report = load_source(
        url, csv_dir, seed=seed, replace=True, regular_trading_only=True, progress=click.echo
    )
    _print_step(f"loaded the source as of {report.as_of}", report, time.perf_counter() - started)
    status = source_status(url)
    pending = sum(status.pending_versions.values())
    click.echo(
        f"  the rest of the history, {status.as_of:%Y-%m-%d}..{status.end:%Y-%m-%d} (its last orders'"
        f" deliveries and reviews: {pending:,} changes), comes with `medallion source advance`"
    )
    click.echo("\nbuilding every asset over the whole history")
    summary = run_build(code_location(), echo=click.echo)
    click.echo(format_summary(summary))
    outcome = "done" if summary.success else "FAILED"
    click.echo(f"\nquickstart {outcome} in {time.perf_counter() - started:.0f}s.")
    click.echo("Where to look:")
    click.echo(f"  Olist CSV files     {csv_dir}")
    click.echo(f"  source database     {redact(url)}  (schema olist; medallion source status / sql)")
    click.echo(f"  lake (Delta tables) {settings.lake_uri}/<layer>/<table>  (medallion lake history TABLE)")
    spark = SparkServer.of(settings).status()
    if spark.running:
        click.echo(f"  Spark Connect       {spark.url}, log {spark.log}  (medallion spark status / stop)")
    reports = "(daily_order_report|daily_category_report|customer_rfm)"
    click.echo(f"  gold reports        {settings.lake_uri}/gold/{reports}  (README: query the gold tables)")
    click.echo(f"  Dagster UI          .venv/bin/medallion dev  (runs in {os.environ['DAGSTER_HOME']})")
    click.echo("  automation          switch on source_changes, event_streams, propagate_downstream,")
    click.echo("                      daily_catch_up in the UI (or MEDALLION_AUTOMATION=true medallion dev),")
    click.echo("                      then: medallion source advance --days 1 (rows and the shop's events)")
    click.echo("  audit log           medallion source sql 'select * from audit.run_logs'")
    report = warehouse_for(settings).table_ref(GOLD_REPORTS["daily_order_report"])
    where = settings.duckdb_path if settings.warehouse == "duckdb" else "BigQuery"
    click.echo(f"  warehouse           {where}  (every gold table; README: The warehouse)")
    click.echo(
        f"                      medallion warehouse sql 'select * from {report} order by 1 desc limit 5'"
    )
    click.echo(
        "                      analytics views: analytics.daily_revenue, category_daily, customer_segments,"
    )
    click.echo("                      delivery_performance, seller_scorecard (README: The interface layer)")
    page = ReportFolder.of(settings).page()
    click.echo(f"  report (HTML)       {page}  (charts; medallion report writes it again)")
    passed = sum(o.checks_passed for o in summary.assets.values())
    click.echo(
        f"  asset checks        {passed} passed, {len(summary.check_errors)} failed, "
        f"{len(summary.check_warnings)} warning(s) (listed above; "
        "each asset's Checks tab in the UI; README: Data quality)"
    )
    if not summary.success:
        raise SystemExit(1)


def _generate(scale: float, seed: int, out_dir: Path) -> None:
    started = time.perf_counter()
    result = generate(scale, seed)
    write_kaggle_files(result, out_dir)
    click.echo(
        f"generated Olist scale {scale:g} seed {seed} into {out_dir} in {time.perf_counter() - started:.1f}s"
    )
    for name, rows in result.row_counts().items():
        click.echo(f"  {name:<36}{rows:>12,}")


def _source_url() -> str:
    return source_database_url(get_settings())


def _print_step(headline: str, report: StepReport, seconds: float) -> None:
    click.echo(f"{headline} in {seconds:.1f}s")
    for file in report.files:
        skipped = f"   {len(file.bad_rows)} bad rows skipped" if file.bad_rows else ""
        click.echo(f"  read {file.file}: {file.rows_loaded:,} rows{skipped}")
        for bad in file.bad_rows[:20]:
            click.echo(f"    {bad}")
    click.echo(f"  {'table':<36}{'inserted':>12}{'updated':>12}")
    for name, change in report.changes.items():
        click.echo(f"  {name:<36}{change.inserted:>12,}{change.updated:>12,}")
    if report.attribute_changes:
        click.echo(f"  synthetic attribute changes recorded: {report.attribute_changes:,}")


@main.command("build")
@click.option(
    "--select",
    "selection",
    default=None,
    help="Dagster asset selection, e.g. 'bronze/*' or 'key:bronze/orders'.",
)
@click.option(
    "--from",
    "start",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="First day (default: the first day the source holds).",
)
@click.option(
    "--to",
    "end",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="Last day, included (default: the last day the source holds).",
)
@user_errors
def build_command(selection: str | None, start: dt.datetime | None, end: dt.datetime | None) -> None:
    """Materialize the selection (default: everything) over the range, in dependency order, in one process."""
    summary = run_build(
        code_location(),
        selection,
        start.date() if start else None,
        end.date() if end else None,
        echo=click.echo,
    )
    click.echo(format_summary(summary))
    if not summary.success:
        raise SystemExit(1)


@main.command("report")
@user_errors
def report_command() -> None:
    """Write the HTML report (charts of the warehouse's analytics views, the checks' latest outcomes,
    the quarantine) to $MEDALLION_HOME/reports, as the interface/olist_report asset does."""
    settings = get_settings()
    ensure_dagster_home(settings)
    definitions = code_location(settings)
    wanted = {key: definitions.resources[key] for key in ("spark", "lakehouse", "warehouse", "reports")}
    with dg.build_resources(wanted) as resources, dg.DagsterInstance.get() as instance:
        page = resources.reports.page()
        figures = write_report(
            page,
            resources.warehouse,
            instance,
            definitions.resolve_asset_graph().asset_check_keys,
            resources.spark,
            resources.lakehouse.lake(),
        )
    click.echo(f"report: {page} ({len(figures.daily)} order days; open it in a browser, it works offline)")


@main.command("dev")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the UI listens on.")
@click.option("--port", default=3000, show_default=True, help="Port of the UI.")
@user_errors
def dev_command(host: str, port: int) -> None:
    """Start the Dagster UI and daemon (`dagster dev`) on this code location, with the instance of
    DAGSTER_HOME (default $MEDALLION_HOME/dagster): SQLite, or PostgreSQL when DAGSTER_PG_URL is set."""
    home = ensure_dagster_home(get_settings())
    click.echo(f"DAGSTER_HOME={home}; UI at http://{host}:{port}")
    dagster = Path(sys.executable).with_name("dagster")
    os.execv(dagster, [str(dagster), "dev", "-m", "medallion_assets", "-h", host, "-p", str(port)])
