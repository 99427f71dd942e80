"""medallion_assets: the Olist medallion lakehouse (bronze, silver, gold) as a Dagster asset graph."""

__all__ = ["defs"]


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
