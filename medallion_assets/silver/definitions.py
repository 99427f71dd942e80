"""Silver's part of the code location: one asset per source table with its quarantine table, one
per event stream of its own (the clickstream), and their checks."""

import dagster as dg

from medallion_assets.quality.checks import quality_checks
from medallion_assets.silver.assets import silver_assets
from medallion_assets.silver.events import event_silver_assets


def silver_definitions(daily: dg.TimeWindowPartitionsDefinition) -> dg.Definitions:
    return dg.Definitions(
        assets=[*silver_assets(daily), *event_silver_assets(daily)],
        asset_checks=quality_checks(daily, {"silver", "quarantine"}),
    )
