"""Quality declarations: what a lake table's asset checks prove beyond its key and contract.

Every lake table declares what its asset checks prove (quality/checks.py builds them): key and
not-null checks from primary_key and the required columns, the contract from `columns`, and the
row-count drift, references and business rules declared with the classes below.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

Severity = Literal["ERROR", "WARN"]


@dataclass(frozen=True)
class Drift:
    """A partition's row count against the median of the same weekday's previous materialized
    partitions. Bands are ratios of that median: outside `warn_band` warns (the band is never
    narrower than 3 x sqrt(median), a count's own noise), outside `error_band` is an error (never
    blocking: a quiet day is not bad data). Not judged while there are fewer than
    `min_history` such partitions or the median is below `min_expected` rows (small counts are noise),
    nor while the day is in progress: when it ends after the source time that `clock` (a bronze table,
    default this one) recorded at its latest materialization.

    `landed_within` (change-date tables): a day's count is complete only if the day was first
    landed within this long after it ended. A source holds each row's latest version only, so a
    history landed at once finds a row only on the day of its latest change: older days hold fewer
    rows (their orders changed again since), the last ones all their in-flight rows. Such days are
    neither judged nor used as history; a day landed live is compared only with days landed live."""

    clock: str | None = None
    landed_within: dt.timedelta | None = None
    weeks: int = 6
    min_history: int = 3
    min_expected: int = 20
    warn_band: tuple[float, float] = (0.5, 2.0)
    error_band: tuple[float, float] = (0.2, 10.0)


@dataclass(frozen=True)
class Reference:
    """`column` points to `key` of the lake table `table` ("layer/name"). A value found nowhere is an
    orphan (an error) unless `orphans_allowed` (silver keeps rows whose parent has not arrived yet);
    `unknown` is the value of the unknown member. Unknown members and allowed orphans together may
    be at most `max_unknown_share` of the rows (else a warning). `same_window`: the referenced rows
    share this table's partition window (an item's order has the item's order date)."""

    column: str
    table: str
    key: str
    unknown: int | None = -1
    max_unknown_share: float = 0.05
    orphans_allowed: bool = False
    same_window: bool = False

    @property
    def check_name(self) -> str:
        return f"references_{self.table.split('/')[-1]}_{self.column}"


@dataclass(frozen=True)
class Rule:
    """A business rule: Spark SQL selecting the rows that break it from the view `rows` (the checked
    table, restricted to the materialized window); `reads` are other lake tables ("layer/name")
    visible as views under their table name, restricted to the same window when partitioned alike."""

    name: str
    description: str
    violations: str
    reads: tuple[str, ...] = ()
    severity: Severity = "ERROR"
    blocking: bool = True
