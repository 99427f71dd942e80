"""Turn the final-state Olist files into the history of changes a live source would have seen.

The Kaggle files hold each row as it ended up. A production database saw it change: an order is
created at purchase, then approved, shipped, delivered (or canceled); a review is created, then
answered; people move house and products get re-categorised. `build_replay` derives, for every
table, the *versions* of every row and the moment (`valid_from`) each became true, entirely with
whole-column operations. The source system at time T is then, per key, the latest version with
valid_from <= T (see `system.py`).

Rules (also in the README):
- orders: a version at purchase (status `created`), at `order_approved_at` (`approved`), at
  `order_delivered_carrier_date` (`shipped`), at `order_delivered_customer_date` (`delivered`),
  each showing only the timestamps known by then; when the file's final status is another one
  (canceled, unavailable, invoiced, processing, ...), a last version with the file's row follows
  1-72 hours after the last known timestamp. Version times strictly increase per order (a stage
  whose timestamp is earlier than the previous stage's happens 1 s after it).
- order_reviews: created at `review_creation_date` without answer; answered at
  `review_answer_timestamp`.
- order_items and order_payments arrive with their order (its purchase time).
- customers, products and sellers appear when first used by an order, and
  geolocation and the category translation at the start of history ("genesis": the earliest
  purchase or review). A row whose parent is absent from the files (the partial sample) is known
  from genesis: its own time is unknown, and it must not be lost.
- synthetic attribute changes (unless turned off): a deterministic 5% of customers move house,
  5% of products change category or weight, 10% of sellers move, at a time between first use and
  the end of history. They are recorded in `attribute_changes`; the final state is the files plus
  those changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from medallion_assets.sources.olist_db import ATTRIBUTE_CHANGES_SCHEMA
from medallion_assets.specs import OLIST_TABLES, TABLES_BY_NAME
from olist_source.arrow import US_PER_S, mask, micros

AttributeChanges = Literal["synthetic", "none"]
US_PER_HOUR = 3600 * US_PER_S
VERSION_COLUMNS = ("created_at", "valid_from", "version_no")
ORDER_STAGES = (  # (column revealing the stage, status the order has from then on)
    ("order_purchase_timestamp", "created"),
    ("order_approved_at", "approved"),
    ("order_delivered_carrier_date", "shipped"),
    ("order_delivered_customer_date", "delivered"),
)
CHANGE_RATES = {"customers": 0.05, "products": 0.05, "sellers": 0.10}


DAY_MICROS = 86_400_000_000


@dataclass(frozen=True)
class Replay:
    versions: dict[str, pa.Table]  # per table: the spec's columns + created_at, valid_from, version_no
    attribute_changes: pa.Table
    genesis: np.datetime64
    end: np.datetime64
    # The end of the last day of regular trading: Olist's history thins out over its last weeks
    # (deliveries and reviews of the last orders, a few stray orders), which no daily run of a live
    # shop looks like. A source loaded up to here has the rest to replay with `advance`.
    regular_end: np.datetime64

    def version_counts(self) -> dict[str, int]:
        return {name: t.num_rows for name, t in self.versions.items()}


def build_replay(
    tables: dict[str, pa.Table], attribute_changes: AttributeChanges = "synthetic", seed: int = 42
) -> Replay:
    orders = tables["orders"]
    purchase = micros(orders.column("order_purchase_timestamp"))
    review_created = micros(tables["order_reviews"].column("review_creation_date"))
    starts = np.concatenate([purchase, review_created])
    genesis = int(starts.min()) if starts.size else 0
    purchase_of = _Lookup(orders.column("order_id"), purchase, genesis)

    items = tables["order_items"]
    item_time = purchase_of(items.column("order_id"))
    first_seen = {
        "customers": _first_use(
            orders.column("customer_id"), purchase, tables["customers"], "customer_id", genesis
        ),
        "products": _first_use(
            items.column("product_id"), item_time, tables["products"], "product_id", genesis
        ),
        "sellers": _first_use(items.column("seller_id"), item_time, tables["sellers"], "seller_id", genesis),
    }
    versions = {
        "orders": _order_versions(orders, seed),
        "order_reviews": _review_versions(tables["order_reviews"]),
        "order_items": _single_version(items, item_time),
        "order_payments": _single_version(
            tables["order_payments"], purchase_of(tables["order_payments"].column("order_id"))
        ),
        "geolocation": _single_version(
            tables["geolocation"], np.full(tables["geolocation"].num_rows, genesis)
        ),
        "product_category_name_translation": _single_version(
            tables["product_category_name_translation"],
            np.full(tables["product_category_name_translation"].num_rows, genesis),
        ),
    }
    core_end = max(
        int(v.column("valid_from").cast(pa.int64()).to_numpy().max(initial=genesis))
        for v in versions.values()
    )
    change_log = []
    for name, seen in first_seen.items():
        entity_versions, changes = _entity_versions(
            name, tables[name], seen, core_end, seed if attribute_changes == "synthetic" else None
        )
        versions[name] = entity_versions
        change_log.append(changes)
    ordered = {spec.name: versions[spec.name] for spec in OLIST_TABLES}
    return Replay(
        versions=ordered,
        attribute_changes=pa.concat_tables(change_log),
        genesis=np.datetime64(genesis, "us"),
        end=np.datetime64(core_end, "us"),
        regular_end=min(regular_trading_end(orders), np.datetime64(core_end, "us")),
    )


REGULAR_DAYS = 120  # the typical day: the median day with orders over the last four months of them


def regular_trading_end(orders: pa.Table) -> np.datetime64:
    """Midnight after the last day with at least half a typical day's orders."""
    purchase = micros(orders.column("order_purchase_timestamp"))
    if not purchase.size:
        return np.datetime64(0, "us")
    days, counts = np.unique(purchase // DAY_MICROS, return_counts=True)
    typical = np.median(counts[-REGULAR_DAYS:])
    return np.datetime64(int(days[counts >= typical / 2].max() + 1) * DAY_MICROS, "us")


# ----------------------------------------------------------------------------------------- tables


def _order_versions(orders: pa.Table, seed: int) -> pa.Table:
    n = orders.num_rows
    purchase = micros(orders.column("order_purchase_timestamp"))
    times, present = [purchase], [np.ones(n, dtype=bool)]
    running = purchase.copy()
    for column, _ in ORDER_STAGES[1:]:
        ts = micros(orders.column(column))
        known = ts >= 0
        stage_time = np.where(known, np.maximum(ts, running + US_PER_S), -1)
        running = np.where(known, stage_time, running)
        times.append(stage_time)
        present.append(known)
    last_stage = np.max(np.where(np.array(present), np.arange(len(ORDER_STAGES))[:, None], 0), axis=0)
    stage_status = pa.array([status for _, status in ORDER_STAGES])
    final_status = orders.column("order_status").combine_chunks()
    needs_final = pc.not_equal(final_status, stage_status.take(pa.array(last_stage))).to_numpy(
        zero_copy_only=False
    )
    delay = (
        US_PER_HOUR
        + (_stable_hash(orders.column("order_id"), seed) % (71 * 3600)).astype(np.int64) * US_PER_S
    )

    parts = []
    for k, (_, status) in enumerate(ORDER_STAGES):
        row = orders
        for column, _ in ORDER_STAGES[k + 1 :]:  # timestamps not known yet at this stage
            row = row.set_column(row.schema.get_field_index(column), column, pa.nulls(n, pa.timestamp("us")))
        row = row.set_column(
            row.schema.get_field_index("order_status"),
            "order_status",
            pa.array([status] * n) if n else pa.array([], pa.string()),
        )
        parts.append(_with_version(row, purchase, times[k], k).filter(pa.array(present[k])))
    final = _with_version(orders, purchase, running + delay, len(ORDER_STAGES))
    parts.append(final.filter(pa.array(needs_final)))
    return pa.concat_tables(parts)


def _review_versions(reviews: pa.Table) -> pa.Table:
    created = micros(reviews.column("review_creation_date"))
    answered = micros(reviews.column("review_answer_timestamp"))
    is_answered = answered >= 0
    unanswered = reviews.set_column(
        reviews.schema.get_field_index("review_answer_timestamp"),
        "review_answer_timestamp",
        pa.nulls(reviews.num_rows, pa.timestamp("us")),
    )
    return pa.concat_tables(
        [
            _with_version(unanswered, created, created, 0),
            _with_version(reviews, created, np.maximum(answered, created + US_PER_S), 1).filter(
                pa.array(is_answered)
            ),
        ]
    )


def _single_version(table: pa.Table, valid_from: np.ndarray) -> pa.Table:
    return _with_version(table, valid_from, valid_from, 0)


def _entity_versions(
    name: str, table: pa.Table, first_seen: np.ndarray, end: int, seed: int | None
) -> tuple[pa.Table, pa.Table]:
    """Version 0 when first used; for a chosen few (if seed is given) a changed version 1 later."""
    original = _with_version(table, first_seen, first_seen, 0)
    if seed is None or table.num_rows == 0:
        return original, ATTRIBUTE_CHANGES_SCHEMA.empty_table()
    spec = TABLES_BY_NAME[name]
    key = table.column(spec.primary_key[0])
    h = _stable_hash(key, seed)
    span = end - first_seen
    chosen = ((h % 1000) < CHANGE_RATES[name] * 1000) & (span > 86_400 * US_PER_S)
    fraction = 0.05 + 0.9 * ((h >> 20) % 10_000) / 10_000
    changed_at = first_seen + (span * fraction).astype(np.int64) // US_PER_S * US_PER_S
    donor = pa.array(((h >> 8) % table.num_rows).astype(np.int64))

    if name == "products":
        by_category = (h >> 4) % 2 == 0
        weight = pc.cast(table.column("product_weight_g"), pa.float64())
        factor = pa.array(1.1 + ((h >> 12) % 90) / 100)
        proposals = {
            "product_category_name": (
                chosen & by_category,
                table.column("product_category_name").take(donor),
            ),
            "product_weight_g": (
                chosen & ~by_category,
                pc.cast(pc.round(pc.multiply(weight, factor)), pa.int32()),
            ),
        }
        new_values = {c: v for c, (_, v) in proposals.items()}
        applies = {
            c: m & mask(pc.is_valid(v)) & _differs(table.column(c), v) for c, (m, v) in proposals.items()
        }
    else:
        # A seller or customer moves to another one's address: all address columns change together.
        prefix = "customer" if name == "customers" else "seller"
        zip_column = f"{prefix}_zip_code_prefix"
        new_values = {
            f"{prefix}_{part}": table.column(f"{prefix}_{part}").take(donor)
            for part in ("zip_code_prefix", "city", "state")
        }
        moves = chosen & _differs(table.column(zip_column), new_values[zip_column])
        applies = dict.fromkeys(new_values, moves)

    changed, logs = table, []
    for column, values in new_values.items():
        old = table.column(column)
        changed = changed.set_column(
            changed.schema.get_field_index(column), column, pc.if_else(pa.array(applies[column]), values, old)
        )
        logged = pa.array(applies[column] & _differs(old, values))
        logs.append(
            pa.table(
                {
                    "table_name": pa.array(np.full(int(pc.sum(logged).as_py() or 0), name)).cast(pa.string()),
                    "row_key": key.filter(logged),
                    "column_name": pa.array(np.full(int(pc.sum(logged).as_py() or 0), column)).cast(
                        pa.string()
                    ),
                    "old_value": pc.cast(old, pa.string()).filter(logged),
                    "new_value": pc.cast(values, pa.string()).filter(logged),
                    "changed_at": pa.array(changed_at).cast(pa.timestamp("us")).filter(logged),
                },
                schema=ATTRIBUTE_CHANGES_SCHEMA,
            )
        )
    any_change = np.logical_or.reduce(list(applies.values()))
    later = _with_version(changed, first_seen, changed_at, 1).filter(pa.array(any_change))
    return pa.concat_tables([original, later]), pa.concat_tables(logs)


# ---------------------------------------------------------------------------------------- helpers


class _Lookup:
    """Value of an order's purchase time by order_id; genesis for an order the files lack."""

    def __init__(self, keys: pa.ChunkedArray, values: np.ndarray, missing: int) -> None:
        self.keys, self.values, self.missing = keys.combine_chunks(), values, missing

    def __call__(self, wanted: pa.ChunkedArray) -> np.ndarray:
        position = pc.index_in(wanted, self.keys)
        found = pc.fill_null(position, -1).to_numpy()
        return np.where(
            found >= 0, self.values[np.maximum(found, 0)] if self.values.size else 0, self.missing
        )


def _first_use(
    used_key: pa.ChunkedArray, used_at: np.ndarray, entities: pa.Table, key: str, genesis: int
) -> np.ndarray:
    """Earliest time an entity is used (customers by orders, products/sellers by items)."""
    uses = pa.table({"k": used_key, "t": pa.array(used_at)})
    first = uses.group_by("k").aggregate([("t", "min")])
    return _Lookup(first.column("k"), first.column("t_min").to_numpy(), genesis)(entities.column(key))


def _with_version(
    table: pa.Table, created_at: np.ndarray, valid_from: np.ndarray, version_no: int
) -> pa.Table:
    ts = pa.timestamp("us")
    table = table.cast(pa.schema([f.with_nullable(True) for f in table.schema]))  # parts must concatenate
    return (
        table.append_column("created_at", pa.array(created_at, pa.int64()).cast(ts))
        .append_column("valid_from", pa.array(valid_from, pa.int64()).cast(ts))
        .append_column("version_no", pa.array(np.full(table.num_rows, version_no, dtype=np.int16)))
    )


def _differs(a: pa.ChunkedArray | pa.Array, b: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Null-aware inequality: a null and a value differ, two nulls do not."""
    equal = pc.or_kleene(pc.equal(a, b), pc.and_(pc.is_null(a), pc.is_null(b)))
    return ~mask(equal)


def _stable_hash(keys: pa.ChunkedArray | pa.Array, seed: int) -> np.ndarray:
    """A hash of each key that is the same on every machine and run (pandas' SipHash) for a seed."""
    hash_key = f"{seed:016d}"[-16:]
    return pd.util.hash_array(
        np.asarray(keys.to_numpy(zero_copy_only=False), dtype=object), hash_key=hash_key
    )
