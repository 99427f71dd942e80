"""The report asset: `interface/olist_report`, the static HTML page of report.py, written again after
the analytics views it reads are replaced (so every build and gold refresh leaves it current)."""

# No `from __future__ import annotations`: Dagster inspects the context annotation at definition time.
import dagster as dg

from medallion_assets.interface.report import write_report
from medallion_assets.resources.delta_lake import LakeResource
from medallion_assets.resources.reports import ReportFolder
from medallion_assets.resources.spark import SparkResource
from medallion_assets.resources.warehouse import WarehouseIOManager
from medallion_assets.specs.interface import ANALYTICS_VIEWS

GROUP = "interface"
REPORT_KEY = dg.AssetKey([GROUP, "olist_report"])


def build_report_asset(check_keys: frozenset[dg.AssetCheckKey]) -> dg.AssetsDefinition:
    """The report asset; `check_keys`: every check of the code location, for the quality summary
    (a run's context knows only its own job's)."""

    @dg.asset(
        key=REPORT_KEY,
        deps=[dg.AssetKey(view.asset_path) for view in ANALYTICS_VIEWS.values()],
        description="One static HTML page (self-contained, opens offline): daily revenue and orders, revenue "
        "by category, the RFM segments, delivery performance by state, checks per layer and quarantined "
        "rows by rule, from the warehouse's analytics views. `medallion report` writes it on demand.",
        group_name=GROUP,
        kinds={"plotly", "html"},
        pool="interface/olist_report",
    )
    def olist_report(
        context: dg.AssetExecutionContext,
        warehouse: dg.ResourceParam[WarehouseIOManager],
        spark: SparkResource,
        lakehouse: LakeResource,
        reports: ReportFolder,
    ) -> dg.MaterializeResult:
        path = reports.page()
        figures = write_report(
            path,
            warehouse,
            context.instance,
            check_keys,
            spark,
            lakehouse.lake(),
        )
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(path)),
                "bytes": path.stat().st_size,
                "order_days": len(figures.daily),
                "revenue": str(figures.totals["revenue"] or 0),  # exact: a Decimal as text
            }
        )

    return olist_report
