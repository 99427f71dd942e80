"""Columns: a column's type and the contract silver holds it to, the helpers that declare the
usual kinds of column (ids, zip prefixes, cities, states, amounts, counts), and the domain values
those contracts allow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from medallion_assets.specs.types import TYPES, ColumnType, TypeNames

# How the original Kaggle files quote a text value: most quote it when it starts with a digit (so
# an id column is quoted in one row and bare in the next) or has to be (comma, quote, newline);
# the review file quotes its ids always and its free text only when it has to.
Quoting = Literal["leading_digit", "always", "needed"]
# How silver cleans a text value before checking it (every text is trimmed, "" becomes null).
Normalize = Literal["city", "upper", "lower", "zip"]

ID_PATTERN = r"^[0-9a-f]{32}$"
ORDER_STATUSES = (
    "created",
    "approved",
    "invoiced",
    "processing",
    "shipped",
    "delivered",
    "canceled",
    "unavailable",
)
PAYMENT_TYPES = ("credit_card", "boleto", "voucher", "debit_card", "not_defined")
BRAZIL_STATES = (
    "AC",
    "AL",
    "AM",
    "AP",
    "BA",
    "CE",
    "DF",
    "ES",
    "GO",
    "MA",
    "MG",
    "MS",
    "MT",
    "PA",
    "PB",
    "PE",
    "PI",
    "PR",
    "RJ",
    "RN",
    "RO",
    "RR",
    "RS",
    "SC",
    "SE",
    "SP",
    "TO",
)


@dataclass(frozen=True)
class Column:
    """A column: its type, and the contract silver holds it to (quarantining the rows that break it)."""

    name: str
    type: ColumnType = "string"
    required: bool = False
    quoting: Quoting = "leading_digit"
    pattern: str | None = None
    allowed: tuple[str, ...] | None = None
    min_value: float | None = None
    max_value: float | None = None
    max_length: int | None = None
    normalize: Normalize | None = None

    @property
    def type_names(self) -> TypeNames:
        """The column's type as Arrow, PostgreSQL, Spark, DuckDB and BigQuery name it."""
        return TYPES[self.type]


def _id(name: str) -> Column:
    return Column(name, "string", required=True, pattern=ID_PATTERN)


def _zip(name: str) -> Column:
    # Zip prefixes are 5-character strings with leading zeros ("01037"), never integers.
    return Column(name, "string", pattern=r"^\d{5}$", normalize="zip")


def _city(name: str) -> Column:
    return Column(name, max_length=100, normalize="city")


def _state(name: str) -> Column:
    return Column(name, allowed=BRAZIL_STATES, normalize="upper")


def _place(prefix: str) -> tuple[Column, ...]:
    """A customer's or seller's address: zip prefix, city, state."""
    return (_zip(f"{prefix}_zip_code_prefix"), _city(f"{prefix}_city"), _state(f"{prefix}_state"))


def _amount(name: str) -> Column:
    return Column(name, "money", min_value=0)


def _count(name: str, maximum: float | None = None) -> Column:
    return Column(name, "int", min_value=0, max_value=maximum)
