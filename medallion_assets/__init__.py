"""medallion_assets: the Olist medallion lakehouse (bronze, silver, gold) as a Dagster asset graph."""

import warnings

__all__ = ["defs"]

# Dagster warns at every definition that two features we rely on are beta or preview: one run for a
# range of partitions (`backfill_policy`) and partitioned asset checks. Silenced here, once, by
# message (this module does not import Dagster: see below).
warnings.filterwarnings("ignore", message=".*backfill_policy.*")
warnings.filterwarnings("ignore", message=".*partitions_def on an AssetCheckSpec.*")
# pyspark's Spark Connect client warns, each time it sends the plan, of a window without a partition.
# customer_rfm's quintile scores rank every customer against all the others (gold/reports.py), which
# is one window over the whole table by definition; the warning printed ten lines per build.
warnings.filterwarnings("ignore", message="WARN WindowExpression: No Partition Defined for Window")


def __getattr__(name: str) -> object:
    # `defs` is imported on first use (PEP 562): every process that opens the Dagster instance
    # imports our event log storage from this package (the webserver, the daemon), and none of
    # them needs the asset graph, whose imports (Spark, BigQuery, DuckDB...) take seconds.
    if name == "defs":
        from medallion_assets.definitions import defs

        return defs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "defs"])  # Dagster finds the code location's `defs` through dir()
