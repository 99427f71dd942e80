"""Bronze's part of the code location: one asset per source change feed, one per event stream
(with its quarantine), and their checks."""

import dagster as dg

from medallion_assets.bronze.assets import bronze_assets
from medallion_assets.bronze.streams import stream_assets
from medallion_assets.quality.checks import quality_checks


def bronze_definitions(daily: dg.TimeWindowPartitionsDefinition) -> dg.Definitions:
    return dg.Definitions(
        assets=[*bronze_assets(daily), *stream_assets()],
        asset_checks=quality_checks(daily, {"bronze"}),
    )
