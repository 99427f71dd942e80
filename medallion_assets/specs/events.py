"""The web shop's events on Kafka, declared as data like the tables: each stream's topic, message
key, event id, event type, event time and payload columns (the contract silver holds events to).

An event is one JSON object: the envelope (`event_id`, `event_type`, `event_time`, zone-less like
every Olist time) and the payload's fields beside it. The message key is the payload field that
keeps one entity's events in order on one partition (an order's reviews, a shopping session's
clicks); the event id makes a redelivered event one row downstream.
"""

from __future__ import annotations

from dataclasses import dataclass

from medallion_assets.specs.columns import ID_PATTERN, Column
from medallion_assets.specs.lake import INGESTED_AT, RUN_ID, LakeTable
from medallion_assets.specs.quality import Drift, Reference, Rule
from medallion_assets.specs.sources import TABLES_BY_NAME

# A source row's own times: when it was created, and when this version of it was written.
ROW_TIMES = tuple(Column(name, "timestamp", required=True) for name in ("created_at", "updated_at"))
EVENT_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"  # a UUID


@dataclass(frozen=True)
class EventStream:
    """One topic of the web shop's events."""

    name: str
    topic: str
    description: str
    key: str  # the payload field the message is keyed by
    event_types: tuple[str, ...]
    payload: tuple[Column, ...]
    partitions: int = 3
    # The source table whose rows the events carry, version by version (None: events of their own).
    # Silver merges them with that table's change feed, latest wins: the lanes cannot double count.
    changes_of: str | None = None
    # What silver/<stream> (events of their own) proves beyond its key and contract.
    references: tuple[Reference, ...] = ()
    rules: tuple[Rule, ...] = ()
    id_field: str = "event_id"
    type_field: str = "event_type"
    time_field: str = "event_time"

    @property
    def columns(self) -> tuple[Column, ...]:
        """The envelope's columns, then the payload's."""
        return (
            Column(self.id_field, required=True, pattern=EVENT_ID_PATTERN),
            Column(self.type_field, required=True, allowed=self.event_types),
            Column(self.time_field, "timestamp", required=True),
            *self.payload,
        )

    @property
    def envelope_and_key(self) -> tuple[str, ...]:
        """The fields every event must have: without them it cannot be placed or deduplicated."""
        return tuple(dict.fromkeys([self.id_field, self.type_field, self.time_field, self.key]))

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)


REVIEW_EVENTS = EventStream(
    name="review_events",
    topic="olist.review_events",
    description=(
        "Reviews as the web shop publishes them: created when the customer answers the survey, "
        "answered when the seller replies; the same reviews the source database holds."
    ),
    key="order_id",
    event_types=("review_created", "review_answered"),
    changes_of="order_reviews",
    # The row as the database holds it, its times included: the two lanes carry the same versions.
    payload=(*TABLES_BY_NAME["order_reviews"].columns, *ROW_TIMES),
)

CLICKSTREAM = EventStream(
    name="clickstream",
    topic="shop.clickstream",
    description=(
        "Shopping sessions on the web shop: page views, product views, items added to the cart and "
        "checkouts (with the order they placed); sessions that end in an Olist order and abandoned ones."
    ),
    key="session_id",
    event_types=("page_view", "product_view", "add_to_cart", "checkout"),
    payload=(
        Column("session_id", required=True, pattern=EVENT_ID_PATTERN),
        Column("customer_unique_id", pattern=ID_PATTERN),
        Column("page", required=True, allowed=("home", "search", "category", "product", "cart", "checkout")),
        Column("product_id", pattern=ID_PATTERN),
        Column("order_id", pattern=ID_PATTERN),
    ),
    # A checkout places an order the source database holds; the batch lane may bring it to silver
    # after the click (the stream is the faster lane): a share of orders not seen yet only warns.
    references=(
        Reference(
            "order_id",
            "silver/orders",
            "order_id",
            unknown=None,
            max_unknown_share=0.01,
            orphans_allowed=True,
        ),
    ),
    rules=(
        Rule(
            "checkout_places_an_order",
            "A checkout event carries the order it placed, and no other event carries one.",
            "SELECT * FROM rows WHERE (event_type = 'checkout') <> (order_id IS NOT NULL)",
        ),
    ),
)

EVENT_STREAMS: dict[str, EventStream] = {stream.name: stream for stream in (REVIEW_EVENTS, CLICKSTREAM)}


def streams_carrying(table_name: str) -> tuple[EventStream, ...]:
    """The streams whose events are versions of the source table's rows."""
    return tuple(s for s in EVENT_STREAMS.values() if s.changes_of == table_name)


# Lineage of every landed event (and quarantined record): where in Kafka it was, when Kafka and the
# lake got it, the run that landed it. An event's place (topic, partition, offset) is its bronze key:
# a record redelivered by a producer's retry is two places, one event id (silver keeps one).
TOPIC, PARTITION, OFFSET = "_topic", "_partition", "_offset"
MESSAGE_KEY = "_key"
KAFKA_TIMESTAMP = "_kafka_timestamp"
EVENT_DATE = "_event_date"  # the date of the event's own time: a late event lands in its day
RAW = "_raw"  # the record's value as text (bronze) or as bytes (quarantine): nothing is lost
RULE, REASON = "rule", "reason"
EVENT_LINEAGE = (TOPIC, PARTITION, OFFSET, KAFKA_TIMESTAMP, INGESTED_AT, RUN_ID)  # never null


def event_bronze_table(stream: EventStream) -> LakeTable:
    """The stream's events as they arrived: one row per Kafka record that parses, typed."""
    return LakeTable(
        layer="bronze",
        name=stream.name,
        primary_key=(TOPIC, PARTITION, OFFSET),
        partition_column=None,  # a run lands whatever is new: any event dates (see bronze/streams.py)
        write_mode="insert_new",
        description=(
            f"Every {stream.topic} record that parses, typed by its spec, with its Kafka place, the "
            f"event's date and time, and its raw text. {stream.description}"
        ),
        required=(*stream.envelope_and_key, EVENT_DATE, *EVENT_LINEAGE),
    )


def event_quarantine_table(stream: EventStream) -> LakeTable:
    """Records of the stream that do not parse: malformed JSON, a missing envelope field, a value of
    the wrong type; each with the reason and its raw bytes."""
    return LakeTable(
        layer="quarantine",
        name=stream.name,
        primary_key=(TOPIC, PARTITION, OFFSET),
        partition_column=None,
        write_mode="insert_new",
        description=f"Records of {stream.topic} that do not parse as its events, with the reason and bytes.",
        required=(RULE, REASON, *EVENT_LINEAGE),  # not the raw bytes: an empty record has none
    )


def event_silver_table(stream: EventStream) -> LakeTable:
    """The stream's events, one row per event id (its first delivery), by event date."""
    return LakeTable(
        layer="silver",
        name=stream.name,
        primary_key=(stream.id_field,),
        partition_column=EVENT_DATE,
        write_mode="insert_new",  # an event id already in its day is never written again
        description=(
            f"Every {stream.topic} event once: one row per event id (the first delivery of a "
            f"redelivered one), contract-checked, partitioned by the event's date. {stream.description}"
        ),
        columns=stream.columns,
        required=(EVENT_DATE, TOPIC, PARTITION, OFFSET, KAFKA_TIMESTAMP, RUN_ID),
        # A day is complete once the source's clock (the batch lane's) is past it.
        drift=Drift(clock="bronze/orders"),
        references=stream.references,
        rules=stream.rules,
    )


EVENT_BRONZE_TABLES = tuple(event_bronze_table(s) for s in EVENT_STREAMS.values())
# Streams that carry a source table's rows end in that table's silver; the others in their own.
EVENT_SILVER_TABLES = tuple(event_silver_table(s) for s in EVENT_STREAMS.values() if s.changes_of is None)
EVENT_QUARANTINE_TABLES = tuple(event_quarantine_table(s) for s in EVENT_STREAMS.values())
