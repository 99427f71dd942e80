"""Benchmark the stream lane (not a test: it prints figures).

    python bench/streams.py --events 100000 1000000

For each size, N clickstream events (shopping sessions of one day, as the load generator makes
them) are produced to the embedded Kafka broker, landed in bronze by the stream asset (Spark
Structured Streaming, availableNow), then kept once per event id in silver/clickstream for that
day: wall time and events/s of each stage. Then, with the services warm, the latency of one
session from its produce to bronze, to silver and to gold (fact_clickstream and
daily_funnel_report of its day), one run each as the sensor and propagation would launch them
(less their polling intervals, 30 s and 15 s; the checks, which run after the write, left out).
The lake holds no batch lane: the dimensions are empty tables, so the events' members are
unknown to gold (key -1), which costs gold the same join. At the end the peak resident memory of
this process (it runs the Dagster steps), of the Spark JVM and of the broker. Spark is the
embedded Spark Connect server unless MEDALLION_SPARK=local.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from medallion_assets.bronze.streams import stream_assets
from medallion_assets.gold.assets import gold_assets
from medallion_assets.resources.delta_lake import DeltaLakeIOManager, LakeResource
from medallion_assets.resources.kafka import KafkaResource
from medallion_assets.resources.kafka_server import KafkaServer
from medallion_assets.resources.spark import SparkResource
from medallion_assets.resources.spark_server import SparkServer
from medallion_assets.settings import get_settings
from medallion_assets.silver.events import event_silver_assets
from medallion_assets.specs import GOLD_DIMENSIONS
from medallion_assets.specs.events import CLICKSTREAM
from olist_source.events import publish, shopping_session

sys.path.insert(0, str(Path(__file__).parent))
from benchmark import PeakMemory, stage

FIRST_DAY = dt.date(2018, 1, 1)
PARTITIONS = dg.DailyPartitionsDefinition(FIRST_DAY.isoformat())


def sessions_of_day(day: dt.date, events: int, seed: int) -> Iterator[dict]:
    """About `events` events of sessions ending over the day (a tenth of them with an order)."""
    rng = random.Random(f"bench|{seed}|{day}")
    products = [f"{rng.getrandbits(128):032x}" for _ in range(3_000)]
    made = 0
    while made < events:
        ends = dt.datetime.combine(day, dt.time(1)) + dt.timedelta(seconds=rng.uniform(0, 22 * 3600))
        order = f"{rng.getrandbits(128):032x}" if rng.random() < 0.1 else None
        session = shopping_session(rng, ends, None, rng.sample(products, rng.randint(1, 4)), order)
        made += len(session)
        yield from session


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="medallion-bench-streams-"))
    os.environ.update(
        MEDALLION_HOME=str(work / "home"),
        DAGSTER_HOME=str(work / "dagster"),
        MEDALLION_LAKE_URI=str(work / "lake"),
    )
    for name in ("MEDALLION_KAFKA_BOOTSTRAP", "SPARK_REMOTE"):
        os.environ.pop(name, None)
    (work / "dagster").mkdir()
    (work / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    settings = get_settings()
    print(f"stream lane: {args.events} events, work folder {work}, Spark {settings.spark_mode}")
    land = next(a for a in stream_assets() if a.node_def.name == f"bronze_{CLICKSTREAM.name}")
    (silver,) = event_silver_assets(PARTITIONS)
    wanted = {dg.AssetKey(["gold", n]) for n in ("fact_clickstream", "daily_funnel_report")}
    gold = [a for a in gold_assets(PARTITIONS) if set(a.keys) <= wanted]
    kafka, spark, lakehouse = KafkaResource(), SparkResource(), LakeResource()
    lake = DeltaLakeIOManager(spark=spark, lakehouse=lakehouse)
    resources = {"kafka": kafka, "spark": spark, "lakehouse": lakehouse, "lake": lake}
    started = time.perf_counter()
    try:
        with stage("start the broker and Spark, create the topic"):
            kafka.ensure_topic(CLICKSTREAM.topic, CLICKSTREAM.partitions)
            for name in ("dim_customer", "dim_product"):  # no batch lane here: empty dimensions
                columns = ", ".join(f"`{c.name}` {c.type_names.spark}" for c in GOLD_DIMENSIONS[name].columns)
                empty = spark.session().createDataFrame([], columns)
                empty.write.format("delta").save(lakehouse.lake().uri(dg.AssetKey(["gold", name])))
        with dg.DagsterInstance.get() as instance, PeakMemory(settings) as peaks:

            def run(assets: list[dg.AssetsDefinition], day: str | None = None) -> dg.ExecuteInProcessResult:
                quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
                return dg.materialize(
                    assets, instance=instance, resources=resources, partition_key=day, run_config=quiet
                )

            for n, size in enumerate(args.events):
                day = FIRST_DAY + dt.timedelta(days=n)
                with stage(f"produce {size:,} events ({day})") as s:
                    s.rows = publish(kafka.producer(), CLICKSTREAM, sessions_of_day(day, size, args.seed))
                with stage("  Kafka -> bronze/clickstream (Structured Streaming)") as s:
                    result = run([land])
                    s.rows = _metadata(result, "bronze")["rows_landed"]
                with stage(f"  bronze -> silver/clickstream ({day})") as s:
                    run([silver], str(day))
                    s.rows = _metadata(instance, "silver")["rows_read"]
            day = FIRST_DAY + dt.timedelta(days=len(args.events))
            session = list(sessions_of_day(day, 1, args.seed))
            produced = time.perf_counter()
            publish(kafka.producer(), CLICKSTREAM, session)
            run([land])
            in_bronze = time.perf_counter() - produced
            run([silver], str(day))
            in_silver = time.perf_counter() - produced
            run(gold, str(day))
            in_gold = time.perf_counter() - produced
            funnel = _metadata(instance, "gold", "daily_funnel_report")["dagster/row_count"]
            assert funnel == 1, funnel  # the session's day reached the report
            print(
                f"latency of one session ({len(session)} events), services warm: produce -> bronze "
                f"{in_bronze:.1f} s, -> silver {in_silver:.1f} s, -> gold {in_gold:.1f} s "
                "(plus the sensors' polling: 30 s, 15 s)"
            )
    finally:
        with contextlib.suppress(Exception):
            spark.session().stop()  # released first: a client left open retries for minutes at exit
        SparkServer.of(settings).stop()
        KafkaServer.of(settings).stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"total {time.perf_counter() - started:.1f} s; peak memory: {peaks}")


def _metadata(
    source: dg.ExecuteInProcessResult | dg.DagsterInstance, layer: str, name: str = CLICKSTREAM.name
) -> dict:
    key = dg.AssetKey([layer, name])
    if isinstance(source, dg.DagsterInstance):
        event = source.get_latest_materialization_event(key)
        assert event is not None and event.asset_materialization is not None
        return {k: v.value for k, v in event.asset_materialization.metadata.items()}
    found = next(e for e in source.get_asset_materialization_events() if e.asset_key == key)
    return {k: v.value for k, v in found.materialization.metadata.items()}


if __name__ == "__main__":
    main()
