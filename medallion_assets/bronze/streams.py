"""Bronze event tables: each topic of the web shop's events landed by Spark Structured Streaming.

A run reads whatever Kafka offsets are new since the stream's checkpoint (`trigger(availableNow)`:
everything there is, in micro-batches of at most `MAX_OFFSETS_PER_BATCH` records, then stop) and
writes them exactly once: the Delta sink commits each micro-batch with its batch id, so a batch
replayed after a crash (a kill -9 between the Delta commit and the checkpoint's) is skipped.
Each record goes one of two ways:
- bronze/<stream>: the records that parse as the stream's events (specs/events.py), typed, with
  their Kafka place (topic, partition, offset: the key), the message key, Kafka's timestamp, the
  event's date (a late event lands in its own day), the ingestion time, the run, and the raw text;
- quarantine/<stream>: the records that do not (no value, malformed JSON, a missing envelope, key
  or required field, a value of the wrong type or breaking its column's rules: pattern, allowed
  values, range, length), with the rule, a readable reason and the raw bytes. A bad record never
  stops the stream, and what lands keeps the stream's contract.
Two streaming queries over the same offsets, one per table, each with its checkpoint next to its
table (`<table>/_checkpoint`: Delta and VACUUM leave `_` folders alone).

In Dagster the two tables are unpartitioned: a run takes what is new, which may touch any event
dates. The dates it touched (and the rows per date) are in the bronze materialization's metadata
(`event_dates`), with the offsets it read, so downstream can ask for exactly those days.
Events that carry a source table's rows (reviews) are judged again in that table's silver.
"""

# No `from __future__ import annotations`: Dagster inspects the context annotation at definition time.
import json
from collections.abc import Iterator

import dagster as dg
import pyarrow.fs as pafs
from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.types import StringType, StructField, StructType

from medallion_assets.quality.contracts import value_rules
from medallion_assets.resources.delta_lake import Lake, LakeError, LakeResource, first_line, lake_metadata
from medallion_assets.resources.kafka import KafkaResource
from medallion_assets.resources.retries import retry_when_unreachable
from medallion_assets.resources.spark import SparkResource
from medallion_assets.specs import INGESTED_AT, RUN_ID, LakeTable
from medallion_assets.specs.events import (
    EVENT_BRONZE_TABLES,
    EVENT_DATE,
    EVENT_QUARANTINE_TABLES,
    EVENT_STREAMS,
    KAFKA_TIMESTAMP,
    MESSAGE_KEY,
    OFFSET,
    PARTITION,
    RAW,
    REASON,
    RULE,
    TOPIC,
    EventStream,
)
from medallion_assets.tags import LANE_TAG, STREAM_LANE

MAX_OFFSETS_PER_BATCH = 50_000  # bounds a micro-batch (and what a crash makes Spark redo)
CHECKPOINT = "_checkpoint"
_CORRUPT = "_corrupt_record"


def checkpoint_uri(lake: Lake, table: LakeTable) -> str:
    return f"{lake.uri(dg.AssetKey(table.asset_path))}/{CHECKPOINT}"


def committed_offsets(lake: Lake, table: LakeTable) -> dict[str, dict[str, int]]:
    """{topic: {partition: next offset}} the stream's last committed micro-batch read up to ({}
    before its first): from the checkpoint, `offsets/<n>` of the highest `commits/<n>`."""
    filesystem, path = lake.files(checkpoint_uri(lake, table))
    commits = filesystem.get_file_info(pafs.FileSelector(f"{path}/commits", allow_not_found=True))
    batches = [int(info.base_name) for info in commits if info.base_name.isdigit()]
    if not batches:
        return {}
    with filesystem.open_input_stream(f"{path}/offsets/{max(batches)}") as file:
        lines = file.read().decode().splitlines()
    return json.loads(lines[-1])  # "v1", the batch's metadata, then one line per source: ours


def parsed_records(records: DataFrame, stream: EventStream) -> DataFrame:
    """Kafka records with each declared field as text (`_fields`), and the first rule the record
    breaks (`rule`, `reason`; null for an event that parses)."""
    text = F.col("value").cast("string")
    as_text = StructType([StructField(c.name, StringType()) for c in stream.columns])
    fields = F.from_json(
        text,
        as_text.add(StructField(_CORRUPT, StringType())),
        {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": _CORRUPT},
    )
    broken: list[tuple[SparkColumn, str, SparkColumn]] = [
        (F.col("value").isNull(), "empty_record", F.lit("the record has no value")),
        (
            F.col("_fields").isNull() | F.col(f"_fields.{_CORRUPT}").isNotNull(),
            "malformed_json",
            F.lit("the value is not a JSON object"),
        ),
    ]
    required = [*stream.envelope_and_key, *(c.name for c in stream.columns if c.required)]
    for name in dict.fromkeys(required):
        broken.append((F.col(f"_fields.{name}").isNull(), f"missing:{name}", F.lit(f"no {name}")))
    for column in stream.columns:
        value = F.col(f"_fields.{column.name}")
        if column.type != "string":
            wrong = value.isNotNull() & value.try_cast(column.type_names.spark).isNull()
            reason = F.concat(F.lit(f"{column.name} is not a {column.type}: "), F.substring(value, 1, 60))
            broken.append((wrong, f"type:{column.name}", reason))
    for column in stream.columns:  # the contract's value rules, as silver judges a source row's
        value = F.col(f"_fields.{column.name}")
        typed = F.trim(value) if column.type == "string" else value.try_cast(column.type_names.spark)
        shown = F.coalesce(F.substring(value, 1, 60), F.lit("null"))
        broken += [
            (rule.broken_by(typed), rule.name, rule.reason(shown, typed)) for rule in value_rules(column)
        ]
    rule, reason = F.lit(None).cast("string"), F.lit(None).cast("string")
    for condition, name, why in reversed(broken):  # the first rule broken wins
        rule = F.when(condition, F.lit(name)).otherwise(rule)
        reason = F.when(condition, why).otherwise(reason)
    return records.withColumn("_fields", fields).withColumns({RULE: rule, REASON: reason})


def lineage(run_id: str) -> dict[str, SparkColumn]:
    return {
        TOPIC: F.col("topic"),
        PARTITION: F.col("partition"),
        OFFSET: F.col("offset"),
        MESSAGE_KEY: F.col("key").cast("string"),
        KAFKA_TIMESTAMP: F.col("timestamp").cast("timestamp_ntz"),
        INGESTED_AT: F.current_timestamp(),
        RUN_ID: F.lit(run_id),
    }


def _aliased(columns: dict[str, SparkColumn]) -> list[SparkColumn]:
    return [column.alias(name) for name, column in columns.items()]


def landed_events(parsed: DataFrame, stream: EventStream, run_id: str) -> DataFrame:
    typed = [F.col(f"_fields.{c.name}").try_cast(c.type_names.spark).alias(c.name) for c in stream.columns]
    return (
        parsed.filter(F.col(RULE).isNull())
        .select(*typed, F.col("value").cast("string").alias(RAW), *_aliased(lineage(run_id)))
        .withColumn(EVENT_DATE, F.to_date(stream.time_field))
    )


def quarantined_records(parsed: DataFrame, run_id: str) -> DataFrame:
    return parsed.filter(F.col(RULE).isNotNull()).select(
        F.col(RULE), F.col(REASON), F.col("value").alias(RAW), *_aliased(lineage(run_id))
    )


def start_query(frame: DataFrame, uri: str, checkpoint: str) -> StreamingQuery:
    return (
        frame.writeStream.format("delta")
        .outputMode("append")
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
        .start(uri)
    )


def offsets_read(query: StreamingQuery) -> tuple[dict | None, dict | None, int]:
    """(first start offsets, last end offsets, records read) of a finished query's micro-batches."""
    progress = [p for p in query.recentProgress if p.sources]
    if not progress:
        return None, None, 0
    first, last = progress[0].sources[0], progress[-1].sources[0]
    start = json.loads(first.startOffset) if first.startOffset else None
    return start, json.loads(last.endOffset), sum(p.numInputRows for p in progress)


def build_stream_asset(stream: EventStream, bronze: LakeTable, quarantine: LakeTable) -> dg.AssetsDefinition:
    kinds = {"kafka", "spark", "delta"}
    specs = [
        dg.AssetSpec(
            key=table.asset_path,
            description=table.description,
            group_name="bronze",  # both are landed by one bronze step (the stream sensor's runs)
            kinds=kinds,
            tags={LANE_TAG: STREAM_LANE},
            # The lake's description of the table (key, append-only), as the IO manager's tables have.
            metadata={**lake_metadata(table), "topic": stream.topic},
        )
        for table in (bronze, quarantine)
    ]

    def land(
        context: dg.AssetExecutionContext, spark: SparkResource, lakehouse: LakeResource, kafka: KafkaResource
    ) -> Iterator[dg.MaterializeResult]:
        session, lake = spark.session(), lakehouse.lake()
        kafka.ensure_topic(stream.topic, stream.partitions)
        records = (
            session.readStream.format("kafka")
            .options(**kafka.spark_options())
            .option("subscribe", stream.topic)
            .option("startingOffsets", "earliest")
            .option("maxOffsetsPerTrigger", MAX_OFFSETS_PER_BATCH)
            .load()
        )
        parsed = parsed_records(records, stream)
        targets = {
            bronze: landed_events(parsed, stream, context.run_id),
            quarantine: quarantined_records(parsed, context.run_id),
        }
        queries = {}
        for table, frame in targets.items():
            uri = lake.uri(dg.AssetKey(table.asset_path))
            queries[table] = start_query(frame, uri, checkpoint_uri(lake, table))
        for table, query in queries.items():
            try:
                query.awaitTermination()
            except Exception as exc:  # Kafka unreachable, the store refusing a write...
                for other in queries.values():
                    other.stop()
                raise LakeError(
                    f"cannot land {stream.topic} in {'/'.join(table.asset_path)}: "
                    f"{first_line(lake.redact(str(exc)))}"
                ) from None
        for table, frame in targets.items():  # a topic with nothing yet: empty tables, checkable
            _create_if_missing(session, lake, table, frame)
        start, end, records_read = offsets_read(queries[bronze])
        by_date = _rows_of_run(session, lake, bronze, context.run_id, EVENT_DATE)
        by_rule = _rows_of_run(session, lake, quarantine, context.run_id, RULE)
        landed, rejected = sum(by_date.values()), sum(by_rule.values())
        context.log.info(
            f"{stream.topic}: {records_read} record(s) read, {landed} event(s) landed over "
            f"{len(by_date)} event date(s), {rejected} quarantined"
        )
        common = {
            "records_read": records_read,
            "offsets_start": dg.MetadataValue.json(start or {}),
            "offsets_end": dg.MetadataValue.json(end or {}),
        }
        yield dg.MaterializeResult(
            asset_key=bronze.asset_path,
            metadata={
                **_table_metadata(lake, bronze),
                **common,
                "rows_landed": landed,
                "event_dates": dg.MetadataValue.json({str(day): n for day, n in sorted(by_date.items())}),
            },
        )
        yield dg.MaterializeResult(
            asset_key=quarantine.asset_path,
            metadata={
                **_table_metadata(lake, quarantine),
                **common,
                "rows_quarantined": rejected,
                "quarantined_by_rule": dg.MetadataValue.json(dict(sorted(by_rule.items()))),
            },
        )

    @dg.multi_asset(specs=specs, name=f"bronze_{stream.name}", pool=bronze.pool)
    def land_stream(
        context: dg.AssetExecutionContext, spark: SparkResource, lakehouse: LakeResource, kafka: KafkaResource
    ) -> Iterator[dg.MaterializeResult]:
        # Kafka or the lake unreachable in an automation run: retried with backoff (safe: a retried
        # query restarts from its checkpoint, so no offset is landed twice or skipped).
        with retry_when_unreachable(context.run.tags, context.retry_number):
            yield from land(context, spark, lakehouse, kafka)

    return land_stream


def _create_if_missing(spark: SparkSession, lake: Lake, table: LakeTable, stream: DataFrame) -> None:
    uri = lake.uri(dg.AssetKey(table.asset_path))
    if lake.open(uri) is None:
        spark.createDataFrame([], stream.schema).write.format("delta").mode("append").save(uri)


def _rows_of_run(spark: SparkSession, lake: Lake, table: LakeTable, run_id: str, column: str) -> dict:
    """Rows the run wrote, per value of `column` (files of other runs are skipped by their
    statistics: a file holds one run's rows)."""
    frame = lake.frame(spark, dg.AssetKey(table.asset_path))
    if frame is None:
        return {}
    rows = frame.filter(F.col(RUN_ID) == run_id).groupBy(column).count().collect()
    return {row[column]: row["count"] for row in rows}


def _table_metadata(lake: Lake, table: LakeTable) -> dict:
    uri = lake.uri(dg.AssetKey(table.asset_path))
    log = lake.open(uri)
    if log is None:  # nothing ever arrived: the query commits no table
        return {"dagster/row_count": 0, "dagster/uri": uri}
    # The table's schema from its Delta log, for Dagster's column-schema change check.
    columns = [
        dg.TableColumn(f.name, getattr(f.type, "type", None) or f.type.to_json()) for f in log.schema().fields
    ]
    return {
        "dagster/row_count": lake.rows_in(log, None),
        "dagster/uri": uri,
        "delta_version": log.version(),
        "dagster/column_schema": dg.TableSchema(columns=columns),
    }


def stream_assets() -> list[dg.AssetsDefinition]:
    return [
        build_stream_asset(stream, bronze, quarantine)
        for stream, bronze, quarantine in zip(
            EVENT_STREAMS.values(), EVENT_BRONZE_TABLES, EVENT_QUARANTINE_TABLES, strict=True
        )
    ]
