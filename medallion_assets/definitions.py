"""The Dagster code location: every layer's Definitions (assets, checks, resources, jobs, sensors)
merged into one.

`build_definitions(settings)` decides everything from one settings object, so tests build their
own definitions without reloading modules; `defs` is what `dagster dev` and the CLI load, built
when a code location loads (not at import): its daily partitions end where the source's days end
(`partitions_last_day`).
Runs execute in process: one process per run, so one Spark session per run, never one per step.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging

import dagster as dg

from medallion_assets.automation.definitions import automation_definitions
from medallion_assets.automation.freshness import with_freshness
from medallion_assets.bronze.definitions import bronze_definitions
from medallion_assets.dagster_internals import threaded_in_process_executor
from medallion_assets.gold.definitions import gold_definitions
from medallion_assets.interface.definitions import check_keys_of, interface_definitions
from medallion_assets.maintenance.jobs import maintenance_definitions, writer_pools
from medallion_assets.partitions import daily_partitions
from medallion_assets.progress import medallion_progress
from medallion_assets.quality.checks import column_schema_change_checks
from medallion_assets.resources.definitions import resource_definitions
from medallion_assets.resources.postgres import redact, source_database_url
from medallion_assets.settings import Settings, get_settings
from medallion_assets.silver.definitions import silver_definitions
from medallion_assets.sources.olist_db import history_end
from medallion_assets.specs import LAKE_TABLES
from medallion_assets.specs.interface import WAREHOUSE_VIEWS
from medallion_assets.warehouse.definitions import warehouse_definitions


def build_definitions(settings: Settings | None = None, last_day: dt.date | None = None) -> dg.Definitions:
    """The code location for these settings, its daily partitions up to `last_day` (None: today)."""
    settings = settings or get_settings()
    daily = daily_partitions(settings, last_day)
    lake_layers = (bronze_definitions(daily), silver_definitions(daily), gold_definitions(daily))
    warehouse = warehouse_definitions(daily, settings)
    tables = dg.Definitions.merge(
        *lake_layers,
        warehouse,
        # Dagster's column-schema change check on every lake table and warehouse table (a view's
        # columns are its SQL, in the project).
        dg.Definitions(asset_checks=column_schema_change_checks(schema_watched(lake_layers, warehouse))),
    )
    merged = dg.Definitions.merge(
        resource_definitions(settings),
        tables,
        # The report summarizes every check of the tables.
        interface_definitions(check_keys_of(tables)),
        # Each table's maintenance runs in the pool of the step that writes the table.
        maintenance_definitions(LAKE_TABLES, writer_pools(lake_layers), settings),
        # The gold refresh builds gold with these same definitions (built again inside its run).
        automation_definitions(daily, settings, functools.partial(build_definitions, settings, last_day)),
        dg.Definitions(
            loggers={"console": dg.colored_console_logger, "medallion_progress": medallion_progress},
            executor=threaded_in_process_executor,
        ),
    )
    return with_freshness(merged)  # gold, the warehouse and the report: refreshed daily by 02:00


def schema_watched(lake_layers: tuple[dg.Definitions, ...], warehouse: dg.Definitions) -> set[dg.AssetKey]:
    views = {dg.AssetKey(view.asset_path) for view in WAREHOUSE_VIEWS.values()}
    return {
        key
        for layer in (*lake_layers, warehouse)
        for asset in layer.assets or []
        if isinstance(asset, dg.AssetsDefinition)
        for key in asset.keys
        if key not in views
    }


def code_location(settings: Settings | None = None) -> dg.Definitions:
    """What `dagster dev` loads: the definitions of the environment's settings, partitions up to
    the source's last day (`partitions_last_day`)."""
    settings = settings or get_settings()
    return build_definitions(settings, last_day=partitions_last_day(settings))


HAND_MADE_DAYS = dt.timedelta(days=7)


def partitions_last_day(settings: Settings) -> dt.date | None:
    """The last day the source can have data for: a replayed history's end (the simulator knows
    its whole future) and a week, None for a live source or one not loaded or not reachable yet
    (up to today)."""
    if settings.source_url is None and not settings.embedded_postgres_dir.exists():
        return None  # no embedded source was ever created: nothing to start for the answer
    try:
        end = history_end(source_database_url(settings))
    except Exception as exc:  # a code location must load while the source is down
        logging.getLogger(__name__).warning(
            f"partitions up to today: the source is unreachable ({redact(str(exc))})"
        )
        return None
    # A week past it: a change made by hand just after the replayed history (as the end-to-end
    # test's canceled order) still has its day.
    return end.date() + HAND_MADE_DAYS if end else None


@dg.definitions
def defs() -> dg.Definitions:
    return code_location()
