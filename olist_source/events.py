"""The web shop's events: what it publishes to Kafka as the business moves on.

Clickstream events are the shopping sessions of the stretch, generated deterministically from the
seed the source was loaded with: one session per order placed in the stretch (a few page views,
a view and an add-to-cart per item, the cart, and the checkout carrying the order id at the
order's purchase time), and `ABANDONED_PER_ORDER` sessions on average that view products and may
fill a cart but never check out. `medallion events produce` generates abandoned sessions at a given
rate as a load generator for the same topic.

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
import random
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from medallion_assets.resources.postgres import connect
from medallion_assets.sources.olist_db import REPLAY_SCHEMA
from medallion_assets.specs.events import CLICKSTREAM, REVIEW_EVENTS, EventStream

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
    """The review events of (after, upto], in event-time order: each the review row as the source
    database holds it from that moment (its `updated_at` is the event time), so the stream and the
    database's change feed carry the same versions."""
    columns = [column.name for column in REVIEW_EVENTS.payload]
    stored = ["valid_from AS updated_at" if name == "updated_at" else name for name in columns]
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT {', '.join(stored)}, valid_from FROM {REPLAY_SCHEMA}.order_reviews"
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


ABANDONED_PER_ORDER = 2.0  # sessions without a checkout per order (a 1-in-3 session conversion)
BROWSING_PAGES = ("home", "search", "category")


def clickstream_events(url: str, after: dt.datetime, upto: dt.datetime) -> Iterator[dict[str, Any]]:
    """The shopping sessions of the orders placed in (after, upto] and the abandoned ones beside
    them, in event-time order (a session starts up to 45 minutes before its checkout, so its first
    events can fall before `after`: they arrive late, as a real shop's would)."""
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT seed FROM {REPLAY_SCHEMA}.clock")
        seed = cur.fetchone()[0]
        cur.execute(
            "SELECT o.order_id, o.order_purchase_timestamp, c.customer_unique_id FROM olist.orders o"
            " LEFT JOIN olist.customers c USING (customer_id)"
            " WHERE o.order_purchase_timestamp > $1 AND o.order_purchase_timestamp <= $2"
            " ORDER BY o.order_purchase_timestamp, o.order_id",
            (after, upto),
        )
        orders = cur.fetchall()
        cur.execute(
            "SELECT order_id, product_id FROM olist.order_items WHERE order_id = ANY($1)"
            " ORDER BY order_id, order_item_id",
            ([order_id for order_id, _, _ in orders],),
        )
        items: dict[str, list[str]] = {}
        for order_id, product_id in cur.fetchall():
            items.setdefault(order_id, []).append(product_id)
        cur.execute("SELECT product_id FROM olist.products ORDER BY product_id")
        catalogue = [product_id for (product_id,) in cur.fetchall()]
    events: list[dict[str, Any]] = []
    for order_id, placed, customer in orders:
        rng = random.Random(f"{seed}|{order_id}")
        events += shopping_session(rng, placed, customer, items.get(order_id, []), order_id)
        for _ in range(_abandoned(rng)):
            browsed = rng.sample(catalogue, min(len(catalogue), rng.randint(1, 4)))
            ends = placed - dt.timedelta(minutes=rng.uniform(0, 600))
            events += shopping_session(rng, ends, customer if rng.random() < 0.3 else None, browsed, None)
    yield from sorted(events, key=lambda event: (event["event_time"], event["event_id"]))


def _abandoned(rng: random.Random) -> int:
    whole = int(ABANDONED_PER_ORDER)
    return whole + (rng.random() < ABANDONED_PER_ORDER - whole)


def shopping_session(
    rng: random.Random, ends: dt.datetime, customer: str | None, products: list[str], order_id: str | None
) -> list[dict[str, Any]]:
    """One session ending at `ends`: browsing, a view of each product, then (with an order) a cart
    of them and the checkout; without one, a cart of some of them at most, and no checkout."""
    session = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    steps: list[tuple[str, str, str | None]] = [
        ("page_view", page, None) for page in rng.sample(BROWSING_PAGES, 2)
    ]
    steps += [("product_view", "product", product) for product in products]
    carted = products if order_id else [p for p in products if rng.random() < 0.3]
    steps += [("add_to_cart", "product", product) for product in carted]
    if order_id:
        steps += [("page_view", "cart", None), ("checkout", "checkout", None)]
    elif carted:
        steps.append(("page_view", "cart", None))
    gap = dt.timedelta(minutes=rng.uniform(3, 45)) / max(1, len(steps) - 1)  # the last step at `ends`
    return [
        {
            CLICKSTREAM.id_field: event_id(CLICKSTREAM, session, n),
            CLICKSTREAM.type_field: kind,
            CLICKSTREAM.time_field: (ends - gap * (len(steps) - 1 - n)).replace(microsecond=0),
            "session_id": session,
            "customer_unique_id": customer,
            "page": page,
            "product_id": product,
            "order_id": order_id if kind == "checkout" else None,
        }
        for n, (kind, page, product) in enumerate(steps)
    ]


def load_sessions(seed: int, start: dt.datetime, products: list[str]) -> Iterator[dict[str, Any]]:
    """Endless abandoned sessions from `start` on, a minute apart (the load generator's)."""
    rng = random.Random(f"load|{seed}")
    for n in range(1_000_000_000):
        browsed = rng.sample(products, min(len(products), rng.randint(1, 4)))
        yield from shopping_session(rng, start + dt.timedelta(minutes=n), None, browsed, None)


def publish(
    producer: Producer, stream: EventStream, events: Iterable[dict[str, Any]], flush: bool = True
) -> int:
    """Send the events to the stream's topic, keyed by its key field, in the order given; wait until
    the broker has acknowledged them all (an event it refused is an error, never dropped; without
    `flush` the caller waits later). The number sent."""
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
