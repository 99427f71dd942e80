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
from medallion_assets.specs.sources import TABLES_BY_NAME

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
    payload=TABLES_BY_NAME["order_reviews"].columns,
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
)

EVENT_STREAMS: dict[str, EventStream] = {stream.name: stream for stream in (REVIEW_EVENTS, CLICKSTREAM)}
