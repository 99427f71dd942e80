"""Gold assets, built from the table specs: dimensions, facts, reports and features.

- Dimensions and customer_rfm are unpartitioned and rebuilt whole on each materialization (the
  SCD2 history is recomputed, so a late or out-of-order change lands in the right version; keys are
  hashes of (member, valid_from), so unchanged versions keep their keys).
- fact_clickstream and daily_funnel_report are partitioned by event date, like silver/clickstream.
- The wide tables (orders_wide, order_items_wide) are partitioned by order date like the facts they
  widen, with the dimensions' attributes joined (wide.py).
- Facts and the daily reports are partitioned by order date (the same daily calendar as the other
  layers, but the key is the purchase date). A partition is computed from silver's current state;
  which old order dates a day of changes touched is found by `stale_dates` (wide.py).
"""

# No `from __future__ import annotations`: Dagster inspects the context annotation at definition time.
from collections.abc import Callable

import dagster as dg
import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from medallion_assets.gold.dimensions import (
    SCD2_DIMENSIONS,
    Scd2Dimension,
    build_dim_date,
    build_dim_location,
    build_scd2_dimension,
    date_range_of_orders,
    version_changes,
)
from medallion_assets.gold.facts import clickstream_facts, compute_facts, items_without_order
from medallion_assets.gold.reports import (
    customer_rfm,
    daily_category_report,
    daily_funnel_report,
    daily_order_report,
)
from medallion_assets.gold.wide import WIDE_TABLES
from medallion_assets.resources.delta_lake import LakeResource, lake_table_args
from medallion_assets.resources.reports import ReportFolder
from medallion_assets.resources.spark import SparkResource, cached, release_cached
from medallion_assets.specs import (
    ATTRIBUTE_CHANGES,
    GOLD_DIMENSIONS,
    GOLD_FACTS,
    GOLD_REPORTS,
    GOLD_WIDE,
    LakeTable,
)

GROUP = "gold"
PREVIEW_ROWS = 10


def _key(layer: str, name: str) -> dg.AssetKey:
    return dg.AssetKey([layer, name])


def _all_of(*keys: dg.AssetKey) -> list[dg.AssetDep]:
    """Dependencies on whole tables: a gold partition reads silver's current state, which every
    silver partition (change day) may have touched."""
    return [dg.AssetDep(key, partition_mapping=dg.AllPartitionMapping()) for key in keys]


def preview(frame: DataFrame, order: list[Column], rows: int = PREVIEW_ROWS) -> dg.MetadataValue:
    """The first rows as a Markdown table, for the asset's page in the UI (only they leave Spark)."""
    head = [row.asDict() for row in frame.orderBy(*order).limit(rows).collect()]
    names = frame.columns
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join("" if r[n] is None else str(r[n]) for n in names) + " |" for r in head]
    return dg.MetadataValue.md("\n".join(lines))


def _gold_asset(table: LakeTable, kinds: set[str] | None = None, **options) -> Callable:
    """The decorator of a gold table's asset: key, description and storage from its spec."""
    return dg.asset(**lake_table_args(table, GROUP, kinds or {"spark", "delta"}), pool=table.pool, **options)


def build_scd2_asset(spec: Scd2Dimension) -> dg.AssetsDefinition:
    used_by_table = spec.used_by[0]
    upstream = {_key("bronze", spec.source), _key("silver", spec.source), _key(*ATTRIBUTE_CHANGES.asset_path)}
    upstream |= {_key("silver", used_by_table), _key("silver", "orders")}
    if spec.source == "products":
        upstream.add(_key("silver", "product_category_name_translation"))

    @_gold_asset(spec.table, deps=_all_of(*sorted(upstream, key=lambda k: k.path)))
    def scd2_dimension(
        context: dg.AssetExecutionContext, spark: SparkResource, lakehouse: LakeResource
    ) -> DataFrame:
        lake, session = lakehouse.lake(), spark.session()
        # Computed once, in Spark: the counts below and the write share it. The previous versions
        # are counted before the write replaces them.
        versions = build_scd2_dimension(spec, session, lake).localCheckpoint()
        previous = lake.frame(
            session, dg.AssetKey(spec.table.asset_path), columns=[spec.surrogate_key, "is_current"]
        )
        changes = version_changes(previous, versions, spec.surrogate_key)
        context.log.info(f"{spec.table.name}: {changes}")
        context.add_output_metadata(changes)
        return versions

    return scd2_dimension


@_gold_asset(GOLD_DIMENSIONS["dim_location"], deps=_all_of(_key("silver", "geolocation")))
def dim_location(spark: SparkResource, lakehouse: LakeResource) -> DataFrame:
    return build_dim_location(spark.session(), lakehouse.lake())


def build_dim_date_asset(partitions: dg.TimeWindowPartitionsDefinition) -> dg.AssetsDefinition:
    first_partition_day = partitions.start.date()

    @_gold_asset(GOLD_DIMENSIONS["dim_date"], kinds={"delta"}, deps=_all_of(_key("silver", "orders")))
    def dim_date(
        context: dg.AssetExecutionContext, spark: SparkResource, lakehouse: LakeResource
    ) -> pa.Table:
        first, last = date_range_of_orders(spark.session(), lakehouse.lake(), first_partition_day)
        days = build_dim_date(first, last)
        context.add_output_metadata(
            {
                "first_day": first.isoformat(),
                "last_day": last.isoformat(),
                "holidays": sum(days["is_holiday"].to_pylist()),
            }
        )
        return days

    return dim_date


ORDER_FACTS = ("fact_orders", "fact_order_items")  # one step computes both, from what they share


def build_fact_assets(partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    silver_inputs = ("orders", "order_items", "order_payments", "order_reviews", "customers")

    @dg.multi_asset(
        name="gold_facts",
        outs={
            name: dg.AssetOut(**lake_table_args(t, GROUP, {"spark", "delta"}))
            for name, t in GOLD_FACTS.items()
            if name in ORDER_FACTS
        },
        deps=[
            *_all_of(*[_key("silver", name) for name in silver_inputs]),
            *[_key("gold", name) for name in ("dim_customer", "dim_product", "dim_seller")],
        ],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool="gold/facts",
    )
    def gold_facts(context: dg.AssetExecutionContext, spark: SparkResource, lakehouse: LakeResource):
        window = context.partition_time_window
        dates = (window.start.date(), window.end.date())
        lake = lakehouse.lake()
        # Cached in Spark: the count below and the write read the orders' facts once.
        orders, items = (
            cached(facts.withColumn("_run_id", F.lit(context.run_id)))
            for facts in compute_facts(spark.session(), lake, dates)
        )
        # Both counts in one action. Waiting items are counted over all of silver: they have no
        # order date until their order arrives.
        waiting = items_without_order(spark.session(), lake).agg(F.count("*").alias("waiting"))
        counts = orders.agg(F.count_if("is_revenue_order").alias("revenue")).crossJoin(waiting).first()
        yield dg.Output(orders, output_name="fact_orders", metadata={"revenue_orders": counts["revenue"]})
        yield dg.Output(
            items,
            output_name="fact_order_items",
            metadata={"items_waiting_for_their_order": counts["waiting"]},
        )
        release_cached()  # both facts are written: free what they shared

    return gold_facts


def build_clickstream_fact_asset(partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """fact_clickstream: partitioned by event date like silver/clickstream, so a day of events is
    one partition each (the dimensions are read whole: a version may start any time before)."""

    @_gold_asset(
        GOLD_FACTS["fact_clickstream"],
        deps=[_key("silver", "clickstream"), *(_key("gold", n) for n in ("dim_customer", "dim_product"))],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def fact_clickstream(
        context: dg.AssetExecutionContext, spark: SparkResource, lakehouse: LakeResource
    ) -> DataFrame:
        window = context.partition_time_window
        facts = clickstream_facts(spark.session(), lakehouse.lake(), (window.start.date(), window.end.date()))
        return facts.withColumn("_run_id", F.lit(context.run_id))

    return fact_clickstream


def build_report_asset(
    table: LakeTable,
    upstream: LakeTable,
    compute: Callable[[DataFrame], DataFrame],
    partitions: dg.PartitionsDefinition | None,
) -> dg.AssetsDefinition:
    @_gold_asset(
        table,
        ins={"facts": dg.AssetIn(key=upstream.asset_path)},
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run() if partitions else None,
    )
    def report(context: dg.AssetExecutionContext, facts: DataFrame, reports: ReportFolder):
        rows = compute(facts).cache()  # the preview and the write share it
        order = [F.desc(c) if c == table.partition_column else F.asc(c) for c in table.primary_key]
        # The charts of the reports: written by interface/olist_report after the warehouse's views.
        charts = dg.MetadataValue.path(str(reports.page()))
        yield dg.Output(rows, metadata={"preview": preview(rows, order), "report_page": charts})
        rows.unpersist()

    return report


def build_wide_asset(table: LakeTable, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """A wide table: its facts' window (the same order dates) with every dimension it joins, whole."""
    wide = WIDE_TABLES[table.name]

    @_gold_asset(
        table,
        deps=[_key("gold", name) for name in (*wide.facts, *wide.dimensions)],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def wide_table(
        context: dg.AssetExecutionContext, spark: SparkResource, lakehouse: LakeResource
    ) -> DataFrame:
        window = context.partition_time_window
        return wide.compute(spark.session(), lakehouse.lake(), (window.start.date(), window.end.date()))

    return wide_table


def gold_assets(partitions: dg.TimeWindowPartitionsDefinition) -> list[dg.AssetsDefinition]:
    fact_orders, fact_items = GOLD_FACTS["fact_orders"], GOLD_FACTS["fact_order_items"]
    return [
        *(build_scd2_asset(spec) for spec in SCD2_DIMENSIONS),
        dim_location,
        build_dim_date_asset(partitions),
        build_fact_assets(partitions),
        build_report_asset(GOLD_REPORTS["daily_order_report"], fact_orders, daily_order_report, partitions),
        build_report_asset(
            GOLD_REPORTS["daily_category_report"], fact_items, daily_category_report, partitions
        ),
        build_report_asset(GOLD_REPORTS["customer_rfm"], fact_orders, customer_rfm, None),
        build_clickstream_fact_asset(partitions),
        build_report_asset(
            GOLD_REPORTS["daily_funnel_report"],
            GOLD_FACTS["fact_clickstream"],
            daily_funnel_report,
            partitions,
        ),
        *(build_wide_asset(table, partitions) for table in GOLD_WIDE.values()),
    ]
