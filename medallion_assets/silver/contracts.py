"""The pandera (pyspark) contract of every silver table, built from its column specs.

Rows that break a rule are quarantined before the write (`transform.conform` evaluates the same
specs row by row, with reasons); the contract then validates what is about to be written, so a
write that would break it fails the run instead of reaching silver.
"""

from __future__ import annotations

import pandera.pyspark as pa_spark
import pyspark.sql.types as T
from pandera.pyspark import Check
from pyspark.sql import DataFrame

from medallion_assets.specs import Column, LakeTable

PANDERA_TYPES = {
    "string": T.StringType(),
    "int": T.IntegerType(),
    "money": T.DecimalType(12, 2),
    "float": T.DoubleType(),
    "timestamp": T.TimestampNTZType(),
}


class ContractViolation(RuntimeError):
    """Rows about to be written to silver break its contract (a bug upstream of the write)."""


def column_checks(column: Column) -> list[Check]:
    checks = []
    if column.pattern is not None:
        checks.append(Check.str_matches(column.pattern))
    if column.allowed is not None:
        checks.append(Check.isin(list(column.allowed)))
    if column.min_value is not None:
        checks.append(Check.ge(column.min_value))
    if column.max_value is not None:
        checks.append(Check.le(column.max_value))
    if column.max_length is not None:
        checks.append(Check.str_length(max_value=column.max_length))
    return checks


def silver_contract(table: LakeTable, columns: list[Column]) -> pa_spark.DataFrameSchema:
    return pa_spark.DataFrameSchema(
        {
            c.name: pa_spark.Column(PANDERA_TYPES[c.type], nullable=not c.required, checks=column_checks(c))
            for c in columns
        },
        name=f"silver.{table.name}",
    )


def enforce(contract: pa_spark.DataFrameSchema, rows: DataFrame) -> DataFrame:
    validated = contract.validate(rows)
    errors = dict(validated.pandera.errors)
    if errors:
        summary = "; ".join(
            f"{e.get('column')}: {e.get('check') or e.get('error')}"
            for kinds in errors.values()
            for found in kinds.values()
            for e in found
        )
        raise ContractViolation(f"{contract.name}: rows about to be written break the contract: {summary}")
    return validated
