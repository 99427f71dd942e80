"""Generate the nine Olist tables with Olist's shape, at any scale, deterministically for a seed.

Scale 1 is about the size of the public dataset (~100k orders). Everything is drawn with numpy in
whole-column operations from one seeded generator, so the output is identical for a seed and
scale 10 needs only a few GB. Shapes copied from the public data: purchases over two years with
growth, weekly seasonality and a Black Friday peak; the real status, items-per-order, payment-type
and review-score mixes; repeat customers under one customer_unique_id with new customer_ids and
sometimes a new address; several geolocation rows per zip prefix; real category names.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from medallion_assets.specs import OLIST_TABLES, TABLES_BY_NAME
from olist_source.arrow import US_PER_DAY, US_PER_S, mask, micros
from olist_source.brazil import STATES, without_accents
from olist_source.kaggle_csv import read_table, write_table

FIRST_PURCHASE = dt.datetime(2016, 9, 4)
LAST_PURCHASE = dt.datetime(2018, 10, 17)

ORDER_STATUSES = {  # final status mix of the public data
    "delivered": 0.97020,
    "shipped": 0.01113,
    "canceled": 0.00629,
    "unavailable": 0.00613,
    "invoiced": 0.00316,
    "processing": 0.00303,
    "created": 0.00005,
    "approved": 0.00001,
}
ITEMS_PER_ORDER = {
    1: 0.9010,
    2: 0.0764,
    3: 0.0118,
    4: 0.0051,
    5: 0.0020,
    6: 0.0020,
    7: 0.0005,
    8: 0.0002,
    9: 0.0001,
    10: 0.0003,
    11: 0.0001,
    12: 0.0002,
    13: 0.00002,
    14: 0.00002,
    15: 0.00002,
    20: 0.00002,
    21: 0.00001,
}
PAYMENT_TYPES = {"credit_card": 0.739, "boleto": 0.190, "voucher": 0.056, "debit_card": 0.015}
REVIEW_SCORES = np.array([1, 2, 3, 4, 5])
SCORE_MIX_ON_TIME = np.array([0.07, 0.03, 0.08, 0.20, 0.62])
SCORE_MIX_LATE = np.array([0.46, 0.10, 0.13, 0.12, 0.19])
WEEKDAY_WEIGHT = np.array([1.15, 1.13, 1.09, 1.04, 0.98, 0.78, 0.86])  # Monday first
HOUR_WEIGHT = np.array(
    [
        2.4,
        1.1,
        0.5,
        0.3,
        0.2,
        0.2,
        0.5,
        1.3,
        3.0,
        4.8,
        6.2,
        6.6,
        6.1,
        6.6,
        6.6,
        6.4,
        6.4,
        6.1,
        5.8,
        5.8,
        6.3,
        6.4,
        6.2,
        4.7,
    ]
)
UNTRANSLATED_CATEGORIES = ("pc_gamer", "portateis_cozinha_e_preparadores_de_alimentos")
REVIEW_TITLES = (
    "recomendo",
    "Ótimo",
    "Muito bom",
    "Excelente",
    "Super recomendo",
    "Bom",
    "Não recebi",
    "Produto com defeito",
    "Entrega rápida",
    "Péssimo",
    "Adorei",
    "nota 10",
)
REVIEW_MESSAGES = (
    "Produto chegou antes do prazo, muito bem embalado.",
    "Recebi bem antes do prazo estipulado.",
    "Ainda não recebi o produto",
    "O produto é ótimo, recomendo a loja!",
    'Veio diferente do anunciado: pedi "azul" e chegou preto.',
    "Entrega rápida e produto de qualidade",
    "Comprei dois e só chegou um.\r\nAguardo retorno da loja.",
    "Não gostei, material fraco, não vale o preço.",
    "Parabéns lojas lannister, adorei comprar pela internet, seguro e prático.",
    "Tudo certo.",
    "A compra foi realizada facilmente.\r\nA entrega foi efetuada muito antes do prazo dado.",
    "produto com defeito, já solicitei a troca",
    "Muito bom",
    "Atendeu às expectativas. Entrega no prazo; nota fiscal ok.",
)
# Zip prefixes customers may live in without the geolocation file knowing them (as in Olist).
ZIPS_MISSING_FROM_GEOLOCATION_SHARE = 0.003


@dataclass(frozen=True)
class GenerationResult:
    tables: dict[str, pa.Table]

    def row_counts(self) -> dict[str, int]:
        return {name: table.num_rows for name, table in self.tables.items()}


def generate(scale: float = 1.0, seed: int = 42) -> GenerationResult:
    if scale <= 0:
        raise ValueError("scale must be positive")
    rng = np.random.default_rng(seed)
    translation = _translation_table()
    places = _places(rng, scale)
    n_orders = max(20, round(99_441 * scale))
    sellers = _sellers(rng, max(5, round(3_095 * scale)), places)
    products, product_facts = _products(rng, max(20, round(32_951 * scale)), sellers.num_rows, translation)
    orders, customers = _orders_and_customers(rng, n_orders, places)
    items = _order_items(rng, orders, products, product_facts, sellers)
    payments = _order_payments(rng, orders, items)
    reviews = _order_reviews(rng, orders)
    tables = {
        "customers": customers,
        "geolocation": places.geolocation,
        "orders": orders,
        "order_items": items,
        "order_payments": payments,
        "order_reviews": reviews,
        "products": products,
        "sellers": sellers,
        "product_category_name_translation": translation,
    }
    return GenerationResult({name: _conform(name, table) for name, table in tables.items()})


def write_kaggle_files(result: GenerationResult, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for spec in OLIST_TABLES:
        path = out_dir / spec.csv_file
        table = result.tables[spec.name]
        if spec.row_number_key:
            table = table.drop_columns([spec.row_number_key])
        write_table(spec, table, path)
        paths.append(path)
    return paths


# ------------------------------------------------------------------------------------------ helpers


def _conform(name: str, table: pa.Table) -> pa.Table:
    spec = TABLES_BY_NAME[name]
    return table.select([c.name for c in spec.all_columns]).cast(spec.arrow_schema)


def _hex_ids(rng: np.random.Generator, n: int) -> pa.Array:
    """n random 32-character hex ids (like Olist's md5-looking keys), built without a Python loop."""
    data = rng.bytes(16 * n).hex().encode("ascii")
    offsets = np.arange(0, 32 * n + 1, 32, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def _choice(rng: np.random.Generator, weights: dict | np.ndarray, n: int) -> np.ndarray:
    w = np.asarray(list(weights.values()) if isinstance(weights, dict) else weights, dtype=float)
    return rng.choice(len(w), size=n, p=w / w.sum())


def _take(values: list | tuple, indices: np.ndarray) -> pa.Array:
    return pa.array(list(values)).take(pa.array(indices))


def _timestamps(us: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """Timestamps in whole seconds, as the Kaggle files write them; null where not `valid`."""
    mask = None if valid is None else ~valid
    return pa.array(us // US_PER_S * US_PER_S, type=pa.int64(), mask=mask).cast(pa.timestamp("us"))


def _translation_table() -> pa.Table:
    ref = resources.files("olist_source") / "reference" / "product_category_name_translation.csv"
    with resources.as_file(ref) as path:
        table, _ = read_table(TABLES_BY_NAME["product_category_name_translation"], Path(path))
    return table


# --------------------------------------------------------------------------------------- geography


@dataclass(frozen=True)
class _Places:
    geolocation: pa.Table
    prefixes: np.ndarray  # int zip prefixes known to geolocation
    cities: pa.Array  # city (with accents) per prefix
    states: pa.Array
    state_index: np.ndarray
    extra_prefixes: np.ndarray  # prefixes customers use that geolocation lacks
    extra_state_index: np.ndarray


def _places(rng: np.random.Generator, scale: float) -> _Places:
    n_prefixes = int(np.clip(round(19_015 * np.sqrt(scale)), 30, 60_000))
    rows_per_prefix_mean = max(2.0, 52.6 * np.sqrt(min(scale, 1.0)))
    state_weights = np.array([s.customer_share for s in STATES])
    state_index = np.sort(_choice(rng, state_weights, n_prefixes))
    # Distinct prefixes per state inside the state's CEP range.
    prefixes = np.empty(n_prefixes, dtype=np.int64)
    for s, state in enumerate(STATES):
        members = np.flatnonzero(state_index == s)
        lo, hi = state.zip_ranges[0]
        count = min(members.size, hi - lo + 1)
        prefixes[members[:count]] = lo + rng.choice(hi - lo + 1, size=count, replace=False)
        state_index[members[count:]] = -1  # a tiny state can run out of prefixes
    keep = state_index >= 0
    prefixes, state_index = prefixes[keep], state_index[keep]
    n_extra = max(1, round(prefixes.size * ZIPS_MISSING_FROM_GEOLOCATION_SHARE))
    extra = rng.choice(prefixes.size, size=n_extra, replace=False)
    extra_mask = np.zeros(prefixes.size, dtype=bool)
    extra_mask[extra] = True
    extra_prefixes, extra_state_index = prefixes[extra_mask], state_index[extra_mask]
    prefixes, state_index = prefixes[~extra_mask], state_index[~extra_mask]

    # City per prefix: the capital takes a third of the state's prefixes, the rest share the others.
    city_names: list[str] = []
    city_of_prefix = np.empty(prefixes.size, dtype=np.int64)
    for s, state in enumerate(STATES):
        members = np.flatnonzero(state_index == s)
        weights = np.array([3.0] + [1.0] * (len(state.cities) - 1))
        city_of_prefix[members] = len(city_names) + _choice(rng, weights, members.size)
        city_names.extend(state.cities)
    cities = _take(city_names, city_of_prefix)
    states = _take([s.code for s in STATES], state_index)

    rows = 1 + rng.poisson(rows_per_prefix_mean - 1, size=prefixes.size)
    row_prefix = np.repeat(np.arange(prefixes.size), rows)
    n_rows = row_prefix.size
    center_lat = np.array([s.lat for s in STATES])[state_index] + rng.normal(0, 0.8, prefixes.size)
    center_lng = np.array([s.lng for s in STATES])[state_index] + rng.normal(0, 0.8, prefixes.size)
    lat = center_lat[row_prefix] + rng.normal(0, 0.01, n_rows)
    lng = center_lng[row_prefix] + rng.normal(0, 0.01, n_rows)
    # Olist spells one city both with and without accents ("são paulo" / "sao paulo").
    city_rows = cities.take(pa.array(row_prefix))
    plain = rng.random(n_rows) < 0.6
    city_rows = pc.if_else(
        pa.array(plain),
        _take([without_accents(c) for c in city_names], city_of_prefix[row_prefix]),
        city_rows,
    )
    geolocation = pa.table(
        {
            "geolocation_id": pa.array(np.arange(1, n_rows + 1), pa.int32()),
            "geolocation_zip_code_prefix": _zip_text(prefixes[row_prefix]),
            "geolocation_lat": lat,
            "geolocation_lng": lng,
            "geolocation_city": city_rows,
            "geolocation_state": states.take(pa.array(row_prefix)),
        }
    )
    return _Places(geolocation, prefixes, cities, states, state_index, extra_prefixes, extra_state_index)


def _zip_text(prefixes: np.ndarray) -> pa.Array:
    return pc.utf8_lpad(pc.cast(pa.array(prefixes), pa.string()), 5, "0")


def _addresses(
    rng: np.random.Generator, places: _Places, n: int, seller: bool = False
) -> dict[str, pa.Array]:
    """n addresses (zip, plain city, state) drawn by the customer (or seller) share of each state."""
    shares = np.array([s.seller_share if seller else s.customer_share for s in STATES])
    weight = (
        shares[places.state_index]
        / np.bincount(places.state_index, minlength=len(STATES))[places.state_index]
    )
    pick = _choice(rng, weight, n)
    zips = places.prefixes[pick]
    cities = pc.utf8_lower(places.cities.take(pa.array(pick)))
    states = places.states.take(pa.array(pick))
    if not seller and places.extra_prefixes.size:
        unknown = rng.random(n) < ZIPS_MISSING_FROM_GEOLOCATION_SHARE
        extra_pick = rng.integers(0, places.extra_prefixes.size, size=n)
        zips = np.where(unknown, places.extra_prefixes[extra_pick], zips)
        capital = pa.array([s.cities[0] for s in STATES]).take(pa.array(places.extra_state_index[extra_pick]))
        extra_state = pa.array([s.code for s in STATES]).take(pa.array(places.extra_state_index[extra_pick]))
        cities = pc.if_else(pa.array(unknown), capital, cities)
        states = pc.if_else(pa.array(unknown), extra_state, states)
    plain_cities = pa.array([without_accents(c) for c in pc.unique(cities).to_pylist()])
    cities = plain_cities.take(pc.index_in(cities, pc.unique(cities)))
    return {"zip": _zip_text(zips), "city": cities, "state": states}


# ------------------------------------------------------------------------------ sellers and products


def _sellers(rng: np.random.Generator, n: int, places: _Places) -> pa.Table:
    address = _addresses(rng, places, n, seller=True)
    return pa.table(
        {
            "seller_id": _hex_ids(rng, n),
            "seller_zip_code_prefix": address["zip"],
            "seller_city": address["city"],
            "seller_state": address["state"],
        }
    )


def _products(
    rng: np.random.Generator, n: int, n_sellers: int, translation: pa.Table
) -> tuple[pa.Table, dict[str, np.ndarray]]:
    categories = translation.column("product_category_name").to_pylist() + list(UNTRANSLATED_CATEGORIES)
    popularity = 1.0 / np.arange(1, len(categories) + 1) ** 1.1
    popularity[-len(UNTRANSLATED_CATEGORIES) :] = popularity[-1] * 2  # rare, like in Olist
    category_index = _choice(rng, popularity, n)
    no_category = rng.random(n) < 0.0185
    description_missing = pa.array(no_category)
    null_int = pa.scalar(None, pa.int32())

    def unless_missing(values: np.ndarray) -> pa.Array:
        return pc.if_else(description_missing, null_int, pa.array(values.astype(np.int32)))

    weight = np.clip(np.round(rng.lognormal(6.6, 1.2, n)), 0, 40_425).astype(np.int32)
    dims_missing = np.zeros(n, dtype=bool)
    dims_missing[rng.choice(n, size=max(1, round(n * 0.00006)), replace=False)] = True

    def dimension(mean_log: float, lo: int, hi: int) -> pa.Array:
        values = np.clip(np.round(rng.lognormal(mean_log, 0.55, n)), lo, hi).astype(np.int32)
        return pa.array(values, mask=dims_missing)

    # Sellers are concentrated: a few sell a large share of the catalogue.
    seller_of_product = _choice(rng, 1.0 / np.arange(1, n_sellers + 1) ** 0.8, n)
    category_price = rng.lognormal(4.3, 0.5, len(categories))
    price_cents = np.round(category_price[category_index] * rng.lognormal(0, 0.8, n) * 100)
    price_cents = np.clip(price_cents - price_cents % 10 + 90 * (rng.random(n) < 0.5), 85, 680_000)
    table = pa.table(
        {
            "product_id": _hex_ids(rng, n),
            "product_category_name": pc.if_else(
                description_missing, pa.scalar(None, pa.string()), _take(categories, category_index)
            ),
            "product_name_lenght": unless_missing(rng.integers(5, 77, n)),
            "product_description_lenght": unless_missing(np.clip(rng.lognormal(6.5, 0.7, n), 4, 3992)),
            "product_photos_qty": unless_missing(1 + rng.geometric(0.55, n) - 1),
            "product_weight_g": pa.array(weight, mask=dims_missing),
            "product_length_cm": dimension(3.3, 7, 105),
            "product_height_cm": dimension(2.6, 2, 105),
            "product_width_cm": dimension(3.0, 6, 118),
        }
    )
    return table, {
        "price_cents": price_cents.astype(np.int64),
        "seller": seller_of_product,
        "weight": weight.astype(np.int64),
    }


# ---------------------------------------------------------------------------- orders and customers


def _purchase_times(rng: np.random.Generator, n: int) -> np.ndarray:
    days = np.arange(np.datetime64(FIRST_PURCHASE.date()), np.datetime64(LAST_PURCHASE.date()) + 1)
    t = (days - days[0]).astype(np.int64).astype(float)
    growth = 1.0 / (1.0 + np.exp(-(t - 300) / 70))  # slow start in 2016, plateau from mid-2018
    tail = np.where(days > np.datetime64("2018-08-29"), 0.01, 1.0)  # the data set fades out
    weekday = WEEKDAY_WEIGHT[(days.astype("datetime64[D]").view(np.int64) - 4) % 7]
    peak = np.where(days == np.datetime64("2017-11-24"), 4.0, 1.0)  # Black Friday
    day = _choice(rng, growth * tail * weekday * peak, n)
    second_of_day = _choice(rng, HOUR_WEIGHT, n) * 3600 + rng.integers(0, 3600, n)
    start = days[0].astype("datetime64[us]").astype(np.int64)
    return np.sort(start + day * US_PER_DAY + second_of_day * US_PER_S)


def _orders_and_customers(rng: np.random.Generator, n: int, places: _Places) -> tuple[pa.Table, pa.Table]:
    purchase = _purchase_times(rng, n)
    status_names = list(ORDER_STATUSES)
    status = _choice(rng, ORDER_STATUSES, n)
    is_ = {name: status == i for i, name in enumerate(status_names)}

    def hours(mean: float, size: int = n) -> np.ndarray:
        return (rng.gamma(1.5, mean / 1.5, size) * 3600 * US_PER_S).astype(np.int64)

    approved = purchase + (rng.lognormal(7.0, 1.6, n).clip(30, 3 * 86_400) * US_PER_S).astype(np.int64)
    has_approved = ~(is_["created"] | (is_["canceled"] & (rng.random(n) < 0.2)))
    carrier = approved + hours(60)
    has_carrier = is_["delivered"] | is_["shipped"] | (is_["canceled"] & (rng.random(n) < 0.1))
    delivered = carrier + hours(220)
    has_delivered = is_["delivered"] & (rng.random(n) > 0.0001)
    estimated_day = (purchase // US_PER_DAY + 10 + rng.gamma(6, 2.4, n).astype(np.int64)) * US_PER_DAY
    carrier_ts = (carrier // US_PER_S // 60) * 60 * US_PER_S  # carrier times are whole minutes in Olist

    customer = _customers(rng, purchase, places)
    orders = pa.table(
        {
            "order_id": _hex_ids(rng, n),
            "customer_id": customer.column("customer_id"),
            "order_status": _take(status_names, status),
            "order_purchase_timestamp": _timestamps(purchase),
            "order_approved_at": _timestamps(approved, has_approved),
            "order_delivered_carrier_date": _timestamps(carrier_ts, has_carrier),
            "order_delivered_customer_date": _timestamps(delivered, has_delivered),
            "order_estimated_delivery_date": _timestamps(estimated_day),
        }
    )
    # Olist's files are not sorted by time: shuffle both the same way they were drawn apart.
    return orders.take(pa.array(rng.permutation(n))), customer.take(pa.array(rng.permutation(n)))


def _customers(rng: np.random.Generator, purchase: np.ndarray, places: _Places) -> pa.Table:
    """One customer_id per order; about 3% of people come back under the same customer_unique_id."""
    n = purchase.size
    orders_per_person = np.where(rng.random(n) < 0.03, 1 + rng.geometric(0.7, n), 1)
    person_of_order = np.repeat(np.arange(n), orders_per_person)[:n]
    rng.shuffle(person_of_order)
    people = np.unique(person_of_order)
    unique_ids = _hex_ids(rng, people.size).take(pa.array(np.searchsorted(people, person_of_order)))
    home = _addresses(rng, places, people.size)
    moved = _addresses(rng, places, n)
    # A returning person sometimes orders to a new address: every order after their first.
    order_rank = _rank_within_groups(person_of_order, purchase)
    new_address = pa.array((order_rank > 0) & (rng.random(n) < 0.35))
    home_of_order = pa.array(np.searchsorted(people, person_of_order))
    return pa.table(
        {
            "customer_id": _hex_ids(rng, n),
            "customer_unique_id": unique_ids,
            **{
                f"customer_{part}": pc.if_else(new_address, moved[key], home[key].take(home_of_order))
                for part, key in (("zip_code_prefix", "zip"), ("city", "city"), ("state", "state"))
            },
        }
    )


def _rank_within_groups(groups: np.ndarray, order_by: np.ndarray) -> np.ndarray:
    """0 for the first row of each group by `order_by`, 1 for the next, and so on."""
    order = np.lexsort((order_by, groups))
    sorted_groups = groups[order]
    starts = np.r_[0, np.flatnonzero(sorted_groups[1:] != sorted_groups[:-1]) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, groups.size]))
    rank = np.empty(groups.size, dtype=np.int64)
    rank[order] = np.arange(groups.size) - run_start
    return rank


# --------------------------------------------------------------------------- items, payments, reviews


def _order_items(
    rng: np.random.Generator,
    orders: pa.Table,
    products: pa.Table,
    product: dict[str, np.ndarray],
    sellers: pa.Table,
) -> pa.Table:
    n = orders.num_rows
    status = orders.column("order_status")
    counts = np.array(list(ITEMS_PER_ORDER))[_choice(rng, ITEMS_PER_ORDER, n)]
    # Unavailable orders have no items, and so do some canceled and just-created ones.
    no_items = mask(pc.equal(status, "unavailable")) | (
        mask(pc.is_in(status, pa.array(["canceled", "created"]))) & (rng.random(n) < 0.3)
    )
    counts[no_items] = 0
    first_row = np.repeat(np.cumsum(counts) - counts, counts)
    order_of_item = np.repeat(np.arange(n), counts)
    m = order_of_item.size
    popular = _choice(rng, 1.0 / np.arange(1, products.num_rows + 1) ** 0.7, m)
    # Many multi-item orders repeat one product (Olist lists quantities as repeated rows).
    product_of_item = np.where(rng.random(m) < 0.6, popular[first_row], popular)
    price = product["price_cents"][product_of_item]
    freight = np.round(800 + product["weight"][product_of_item] * 0.35 + rng.gamma(2, 300, m))
    freight[rng.random(m) < 0.003] = 0
    approved = micros(orders.column("order_approved_at"))
    purchase = micros(orders.column("order_purchase_timestamp"))
    base = np.where(approved < 0, purchase, approved)[order_of_item]
    limit = (base + 6 * US_PER_DAY + rng.integers(0, 86_400, m) * US_PER_S) // US_PER_S * US_PER_S
    return pa.table(
        {
            "order_id": orders.column("order_id").take(pa.array(order_of_item)),
            "order_item_id": pa.array(np.arange(m) - first_row + 1, pa.int32()),
            "product_id": products.column("product_id").take(pa.array(product_of_item)),
            "seller_id": sellers.column("seller_id").take(pa.array(product["seller"][product_of_item])),
            "shipping_limit_date": _timestamps(limit),
            "price": _money(price),
            "freight_value": _money(freight),
        }
    )


def _order_payments(rng: np.random.Generator, orders: pa.Table, items: pa.Table) -> pa.Table:
    """Payments that add up to the order value to the cent; a few orders split over vouchers."""
    n = orders.num_rows
    item_order = pc.index_in(items.column("order_id"), orders.column("order_id")).to_numpy()
    item_cents = _cents(items.column("price")) + _cents(items.column("freight_value"))
    total = np.bincount(item_order, weights=item_cents, minlength=n).astype(np.int64)
    has_items = np.bincount(item_order, minlength=n) > 0
    total[~has_items] = np.round(rng.lognormal(4.5, 0.8, (~has_items).sum()) * 100)
    not_defined = (
        ~has_items & mask(pc.equal(orders.column("order_status"), "canceled")) & (rng.random(n) < 0.3)
    )
    total[not_defined] = 0

    parts = np.where(rng.random(n) < 0.97, 1, 2 + rng.geometric(0.5, n) - 1)
    parts[not_defined] = 1
    order_of_payment = np.repeat(np.arange(n), parts)
    m = order_of_payment.size
    first = np.repeat(np.cumsum(parts) - parts, parts)
    last = np.cumsum(parts) - 1
    weight = rng.random(m) + 0.2
    share = np.floor(
        total[order_of_payment] * weight / np.bincount(order_of_payment, weight)[order_of_payment]
    )
    share = share.astype(np.int64)
    share[last] += total - np.bincount(order_of_payment, share, minlength=n).astype(np.int64)

    type_names = [*PAYMENT_TYPES, "not_defined"]
    single_type = _choice(rng, PAYMENT_TYPES, n)[order_of_payment]
    split = parts[order_of_payment] > 1
    split_type = np.where((np.arange(m) == last[order_of_payment]) & (rng.random(m) < 0.5), 0, 2)
    payment_type = np.where(split, split_type, single_type)
    payment_type[np.isin(order_of_payment, np.flatnonzero(not_defined))] = len(PAYMENT_TYPES)
    installments = np.ones(m, dtype=np.int32)
    credit = payment_type == 0
    installments[credit] = np.where(rng.random(credit.sum()) < 0.5, 1, 1 + rng.geometric(0.2, credit.sum()))
    installments = np.clip(installments, 1, 24)
    table = pa.table(
        {
            "order_id": orders.column("order_id").take(pa.array(order_of_payment)),
            "payment_sequential": pa.array(np.arange(m) - first + 1, pa.int32()),
            "payment_type": _take(type_names, payment_type),
            "payment_installments": pa.array(installments, pa.int32()),
            "payment_value": _money(share),
        }
    )
    return table.take(pa.array(rng.permutation(m)))


def _order_reviews(rng: np.random.Generator, orders: pa.Table) -> pa.Table:
    n = orders.num_rows
    reviews = np.where(rng.random(n) < 0.992, 1, 0)
    reviews[(reviews == 1) & (rng.random(n) < 0.005)] = 2
    order_of_review = np.repeat(np.arange(n), reviews)
    m = order_of_review.size
    nth = np.arange(m) - np.repeat(np.cumsum(reviews) - reviews, reviews)
    delivered = micros(orders.column("order_delivered_customer_date"))[order_of_review]
    estimated = micros(orders.column("order_estimated_delivery_date"))[order_of_review]
    was_delivered = delivered >= 0
    late = ~was_delivered | (delivered > estimated + US_PER_DAY)
    on_time_score = _choice(rng, SCORE_MIX_ON_TIME, m)
    late_score = _choice(rng, SCORE_MIX_LATE, m)
    score = REVIEW_SCORES[np.where(late, late_score, on_time_score)]
    # Olist asks for a review the day after delivery (or after the promised date): a date at 00:00.
    asked = np.where(was_delivered, delivered, estimated) // US_PER_DAY + 1 + nth * rng.integers(1, 10, m)
    created = asked * US_PER_DAY
    answered = created + (rng.gamma(1.2, 2.5, m) * 86_400).astype(np.int64) * US_PER_S + US_PER_S
    title = _take(REVIEW_TITLES, rng.integers(0, len(REVIEW_TITLES), m))
    message = _take(REVIEW_MESSAGES, rng.integers(0, len(REVIEW_MESSAGES), m))
    # Olist reuses a review_id for a few reviews of different orders.
    id_source = np.arange(m)
    reuse = np.flatnonzero(rng.random(m) < 0.008)
    reuse = reuse[(reuse > 0) & (order_of_review[reuse] != order_of_review[reuse - 1])]
    id_source[reuse] = reuse - 1
    id_source = id_source[id_source]
    table = pa.table(
        {
            "review_id": _hex_ids(rng, m).take(pa.array(id_source)),
            "order_id": orders.column("order_id").take(pa.array(order_of_review)),
            "review_score": pa.array(score, pa.int32()),
            "review_comment_title": pc.if_else(
                pa.array(rng.random(m) < 0.88), pa.scalar(None, pa.string()), title
            ),
            "review_comment_message": pc.if_else(
                pa.array(rng.random(m) < 0.58), pa.scalar(None, pa.string()), message
            ),
            "review_creation_date": _timestamps(created),
            "review_answer_timestamp": _timestamps(answered),
        }
    )
    return table.take(pa.array(rng.permutation(m)))


def _cents(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    scaled = pc.multiply(pc.cast(values, pa.decimal128(18, 2)), pa.scalar(100, pa.decimal128(18, 0)))
    return pc.cast(scaled, pa.int64()).to_numpy()


def _money(cents: np.ndarray) -> pa.Array:
    """Exact DECIMAL(12,2) from integer cents: the unscaled 128-bit value is the cent count."""
    cents = cents.astype(np.int64)
    words = np.empty((cents.size, 2), dtype=np.int64)
    words[:, 0] = cents
    words[:, 1] = np.where(cents < 0, -1, 0)  # two's complement sign extension
    return pa.Array.from_buffers(pa.decimal128(12, 2), cents.size, [None, pa.py_buffer(words.tobytes())])
