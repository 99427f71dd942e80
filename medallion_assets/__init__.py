"""medallion_assets: the Olist medallion lakehouse (bronze, silver, gold) as a Dagster asset graph."""

from medallion_assets.definitions import defs

__all__ = ["defs"]
