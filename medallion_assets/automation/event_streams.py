"""The event-stream sensor: new offsets on a topic become one run of its bronze stream asset.

Each tick compares, per stream, the topic's end offsets (Kafka) with the offsets its two queries
last committed (the checkpoints in the lake, bronze/streams.py `committed_offsets`); a partition
ahead of its checkpoint requests one run of that stream's asset (its bronze and quarantine tables).
The run key names the end offsets, so a repeated tick never requests the same offsets twice, and a
run killed mid-way is requested again once more records arrive (or by hand: the checkpoint knows
where it stopped). The run itself reads up to the end offsets of its own moment, which may be more.
Kafka unreachable or the lake unreadable: the tick skips with the reason, nothing is lost. A poll
never starts the embedded broker: with none running (and no MEDALLION_KAFKA_BOOTSTRAP) it skips.
"""

# No `from __future__ import annotations`: Dagster inspects the context annotation at definition time.
import dagster as dg

from medallion_assets.bronze.streams import committed_offsets
from medallion_assets.resources.delta_lake import LakeError, LakeResource
from medallion_assets.resources.kafka import KafkaError, KafkaResource
from medallion_assets.resources.retries import RETRY_TAGS
from medallion_assets.specs.events import EVENT_BRONZE_TABLES, EVENT_QUARANTINE_TABLES, EVENT_STREAMS
from medallion_assets.tags import TRIGGER_TAG

STREAM_TABLES = list(zip(EVENT_STREAMS.values(), EVENT_BRONZE_TABLES, EVENT_QUARANTINE_TABLES, strict=True))


def new_offsets(end: dict[int, int], committed: dict[str, int]) -> dict[int, tuple[int, int]]:
    """{partition: (committed, end)} of the partitions holding records past the checkpoint."""
    return {p: (committed.get(str(p), 0), n) for p, n in sorted(end.items()) if n > committed.get(str(p), 0)}


def event_streams_sensor(status: dg.DefaultSensorStatus, every_seconds: int = 30) -> dg.SensorDefinition:
    keys = [
        dg.AssetKey(t.asset_path) for _, bronze, quarantine in STREAM_TABLES for t in (bronze, quarantine)
    ]

    @dg.sensor(
        name="event_streams",
        description="Lands new Kafka records in bronze: one run per topic with offsets past its checkpoint.",
        minimum_interval_seconds=every_seconds,
        target=dg.AssetSelection.assets(*keys),
        default_status=status,
    )
    def event_streams(
        context: dg.SensorEvaluationContext, kafka: KafkaResource, lakehouse: LakeResource
    ) -> dg.SensorResult | dg.SkipReason:
        if not kafka.is_up():
            return dg.SkipReason(
                "no Kafka broker running: the embedded one starts with `medallion source advance` "
                "or `medallion kafka start`, or set MEDALLION_KAFKA_BOOTSTRAP"
            )
        lake, requests = lakehouse.lake(), []
        for stream, bronze, quarantine in STREAM_TABLES:
            try:
                end = kafka.end_offsets(stream.topic)
                # Both queries read the same offsets: the one further behind says what is left.
                landed = committed_offsets(lake, bronze).get(stream.topic, {})
                held = committed_offsets(lake, quarantine).get(stream.topic, {})
                done = {p: min(n, held.get(p, 0)) for p, n in landed.items()}
            except (KafkaError, LakeError, OSError) as exc:
                return dg.SkipReason(f"{stream.topic}: offsets not readable ({exc}); nothing requested")
            ahead = new_offsets(end, done)
            if not ahead:
                continue
            records = sum(n - c for c, n in ahead.values())
            context.log.info(f"{stream.topic}: {records:,} new record(s) on partition(s) {sorted(ahead)}")
            requests.append(
                dg.RunRequest(
                    run_key=f"{stream.name}@" + ",".join(f"{p}:{n}" for p, n in sorted(end.items())),
                    asset_selection=[dg.AssetKey(bronze.asset_path), dg.AssetKey(quarantine.asset_path)],
                    # Retrying is safe: a stream run restarts from its checkpoint (exactly-once).
                    tags={TRIGGER_TAG: "event_streams", **RETRY_TAGS},
                )
            )
        if not requests:
            return dg.SkipReason("no new records on any topic")
        return dg.SensorResult(run_requests=requests)

    return event_streams
