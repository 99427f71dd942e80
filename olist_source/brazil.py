"""Reference facts about Brazil that make generated addresses look like Olist's.

Per state: the share of Olist customers and sellers living there (rounded from the public
dataset), the range of 5-digit zip (CEP) prefixes the post office gives it, and a few real cities,
the capital first with its approximate coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class State:
    code: str
    customer_share: float
    seller_share: float
    zip_ranges: tuple[tuple[int, int], ...]
    lat: float
    lng: float
    cities: tuple[str, ...]


STATES: tuple[State, ...] = (
    State(
        "SP",
        41.9,
        59.7,
        ((1000, 19999),),
        -23.55,
        -46.63,
        (
            "são paulo",
            "campinas",
            "guarulhos",
            "santo andré",
            "são bernardo do campo",
            "ribeirão preto",
            "sorocaba",
            "osasco",
            "santos",
            "são josé dos campos",
        ),
    ),
    State(
        "RJ",
        12.9,
        5.5,
        ((20000, 28999),),
        -22.91,
        -43.17,
        ("rio de janeiro", "niterói", "nova iguaçu", "duque de caxias", "são gonçalo", "petrópolis"),
    ),
    State(
        "MG",
        11.7,
        7.9,
        ((30000, 39999),),
        -19.92,
        -43.94,
        ("belo horizonte", "uberlândia", "contagem", "juiz de fora", "betim", "montes claros"),
    ),
    State(
        "RS",
        5.5,
        4.2,
        ((90000, 99999),),
        -30.03,
        -51.23,
        ("porto alegre", "caxias do sul", "pelotas", "canoas", "santa maria", "novo hamburgo"),
    ),
    State(
        "PR",
        5.1,
        11.3,
        ((80000, 87999),),
        -25.43,
        -49.27,
        ("curitiba", "londrina", "maringá", "ponta grossa", "cascavel"),
    ),
    State(
        "SC",
        3.7,
        6.1,
        ((88000, 89999),),
        -27.59,
        -48.55,
        ("florianópolis", "joinville", "blumenau", "são josé", "chapecó"),
    ),
    State(
        "BA",
        3.4,
        0.6,
        ((40000, 48999),),
        -12.97,
        -38.50,
        ("salvador", "feira de santana", "vitória da conquista", "camaçari"),
    ),
    State("DF", 2.2, 1.0, ((70000, 72799),), -15.79, -47.88, ("brasília", "taguatinga", "ceilândia")),
    State("ES", 2.0, 0.7, ((29000, 29999),), -20.32, -40.34, ("vitória", "vila velha", "serra", "cariacica")),
    State("GO", 2.0, 1.3, ((72800, 76799),), -16.68, -49.25, ("goiânia", "anápolis", "aparecida de goiânia")),
    State(
        "PE",
        1.7,
        0.3,
        ((50000, 56999),),
        -8.05,
        -34.90,
        ("recife", "jaboatão dos guararapes", "olinda", "caruaru"),
    ),
    State("CE", 1.3, 0.4, ((60000, 63999),), -3.73, -38.52, ("fortaleza", "caucaia", "juazeiro do norte")),
    State("PA", 1.0, 0.05, ((66000, 68899),), -1.46, -48.50, ("belém", "ananindeua", "santarém")),
    State("MT", 0.9, 0.1, ((78000, 78899),), -15.60, -56.10, ("cuiabá", "várzea grande", "rondonópolis")),
    State("MA", 0.75, 0.05, ((65000, 65999),), -2.53, -44.30, ("são luís", "imperatriz")),
    State("MS", 0.72, 0.1, ((79000, 79999),), -20.44, -54.65, ("campo grande", "dourados")),
    State("PB", 0.54, 0.2, ((58000, 58999),), -7.12, -34.86, ("joão pessoa", "campina grande")),
    State("PI", 0.5, 0.03, ((64000, 64999),), -5.09, -42.80, ("teresina", "parnaíba")),
    State("RN", 0.49, 0.2, ((59000, 59999),), -5.79, -35.21, ("natal", "mossoró")),
    State("AL", 0.42, 0.02, ((57000, 57999),), -9.67, -35.74, ("maceió", "arapiraca")),
    State("SE", 0.35, 0.02, ((49000, 49999),), -10.91, -37.07, ("aracaju", "nossa senhora do socorro")),
    State("TO", 0.28, 0.02, ((77000, 77999),), -10.18, -48.33, ("palmas", "araguaína")),
    State("RO", 0.25, 0.05, ((76800, 76999),), -8.76, -63.90, ("porto velho", "ji-paraná")),
    State("AM", 0.15, 0.03, ((69000, 69299),), -3.12, -60.02, ("manaus",)),
    State("AC", 0.08, 0.01, ((69900, 69999),), -9.97, -67.81, ("rio branco",)),
    State("AP", 0.07, 0.01, ((68900, 68999),), 0.03, -51.07, ("macapá",)),
    State("RR", 0.05, 0.01, ((69300, 69399),), 2.82, -60.67, ("boa vista",)),
)

STATE_CODES: frozenset[str] = frozenset(s.code for s in STATES)

_PLAIN = str.maketrans("áàâãäéêèíìîóôõòöúùûüç", "aaaaaeeeiiiooooouuuuc")


def without_accents(text: str) -> str:
    """Olist's customer and seller files write city names lower-case without accents."""
    return text.translate(_PLAIN)
