"""The web shop's events: what it publishes to Kafka as the business moves on.

Review events are the review rows the source database receives, in event-time order: one
`review_created` when the customer answers the survey, one `review_answered` when the seller
replies (the two versions of a review in the replay, see replay.py). An event's id is derived from
what it says (stream, review, order, type), so publishing the same stretch of time again sends the
same ids: downstream keeps one row per event id.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from medallion_assets.resources.postgres import connect
from medallion_assets.sources.olist_db import REPLAY_SCHEMA
from medallion_assets.specs.events import REVIEW_EVENTS, EventStream

# Fixed: event ids are uuid5 names in it, the same on every machine and every run.
EVENT_NAMESPACE = uuid.UUID("5b0c3c52-8f3e-4a8e-9d5c-0f1e2d3c4b5a")


class Producer(Protocol):
    """What publishing needs of a Kafka producer (confluent_kafka.Producer)."""

    def produce(self, topic: str, value: bytes, key: bytes, on_delivery: Callable[..., None]) -> None: ...

    def poll(self, timeout: float) -> int: ...

    def flush(self, timeout: float) -> int: ...


def event_id(stream: EventStream, *parts: object) -> str:
    return str(uuid.uuid5(EVENT_NAMESPACE, "|".join([stream.name, *map(str, parts)])))


def review_events(url: str, after: dt.datetime, upto: dt.datetime) -> Iterator[dict[str, Any]]:
    """The review events of (after, upto], in event-time order."""
    columns = [column.name for column in REVIEW_EVENTS.payload]
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT {', '.join(columns)}, valid_from FROM {REPLAY_SCHEMA}.order_reviews"
            " WHERE valid_from > $1 AND valid_from <= $2 ORDER BY valid_from, review_id, order_id",
            (after, upto),
        )
        for *values, event_time in cur.fetchall():
            review = dict(zip(columns, values, strict=True))
            kind = "review_answered" if review["review_answer_timestamp"] is not None else "review_created"
            yield {
                REVIEW_EVENTS.id_field: event_id(
                    REVIEW_EVENTS, review["review_id"], review["order_id"], kind
                ),
                REVIEW_EVENTS.type_field: kind,
                REVIEW_EVENTS.time_field: event_time,
                **review,
            }


def publish(producer: Producer, stream: EventStream, events: Iterable[dict[str, Any]]) -> int:
    """Send the events to the stream's topic, keyed by its key field, in the order given; wait until
    the broker has acknowledged them all (an event it refused is an error, never dropped). The
    number sent."""
    failures: list[str] = []

    def delivered(error: object, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    sent = 0
    for event in events:
        value, key = encode(event), str(event[stream.key]).encode()
        while True:
            try:
                producer.produce(stream.topic, value=value, key=key, on_delivery=delivered)
                break
            except BufferError:  # the client's queue is full: let it send some first
                producer.poll(0.5)
        sent += 1
        if sent % 10_000 == 0:
            producer.poll(0)  # serve delivery reports as we go
    if producer.flush(60):
        raise RuntimeError(f"{stream.topic}: the broker did not acknowledge every event within 60 s")
    if failures:
        raise RuntimeError(f"{stream.topic}: {len(failures)} event(s) not delivered, first: {failures[0]}")
    return sent


def encode(event: dict[str, Any]) -> bytes:
    """JSON: times as ISO text without a zone (Olist's times are zone-less), money as exact text."""

    def plain(value: object) -> object:
        if isinstance(value, dt.datetime | dt.date):
            return value.isoformat()
        if isinstance(value, decimal.Decimal):
            return str(value)
        raise TypeError(f"cannot encode {type(value).__name__}")

    return json.dumps(event, default=plain, separators=(",", ":")).encode()
