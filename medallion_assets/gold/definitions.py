"""Gold's part of the code location: dimensions, facts, reports and their checks."""

import dagster as dg

from medallion_assets.gold.assets import gold_assets
from medallion_assets.quality.checks import quality_checks


def gold_definitions(daily: dg.TimeWindowPartitionsDefinition) -> dg.Definitions:
    return dg.Definitions(assets=gold_assets(daily), asset_checks=quality_checks(daily, {"gold"}))
