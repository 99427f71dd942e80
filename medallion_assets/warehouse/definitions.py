"""The warehouse's part of the code location: a copy of every gold table, its `equals_gold` check,
and the IO manager of the warehouse the settings name (DuckDB or BigQuery)."""

import dagster as dg

from medallion_assets.settings import Settings
from medallion_assets.warehouse.assets import warehouse_assets, warehouse_checks, warehouse_for


def warehouse_definitions(daily: dg.TimeWindowPartitionsDefinition, settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=warehouse_assets(daily, settings.warehouse),
        asset_checks=warehouse_checks(daily),
        resources={"warehouse": warehouse_for(settings)},
    )
