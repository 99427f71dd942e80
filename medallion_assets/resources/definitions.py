"""The resources every layer shares: the lake (the IO manager that reads and writes the Delta
tables), Spark and the source database. The warehouse's IO manager belongs to the warehouse layer."""

import dagster as dg

from medallion_assets.resources.delta_lake import DeltaLakeIOManager
from medallion_assets.resources.postgres import SourceDatabase
from medallion_assets.resources.spark import SparkResource
from medallion_assets.settings import Settings


def resource_definitions(settings: Settings) -> dg.Definitions:
    spark = SparkResource()
    return dg.Definitions(
        resources={"lake": DeltaLakeIOManager(spark=spark), "source_db": SourceDatabase(), "spark": spark}
    )
