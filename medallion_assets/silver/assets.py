"""Silver: one asset per source table, each day's bronze changes applied to the current state.

For every partition (or range, in one run) of bronze/<table>, with the events of that window that
carry the table's rows (review events: silver/events.py) joined to its change feed:
1. conform: precise types, normalised text, and per row the first broken contract rule;
2. rows that break a rule go to quarantine/<table> with the rule, a readable reason, the raw
   bronze row and the run id; they never reach silver and never fail the run;
3. one row per key: the latest change wins (ties: ingestion time, then content hash); another row
   with the winner's key and change time is a conflict and is quarantined too;
4. rows whose parent the source had not shown yet when they changed (an item of an unknown order)
   are kept and flagged in `_missing_parents`;
5. the contract (quality/contracts.py) validates what is about to be written; the IO manager merges it
   latest-wins, so an old or repeated day never regresses the state.
Accounting in the metadata: rows read = accepted + quarantined + superseded, and accepted =
inserted + updated + unchanged (for geolocation, accepted rows are collapsed per zip prefix first);
rows read per lane (database, events).
"""

# No `from __future__ import annotations`: Dagster inspects the context annotation at definition time.
import datetime as dt
import json

import dagster as dg
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from medallion_assets.quality.contracts import counted, judge, refuse
from medallion_assets.resources.delta_lake import OUTPUT_ROWS, Lake, LakeResource, lake_table_args
from medallion_assets.resources.delta_lake import Window as LakeWindow
from medallion_assets.resources.spark import SparkResource, cached, release_cached
from medallion_assets.silver.events import event_changes
from medallion_assets.silver.transform import (
    FATE,
    KEY,
    RAW,
    REASON,
    RULE,
    conform,
    key_text,
    latest_per_key,
    latest_rows,
)
from medallion_assets.specs import (
    CHANGE_DATE,
    CHANGE_TS,
    ENGLISH_CATEGORY,
    GEO_ROWS,
    MISSING_PARENTS,
    QUARANTINE_TABLES,
    RUN_ID,
    SILVER_TABLES,
    SOURCE,
    LakeTable,
    SourceTable,
)
from medallion_assets.specs.events import event_bronze_table, streams_carrying


def apply_changes(
    bronze: DataFrame, table: LakeTable, run_id: str, window: LakeWindow, spark: SparkSession, lake: Lake
) -> tuple[DataFrame, DataFrame, dict]:
    """(silver rows to merge, quarantine rows, accounting) for one batch of bronze changes: the
    bronze rows of the change-date `window`."""
    source = table.source
    assert source is not None
    # Every bronze row gets one fate, computed once: broken (a rule), winner, conflict or superseded.
    fates = cached(latest_per_key(conform(bronze, source), source.primary_key))
    winners = fates.filter(F.col(FATE) == "winner").drop(FATE, RULE, REASON)

    if source.name == "geolocation":
        accepted = _collapse_geolocation(winners, source, window, spark, lake)
    else:
        accepted = winners
    if source.name == "products":
        accepted = _with_english_category(accepted, spark, lake)
    if source.parents:
        accepted = _flag_missing_parents(accepted, source.parents, spark, lake)
    columns = [c.name for c in table.columns]
    extra = [MISSING_PARENTS] if source.parents else []
    # Cached: the contract's checks and the write would each recompute it otherwise.
    silver = cached(
        accepted.select(*columns, *extra, CHANGE_TS, CHANGE_DATE).withColumn(RUN_ID, F.lit(run_id))
    )
    found, judged, broken = judge(table, silver)

    quarantine = (
        fates.filter(F.col(RULE).isNotNull())
        .select(key_text(source.primary_key).alias(KEY), RULE, REASON, RAW, CHANGE_TS, CHANGE_DATE)
        .withColumn(RUN_ID, F.lit(run_id))
    )
    # Which lane brought a row: the database's change feed, or events (their `_source` is kafka:...).
    lane = (
        F.when(F.col(SOURCE).startswith("kafka:"), "events").otherwise("database")
        if SOURCE in fates.columns
        else F.lit("database")
    )
    # One action for the contract's counts and every row's fate (two cost ~0.5 s more on a day).
    fate_counts = fates.groupBy(FATE, RULE, lane.alias("lane")).count()
    tally = fate_counts.agg(F.collect_list(F.struct(FATE, RULE, "lane", "count")))
    first = (tally if broken is None else tally.crossJoin(broken)).first()
    assert first is not None  # an aggregate without grouping has one row
    refuse(table, found + counted(judged, first[1:]))
    counts = first[0]
    by_fate: dict[str, int] = {}
    by_rule: dict[str, int] = {}
    by_lane: dict[str, int] = {}
    for row in counts:
        by_fate[row[FATE]] = by_fate.get(row[FATE], 0) + row["count"]
        by_lane[row["lane"]] = by_lane.get(row["lane"], 0) + row["count"]
        if row[RULE] is not None:
            by_rule[row[RULE]] = by_rule.get(row[RULE], 0) + row["count"]
    accounting = {
        "rows_read": sum(by_fate.values()),
        "rows_read_by_lane": dg.MetadataValue.json(dict(sorted(by_lane.items()))),
        "rows_accepted": by_fate.get("winner", 0),
        "rows_quarantined": sum(by_rule.values()),
        "rows_superseded": by_fate.get("superseded", 0),
        "quarantined_by_rule": dg.MetadataValue.json(dict(sorted(by_rule.items()))),
    }
    return silver, quarantine, accounting


def _flag_missing_parents(
    rows: DataFrame, parents: tuple[tuple[str, str], ...], spark: SparkSession, lake: Lake
) -> DataFrame:
    """`_missing_parents` names the parents the source had not shown yet when the row changed.

    Judged against bronze (when each parent key first appeared), not against silver's current
    state, so the flag depends only on the data, never on the order days are processed in.
    """
    flags, helpers = [], []
    for column, parent in parents:
        parent_key = next(t for t in SILVER_TABLES if t.name == parent).primary_key[0]
        seen = lake.frame(spark, dg.AssetKey(["bronze", parent]), columns=[parent_key, CHANGE_TS])
        first_seen = f"_first_seen_{parent}"
        helpers.append(first_seen)
        if seen is None:
            rows = rows.withColumn(first_seen, F.lit(None).cast("timestamp_ntz"))
        else:
            first = seen.groupBy(F.col(parent_key).alias(column)).agg(F.min(CHANGE_TS).alias(first_seen))
            rows = rows.join(first, on=column, how="left")
        flags.append(
            F.when(F.col(first_seen).isNull() | (F.col(first_seen) > F.col(CHANGE_TS)), F.lit(parent))
        )
    missing = F.concat_ws(",", *flags)
    return rows.withColumn(MISSING_PARENTS, F.when(missing != "", missing)).drop(*helpers)


def _with_english_category(products: DataFrame, spark: SparkSession, lake: Lake) -> DataFrame:
    """The English category name the translation table held when the product changed (from bronze,
    so the result does not depend on the order days are processed in)."""
    category = "product_category_name"
    history = lake.frame(
        spark,
        dg.AssetKey(["bronze", "product_category_name_translation"]),
        columns=[category, ENGLISH_CATEGORY, CHANGE_TS],
    )
    if history is None:
        return products.withColumn(ENGLISH_CATEGORY, F.lit(None).cast("string"))
    versions = history.select(
        F.trim(F.col(category)).alias("_category"),
        F.trim(F.col(ENGLISH_CATEGORY)).alias("_english"),
        F.col(CHANGE_TS).alias("_translated_at"),
    )
    key = [c for c in products.columns if c == "product_id"]
    matched = products.join(
        F.broadcast(versions),
        (F.col(category) == F.col("_category")) & (F.col("_translated_at") <= F.col(CHANGE_TS)),
        how="left",
    )
    latest = Window.partitionBy(*key).orderBy(F.col("_translated_at").desc_nulls_last())
    return (
        matched.withColumn("_rank", F.row_number().over(latest))
        .filter("_rank = 1")
        .withColumn(ENGLISH_CATEGORY, F.col("_english"))
        .drop("_category", "_english", "_translated_at", "_rank")
    )


def _collapse_geolocation(
    changed: DataFrame, source: SourceTable, window: LakeWindow, spark: SparkSession, lake: Lake
) -> DataFrame:
    """One row per zip prefix touched by the batch, from every current geolocation row of that prefix
    as of the end of the window: median latitude and longitude, the most frequent city and state
    (ties: alphabetical), the number of rows; its change time is the latest of those rows'.

    `changed` holds the batch's winners (conformed, valid); the rows before the window are read from
    bronze and conformed here. Together they are every row up to the window's end, and the latest
    of them per key is the one the whole history gives (the same ranking picked the batch's)."""
    prefix = "geolocation_zip_code_prefix"
    touched = changed.select(prefix).distinct()
    # The usual day changes no geolocation: the 1M-row history is not read. A first build's batch
    # is the whole history: nothing comes before it.
    before = LakeWindow(CHANGE_DATE, dt.date.min, window.start)
    earlier = None if touched.isEmpty() else lake.frame(spark, dg.AssetKey(["bronze", source.name]), before)
    if earlier is None or earlier.isEmpty():
        rows = changed  # the batch's winners alone: one per key already, every row of their prefixes
    else:
        conformed = conform(earlier, source)
        valid = conformed.filter(F.col(RULE).isNull()).drop(RULE, REASON)
        known = valid.unionByName(changed.select(*valid.columns))
        current = latest_rows(known, source.primary_key, known.columns)
        # Cached: three aggregations below read it (the asset clears the cache when written).
        rows = cached(current.join(F.broadcast(touched), on=prefix))

    def most_frequent(column: str) -> DataFrame:
        ranked = (
            rows.groupBy(prefix, column)
            .count()
            .withColumn(
                "_rank",
                F.row_number().over(Window.partitionBy(prefix).orderBy(F.desc("count"), F.asc(column))),
            )
        )
        return ranked.filter("_rank = 1").select(prefix, column)

    return (
        rows.groupBy(prefix)
        .agg(
            F.percentile("geolocation_lat", 0.5).alias("geolocation_lat"),
            F.percentile("geolocation_lng", 0.5).alias("geolocation_lng"),
            F.count("*").cast("int").alias(GEO_ROWS),
            F.min("created_at").alias("created_at"),
            F.max("updated_at").alias("updated_at"),
            F.max(CHANGE_TS).alias(CHANGE_TS),
        )
        .join(most_frequent("geolocation_city"), on=prefix)
        .join(most_frequent("geolocation_state"), on=prefix)
        .withColumn(CHANGE_DATE, F.to_date(CHANGE_TS))
    )


def build_silver_asset(
    table: LakeTable, quarantine: LakeTable, partitions: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    source = table.source
    assert source is not None
    # Parent flags and translations are read from these bronze tables' history (whole tables, by key).
    looked_up = {parent for _, parent in source.parents}
    if source.name == "products":
        looked_up.add("product_category_name_translation")
    # Event streams carrying this table's rows: their events of the window join the change feed's.
    streams = streams_carrying(source.name)
    events = [dg.AssetKey(event_bronze_table(stream).asset_path) for stream in streams]

    @dg.multi_asset(
        name=f"silver_{source.name}",
        outs={
            "silver": dg.AssetOut(**lake_table_args(table, "silver", {"spark", "delta"})),
            "quarantine": dg.AssetOut(**lake_table_args(quarantine, "quarantine", {"delta"})),
        },
        ins={"bronze": dg.AssetIn(key=["bronze", source.name])},
        deps=[*(dg.AssetKey(["bronze", name]) for name in sorted(looked_up)), *events],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=table.pool,
    )
    def silver_asset(
        context: dg.AssetExecutionContext, bronze: DataFrame, spark: SparkResource, lakehouse: LakeResource
    ):
        span = context.partition_time_window
        window = LakeWindow(CHANGE_DATE, span.start.date(), span.end.date())
        session, lake = spark.session(), lakehouse.lake()
        changes = bronze
        for stream in streams:
            if (carried := event_changes(session, lake, stream, window, like=bronze)) is not None:
                changes = changes.unionByName(carried)
        silver, quarantined, accounting = apply_changes(changes, table, context.run_id, window, session, lake)
        counts = {k: v for k, v in accounting.items() if not isinstance(v, dg.MetadataValue)}
        context.log.info(f"silver/{source.name}: {json.dumps(counts)}")
        # The rows each output holds, where the accounting counted them: an empty one into a window
        # that holds nothing commits nothing (geolocation's rows are collapsed per zip prefix first).
        accepted = accounting["rows_accepted"]
        exact = {OUTPUT_ROWS: accepted} if source.name != "geolocation" or not accepted else {}
        yield dg.Output(silver, output_name="silver", metadata={**accounting, **exact})
        yield dg.Output(
            quarantined.withColumn("_quarantined_at", F.current_timestamp()),
            output_name="quarantine",
            metadata={
                "rows_quarantined": accounting["rows_quarantined"],
                "quarantined_by_rule": accounting["quarantined_by_rule"],
                OUTPUT_ROWS: accounting["rows_quarantined"],
            },
        )
        release_cached()  # both outputs are written: free the cached batch

    return silver_asset


def silver_assets(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    return [
        build_silver_asset(s, q, partitions) for s, q in zip(SILVER_TABLES, QUARANTINE_TABLES, strict=True)
    ]
