"""What Dagster's bookkeeping costs per partition, stock storage against ours (not a test: it prints).

    python bench/bookkeeping.py --partitions 800 [--postgres]

One trivial daily-partitioned asset materialized over N partitions in one ranged run (a backfill
with BackfillPolicy.single_run, as every layer does), in a fresh instance of each kind: the stock
SQLite event log, ours (dagster_internals.py), and with --postgres the same two on the embedded server.
Then the asset's latest materialization read back 200 times, as the UI, sensors and checks read it.
"""

# No `from __future__ import annotations`: Dagster inspects the context annotation.

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import dagster as dg

from medallion_assets.resources.instance import instance_yaml
from medallion_assets.settings import get_settings
from medallion_assets.tags import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG

READS = 200
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}  # printing events costs too
STOCK_POSTGRES = """storage:
  postgres:
    postgres_url:
      env: DAGSTER_PG_URL
"""


def timed_run(dagster_yaml: Callable[[Path], str], partitions: int) -> tuple[float, float]:
    """Seconds per partition of one ranged run over `partitions` days, in a new instance, then
    seconds per read of the asset's latest materialization (what the UI, sensors and checks do)."""
    home = Path(tempfile.mkdtemp(prefix="bookkeeping-"))
    (home / "dagster.yaml").write_text(dagster_yaml(home))
    os.environ["DAGSTER_HOME"] = str(home)
    daily = dg.DailyPartitionsDefinition(start_date="2016-09-01")

    @dg.asset(partitions_def=daily, backfill_policy=dg.BackfillPolicy.single_run())
    def trivial(context: dg.AssetExecutionContext) -> None:
        context.add_output_metadata({"dagster/row_count": 1})

    keys = daily.get_partition_keys()[:partitions]
    job = dg.Definitions(assets=[trivial]).resolve_implicit_global_asset_job_def()
    tags = {PARTITION_RANGE_START_TAG: keys[0], PARTITION_RANGE_END_TAG: keys[-1]}
    with dg.DagsterInstance.get() as instance:
        started = time.perf_counter()
        result = job.execute_in_process(instance=instance, tags=tags, run_config=QUIET)
        seconds = time.perf_counter() - started
        assert result.success
        materialized = instance.get_materialized_partitions(dg.AssetKey("trivial"))
        assert len(materialized) == partitions, len(materialized)
        started = time.perf_counter()
        for _ in range(READS):
            assert instance.get_latest_materialization_event(dg.AssetKey("trivial")) is not None
        read = (time.perf_counter() - started) / READS
    return seconds / partitions, read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--partitions", type=int, default=800)
    parser.add_argument("--postgres", action="store_true", help="also on the embedded PostgreSQL")
    args = parser.parse_args()
    ours = partial(instance_yaml, get_settings())
    kinds = {"SQLite, stock": lambda _: "telemetry:\n  enabled: false\n", "SQLite, ours": ours}
    if args.postgres:
        from medallion_assets.resources.postgres import source_database_url

        url = source_database_url(get_settings()).replace("postgresql://", "postgresql+psycopg2://", 1)
        os.environ["DAGSTER_PG_URL"] = url
        kinds["PostgreSQL, stock"] = lambda _: STOCK_POSTGRES
        kinds["PostgreSQL, ours"] = partial(instance_yaml, get_settings())
    for name, dagster_yaml in kinds.items():
        # The stock runs go without batching: it is what the stock storages ran with by default.
        os.environ.pop("DAGSTER_EVENT_BATCH_SIZE", None)
        per_partition, read = timed_run(dagster_yaml, args.partitions)
        print(
            f"{name:<22}{per_partition * 1000:>8.1f} ms per partition ({args.partitions} partitions), "
            f"{read * 1000:.1f} ms per read of the latest materialization"
        )


if __name__ == "__main__":
    main()
