"""The pandera (pyspark) contract of a lake table, built from its column specs.

One list of rules per column (`column_rules`) gives both the pandera check and the Spark condition
that finds the rows breaking it, so a failed contract check can show samples of those rows.
Silver validates what it is about to write (`enforce`, a write that would break it fails the run);
the contract asset checks validate what a silver or gold partition holds (quality/checks.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandera.pyspark as pa_spark
import pyspark.sql.types as T
from pandera.pyspark import Check
from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from medallion_assets.specs import Column, LakeTable

PANDERA_TYPES = {
    "string": T.StringType(),
    "int": T.IntegerType(),
    "long": T.LongType(),
    "money": T.DecimalType(12, 2),
    "total": T.DecimalType(18, 2),
    "float": T.DoubleType(),
    "timestamp": T.TimestampNTZType(),
    "date": T.DateType(),
    "bool": T.BooleanType(),
}
NOT_NULLABLE = "not_nullable"  # pandera's name for a null in a required column


class ContractViolation(RuntimeError):
    """Rows about to be written to silver break its contract (a bug upstream of the write)."""


@dataclass(frozen=True)
class ColumnRule:
    check: Check
    broken_by: Callable[[SparkColumn], SparkColumn]  # the condition a breaking value meets

    @property
    def name(self) -> str:
        return str(self.check.error)  # what pandera reports as the failed check


def column_rules(column: Column) -> list[ColumnRule]:
    rules = []
    if column.pattern is not None:
        pattern = column.pattern
        rules.append(ColumnRule(Check.str_matches(pattern), lambda c: ~c.rlike(pattern)))
    if column.allowed is not None:
        allowed = list(column.allowed)
        rules.append(ColumnRule(Check.isin(allowed), lambda c: ~c.isin(allowed)))
    if column.min_value is not None:
        low = column.min_value
        rules.append(ColumnRule(Check.ge(low), lambda c: c < F.lit(low)))
    if column.max_value is not None:
        high = column.max_value
        rules.append(ColumnRule(Check.le(high), lambda c: c > F.lit(high)))
    if column.max_length is not None:
        longest = column.max_length
        rules.append(ColumnRule(Check.str_length(max_value=longest), lambda c: F.length(c) > longest))
    return rules


def contract(table: LakeTable) -> pa_spark.DataFrameSchema:
    return pa_spark.DataFrameSchema(
        {
            c.name: pa_spark.Column(
                PANDERA_TYPES[c.type], nullable=not c.required, checks=[r.check for r in column_rules(c)]
            )
            for c in table.columns
        },
        name=f"{table.layer}.{table.name}",
    )


def failures(validated: DataFrame) -> list[dict[str, str]]:
    """pandera's errors as a flat list of {kind, column, check, error}."""
    return [
        {"kind": kind, **{field: str(e.get(field)) for field in ("column", "check", "error")}}
        for kinds in dict(validated.pandera.errors).values()
        for kind, found in kinds.items()
        for e in found
    ]


def breaking_rows(table: LakeTable, rows: DataFrame, column: str, check: str) -> DataFrame | None:
    """The rows that broke `check` on `column` (None when it is not a row-level rule: a type, a column)."""
    spec = next((c for c in table.columns if c.name == column), None)
    if spec is None or column not in rows.columns:
        return None
    if check == NOT_NULLABLE:
        return rows.filter(F.col(column).isNull())
    rule = next((r for r in column_rules(spec) if r.name == check), None)
    return None if rule is None else rows.filter(rule.broken_by(F.col(column)))


def enforce(table: LakeTable, rows: DataFrame) -> DataFrame:
    validated = contract(table).validate(rows)
    found = failures(validated)
    if found:
        summary = "; ".join(f"{f['column']}: {f['check']}" for f in found)
        raise ContractViolation(
            f"{table.layer}.{table.name}: rows about to be written break the contract: {summary}"
        )
    return validated
