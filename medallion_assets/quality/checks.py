"""Asset checks for every lake table, built from its spec (specs/) by one factory.

Each table gets one check step that runs in the same run as its asset, after it, on exactly the
window the run materialized (a partition, a range, or the whole table when unpartitioned). ONE Spark
action over that window (`Profile`) gives every check its counts: keys, nulls, contract rules,
references, business rules and, when the Delta log cannot tell, the drift check's rows per day.
Only counts and a few sample rows (of a failing check) reach the run process:
- `unique_key`, `not_null` (blocking): the primary key and the required columns;
- `schema` (bronze, blocking): the source columns landed with their types;
- `contract` (silver and gold, blocking): types, required columns and value rules (contracts.py),
  each broken rule with its row count and sample rows;
- `row_count_drift` (warning or error, never blocking): against the same weekday's history;
- `references_<table>_<column>` (not blocking): orphans are errors, unknown members a share;
- business rules (Spark SQL, blocking unless the rule says otherwise).
A blocking check that fails with ERROR severity stops every downstream asset of the run.

A single-partition run records each check for its partition. A range run (a backfill) records one
evaluation per check covering the range, as Dagster records ranged checks, with the failing days
in its metadata: one evaluation per partition would cost ~15 ms each in the SQLite instance
(measured: 3,200 took 50 s), ~25 minutes for a full build's 100,000.
"""

# No `from __future__ import annotations`: Dagster inspects the context annotation at definition time.
import datetime as dt
import functools
import json
import math
import re
import statistics
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from pyspark.errors import AnalysisException
from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from medallion_assets.quality.contracts import Violation, contract_rules, counted
from medallion_assets.resources.delta_lake import Lake, LakeResource, Window
from medallion_assets.resources.spark import SparkResource
from medallion_assets.specs import (
    LAKE_TABLES,
    SOURCE_TIME,
    TABLES_BY_PATH,
    Column,
    Drift,
    LakeTable,
    Reference,
    Rule,
    Severity,
)

# Partitioned checks are a preview feature of the pinned Dagster (1.13).

SAMPLE_SIZE = 10  # offending keys or rows shown in a failed check's metadata


@dataclass
class Outcome:
    passed: bool
    metadata: dict[str, Any]
    severity: Severity = "ERROR"


def json_metadata(value: Any) -> dg.MetadataValue:
    """Samples as JSON metadata (dates, decimals and timestamps as text)."""
    return dg.MetadataValue.json(json.loads(json.dumps(value, default=str)))


# ------------------------------------------------------------------------------------ the checks


def sample(frame: DataFrame, size: int = SAMPLE_SIZE) -> list[dict[str, Any]]:
    """A few rows for a failed check's metadata: the only rows that leave Spark."""
    return [row.asDict() for row in frame.limit(size).collect()]


@dataclass(frozen=True)
class Referenced:
    """A reference's counts on a window: rows with a value, rows on the unknown member, orphans."""

    rows: int
    unknown: int
    orphans: int


@dataclass(frozen=True)
class Profile:
    """Every count a check step needs, from ONE Spark action over its window: its rows, its
    distinct keys, the nulls of the required columns, the rows breaking each row-level contract
    rule, each reference's unknown members and orphans, each business rule's breaking rows and,
    when the table's log cannot tell, the rows per day the drift check compares. A check that
    fails runs a second query, for sample rows; one that passes reads nothing more.

    One action rather than one per check: on the small windows of a day's build, each Spark
    action costs a fixed ~0.1-0.3 s of planning and scheduling whatever its rows."""

    rows: int
    distinct_keys: int | None  # None: no key asked for, or a key column is missing
    nulls: dict[str, int]
    contract: list[Violation]
    references: dict[str, Referenced] = field(default_factory=dict)  # by check name
    violations: dict[str, int] = field(default_factory=dict)  # by business rule
    per_day: dict[dt.date, int] | None = None  # when asked for: the `daily` frame's rows per day

    @classmethod
    def of(
        cls,
        rows: DataFrame,
        key: Sequence[str] = (),
        required: Sequence[str] = (),
        table: LakeTable | None = None,
        empty: bool = False,
        references: Sequence[tuple[Reference, DataFrame | None]] = (),
        rules: Sequence[tuple[Rule, DataFrame]] = (),
        daily: tuple[DataFrame, str] | None = None,
    ) -> "Profile":
        """`references`: each with the referenced keys (None: that table is not built yet);
        `rules`: each with its query of breaking rows; `daily`: a frame and the day column to
        count its rows by. `empty`: the table's log shows no row in the window, so the window's
        counts are 0 without reading it (a quarantine on a clean day; the schema is still judged,
        the rules still run: a report's empty day can disagree with its facts)."""
        present = set(rows.columns)
        contract, judged = contract_rules(table, rows.schema) if table else ([], [])
        keyed = bool(key) and all(c in present for c in key)
        nullable = [c for c in required if c in present]
        conditions = [F.col(f"`{c}`").isNull() for c in nullable] + [condition for _, condition in judged]
        flagged = rows
        for i, (ref, keys) in enumerate(references):
            flagged = with_found(flagged, ref, keys, f"_found_{i}")
            value = F.col(f"`{ref.column}`")
            conditions += [value.isNotNull(), is_unknown(value, ref), is_orphan(value, ref, f"_found_{i}")]
        # One-row frames, joined into the one action; each value read back by its name.
        counted_as = [F.count_if(c).alias(f"c{i}") for i, c in enumerate(conditions)]
        parts: list[DataFrame] = []
        if not empty:
            if keyed:
                # Counted per key, then summed: the key's groups are its distinct values, without
                # the Expand Spark plans for a COUNT(DISTINCT) beside other aggregates (0.79 ->
                # 0.26 s for a day of fact_orders). A struct, not the columns: a key with a null
                # part still counts as a key.
                per_key = flagged.groupBy(F.struct(*[F.col(f"`{c}`") for c in key]).alias("_key")).agg(
                    F.count("*").alias("rows"), *counted_as
                )
                sums = [F.sum(f"c{i}").alias(f"c{i}") for i in range(len(conditions))]
                parts.append(per_key.agg(F.sum("rows").alias("rows"), F.count("*").alias("keys"), *sums))
            else:
                parts.append(flagged.agg(F.count("*").alias("rows"), *counted_as))
        parts += [broken.agg(F.count("*").alias(f"rule{i}")) for i, (_, broken) in enumerate(rules)]
        if daily is not None:
            frame, column = daily
            per_day = frame.groupBy(column).count()
            parts.append(per_day.agg(F.collect_list(F.struct(F.col(column), F.col("count"))).alias("days")))
        found = functools.reduce(DataFrame.crossJoin, parts).first() if parts else None
        values = found.asDict() if found is not None else {}
        days = {day: count for day, count in values["days"]} if daily is not None else None
        broken_rows = [values[f"rule{i}"] for i in range(len(rules))]
        total, distinct = values.get("rows") or 0, values.get("keys") or 0  # no rows read: 0
        counts = [values.get(f"c{i}") or 0 for i in range(len(conditions))]
        nulls = dict(zip(nullable, counts[: len(nullable)], strict=True))
        rules_end = len(nullable) + len(judged)
        referenced = {
            ref.check_name: Referenced(*counts[rules_end + 3 * i : rules_end + 3 * i + 3])
            for i, (ref, _) in enumerate(references)
        }
        return cls(
            total,
            distinct if keyed else None,
            nulls,
            contract + counted(judged, counts[len(nullable) : rules_end]),
            referenced,
            {rule.name: count for (rule, _), count in zip(rules, broken_rows, strict=True)},
            days,
        )


def unique_key(rows: DataFrame, key: Sequence[str], profile: Profile | None = None) -> Outcome:
    absent = [c for c in key if c not in rows.columns]
    if absent:
        return Outcome(passed=False, metadata={"key": ", ".join(key), "missing_columns": ", ".join(absent)})
    profile = profile or Profile.of(rows, key)
    assert profile.distinct_keys is not None
    keys, extra_rows, shown = 0, profile.rows - profile.distinct_keys, []
    if extra_rows:
        duplicated = rows.groupBy(*key).agg(F.count("*").alias("count_all")).filter("count_all > 1")
        keys = duplicated.count()
        shown = sample(duplicated.orderBy(F.desc("count_all"), *key))
    return Outcome(
        passed=extra_rows == 0,
        metadata={
            "key": ", ".join(key),
            "duplicated_keys": keys,
            "duplicate_rows": extra_rows,
            "sample": json_metadata(shown),
        },
    )


def not_null(
    rows: DataFrame, columns: Sequence[str], key: Sequence[str], profile: Profile | None = None
) -> Outcome:
    absent = [c for c in columns if c not in rows.columns]
    profile = profile or Profile.of(rows, required=columns)
    nulls = {c: count for c, count in profile.nulls.items() if c in columns and count}
    offending: list[dict[str, Any]] = []
    if nulls:
        shown = list(dict.fromkeys([*key, *nulls]))
        any_null = functools.reduce(lambda a, b: a | b, [F.col(c).isNull() for c in nulls])
        offending = sample(rows.filter(any_null).select(*shown))
    return Outcome(
        passed=not absent and not nulls,
        metadata={
            "columns": ", ".join(columns),
            "null_counts": json_metadata(nulls),
            "missing_columns": ", ".join(absent),
            "sample": json_metadata(offending),
        },
    )


def schema(rows: StructType, expected: Sequence[Column]) -> Outcome:
    landed = {field.name: field.dataType.simpleString() for field in rows.fields}
    problems = {}
    for column in expected:
        if column.name not in landed:
            problems[column.name] = "missing"
        elif landed[column.name] != column.type_names.spark:
            problems[column.name] = f"{landed[column.name]}, expected {column.type_names.spark}"
    return Outcome(passed=not problems, metadata={"problems": json_metadata(problems)})


def _day_end(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time())


def row_count_drift(
    counts: dict[dt.date, int],
    days: Sequence[dt.date],
    materialized: set[dt.date],
    drift: Drift,
    source_time: dt.datetime | None = None,
    first_landed: dict[dt.date, dt.datetime] | None = None,
) -> Outcome:
    """Each day's row count against the median of the same weekday's previous materialized days;
    a day that ends after `source_time` (the source's present when read) is still in progress.
    With `drift.landed_within`, only days first landed (`first_landed`: the source's present then)
    that soon after their end are judged or used as history (see Drift)."""
    judged, flagged, worst = 0, [], "ok"
    last: dict[str, Any] = {}

    def lag(day: dt.date) -> dt.timedelta | None:
        """How long after its end the day was first landed, when that makes it incomplete."""
        landed = (first_landed or {}).get(day)
        if drift.landed_within is None or landed is None:
            return None
        after = landed - _day_end(day)
        return after if after > drift.landed_within else None

    for day in days:
        previous = [day - dt.timedelta(weeks=k) for k in range(1, drift.weeks + 1)]
        history = [counts.get(d, 0) for d in previous if d in materialized and lag(d) is None]
        observed = counts.get(day, 0)
        last = {"day": day.isoformat(), "observed_rows": observed, "history": history}
        if (
            source_time is not None
            and dt.datetime.combine(day + dt.timedelta(days=1), dt.time()) > source_time
        ):
            last["verdict"] = f"not judged: in progress (the source was at {source_time})"
            continue
        if (late := lag(day)) is not None:
            last["verdict"] = (
                f"not judged: first landed {late.days} days after it ended (a history landed at once"
                " holds each row on the day of its latest change only)"
            )
            continue
        if len(history) < drift.min_history:
            last["verdict"] = f"not judged: {len(history)} of {drift.min_history} weeks of history"
            continue
        expected = statistics.median(history)
        # A count of n rows varies by ~sqrt(n) on its own: the warning band is never narrower than
        # 3 such deviations, so a small table does not warn on chance alone.
        noise = 3 * math.sqrt(expected)
        warn = (
            min(drift.warn_band[0] * expected, expected - noise),
            max(drift.warn_band[1] * expected, expected + noise),
        )
        error = (drift.error_band[0] * expected, drift.error_band[1] * expected)
        last["expected_rows"] = expected
        last["expected_band"] = [round(bound) for bound in warn]
        last["error_band"] = [round(bound) for bound in error]
        if expected < drift.min_expected:
            last["verdict"] = f"not judged: expected {expected} rows, below {drift.min_expected}"
            continue
        judged += 1
        level = (
            "error"
            if not error[0] <= observed <= error[1]
            else "warn"
            if not warn[0] <= observed <= warn[1]
            else "ok"
        )
        last["verdict"] = level
        if level != "ok":
            flagged.append({**last, "ratio": round(observed / expected, 3)})
            worst = "error" if level == "error" or worst == "error" else "warn"
    metadata: dict[str, Any] = {"days": len(days), "days_judged": judged, "days_outside_band": len(flagged)}
    if len(days) == 1:
        metadata.update(
            {k: json_metadata(v) if isinstance(v, list) else v for k, v in last.items() if k != "day"}
        )
    metadata["flagged_days"] = json_metadata(flagged[:SAMPLE_SIZE])
    return Outcome(passed=worst == "ok", metadata=metadata, severity="ERROR" if worst == "error" else "WARN")


def with_found(rows: DataFrame, ref: Reference, keys: DataFrame | None, flag: str) -> DataFrame:
    """`rows` with a column `flag`: its `ref.column` value is among the referenced keys (None: that
    table is not built yet, nothing is found). A left join with the distinct keys: no row repeats."""
    if keys is None:
        return rows.withColumn(flag, F.lit(False))
    match = f"{flag}_key"
    value_type = rows.schema[ref.column].dataType
    known = keys.select(F.col(f"`{ref.key}`").cast(value_type).alias(match)).distinct()
    joined = rows.join(known, F.col(f"`{ref.column}`") == F.col(match), "left")
    return joined.withColumn(flag, F.col(match).isNotNull()).drop(match)


def is_unknown(value: SparkColumn, ref: Reference) -> SparkColumn:
    return value == F.lit(ref.unknown) if ref.unknown is not None else F.lit(False)


def is_orphan(value: SparkColumn, ref: Reference, found: str) -> SparkColumn:
    return value.isNotNull() & ~F.col(found) & ~is_unknown(value, ref)


def references(
    rows: DataFrame, keys: DataFrame | None, ref: Reference, profile: Profile | None = None
) -> Outcome:
    """`ref.column`'s values against the referenced table's keys (None: not built yet, so every
    value is an orphan); the counts come with the step's profile."""
    if ref.column not in rows.columns:
        return Outcome(
            passed=False, metadata={"references": f"{ref.table}.{ref.key}", "missing_columns": ref.column}
        )
    profile = profile or Profile.of(rows, references=[(ref, keys)])
    counts = profile.references[ref.check_name]
    orphans = []
    if counts.orphans:
        value = F.col(f"`{ref.column}`")
        found = with_found(rows, ref, keys, "_found")
        orphaned = found.filter(is_orphan(value, ref, "_found")).select(value.alias("_value")).distinct()
        orphans = [r["_value"] for r in sample(orphaned.orderBy("_value"))]
    share = (counts.unknown + (counts.orphans if ref.orphans_allowed else 0)) / max(counts.rows, 1)
    orphans_fail = counts.orphans > 0 and not ref.orphans_allowed
    return Outcome(
        passed=not orphans_fail and share <= ref.max_unknown_share,
        severity="ERROR" if orphans_fail else "WARN",
        metadata={
            "references": f"{ref.table}.{ref.key}",
            "rows": counts.rows,
            "orphan_rows": counts.orphans,
            "orphan_sample": json_metadata(orphans),
            "unknown_member_rows": counts.unknown,
            "unknown_share": round(share, 6),
            "max_unknown_share": ref.max_unknown_share,
        },
    )


def contract_check(table: LakeTable, rows: DataFrame, profile: Profile | None = None) -> Outcome:
    """The table's contract on the window; every broken rule with its row count and sample rows."""
    by_rule = {}
    for violation in (profile or Profile.of(rows, table=table)).contract:
        entry: dict[str, Any] = {"error": violation.error}
        if violation.broken_by is not None:
            shown = list(dict.fromkeys([*table.primary_key, violation.column]))
            entry["rows"] = violation.rows
            entry["sample"] = sample(rows.filter(violation.broken_by).select(*shown))
        by_rule[violation.rule] = entry
    return Outcome(
        passed=not by_rule,
        metadata={"contract": f"{len(table.columns)} columns", "failures": json_metadata(by_rule)},
    )


def business_rule(rule: Rule, broken: DataFrame, count: int | None = None) -> Outcome:
    """`broken`: the rule's query of breaking rows; `count`: their number when the step's profile
    counted them already."""
    count = broken.count() if count is None else count
    return Outcome(
        passed=count == 0,
        severity=rule.severity,
        metadata={
            "violations": count,
            "sample": json_metadata(sample(broken) if count else []),
            "rule": dg.MetadataValue.md(f"```sql\n{' '.join(rule.violations.split())}\n```"),
        },
    )


def bind_views(query: str, views: dict[str, str]) -> str:
    """A rule's query reading `views` (a name in the query -> the view to read instead), for each
    table it names after FROM or JOIN. The views are named per step: a Spark Connect session looks a
    query's views up when the query runs, and a check step beside this one (steps run side by side
    in threads) defines views for the same names."""
    for name, view in views.items():
        query = re.sub(rf"(?i)\b(FROM|JOIN)(\s+){name}\b", lambda m, v=view: f"{m[1]}{m[2]}{v}", query)
    return query


# ------------------------------------------------------------------------------ the window checked


class cached_per_batch(functools.cached_property):
    """`functools.cached_property` without its lock: on Python 3.11 that lock is one per class, not
    per instance, so two check steps side by side (in threads) computed their profiles one after the
    other; a hand-made build's check steps spent 29 % of their time waiting on it (py-spy). Each
    batch is one step's, read by its one thread."""

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        if self.attrname not in instance.__dict__:
            instance.__dict__[self.attrname] = self.func(instance)
        return instance.__dict__[self.attrname]


@dataclass
class Batch:
    """What a check step looks at: its table's rows in the run's window, their profile (one
    aggregation), and ways to reach more."""

    table: LakeTable
    rows: DataFrame
    window: Window | None
    lake: Lake
    spark: SparkSession
    instance: dg.DagsterInstance
    empty: bool = False  # the log shows no row in the window: nothing to aggregate
    queries: dict[str, DataFrame] = field(default_factory=dict, repr=False)  # each rule's, by name
    views: list[str] = field(default_factory=list, repr=False)  # the temporary views the rules read

    @classmethod
    def load(
        cls, table: LakeTable, context: dg.AssetCheckExecutionContext, spark: SparkSession, lake: Lake
    ) -> "Batch":
        window = None
        if table.partition_column is not None:
            span = context.partition_time_window
            window = Window(table.partition_column, span.start.date(), span.end.date())
        key = dg.AssetKey(table.asset_path)
        log = lake.open(lake.uri(key))  # read once: the table exists, and maybe the window's row count
        rows = lake.table(spark, key, window, log=log)  # no log: a clear error (not built yet)
        empty = log is not None and lake.rows_in(log, window) == 0
        return cls(table, rows, window, lake, spark, context.instance, empty)

    @cached_per_batch
    def profile(self) -> Profile:
        """Every check's counts in one Spark action (Profile). The window is not cached: within
        the one action its reads are a scan each, cheaper on a day's rows than building a cache."""
        table = self.table
        contract = table if table.columns and table.layer != "bronze" else None  # as table_checks says
        daily = None
        if table.drift is not None and self.window is not None and self.logged_per_day is None:
            history = self.history_window(table.drift)
            frame = self.lake.table(self.spark, dg.AssetKey(table.asset_path), history, [history.column])
            daily = (frame, history.column)
        columns = set(self.rows.columns)
        references = [
            (ref, self.referenced_keys[ref.check_name]) for ref in table.references if ref.column in columns
        ]
        profile_with = functools.partial(
            Profile.of, self.rows, table.primary_key, table.not_null_columns, contract, self.empty, references
        )
        if not table.rules:
            return profile_with((), daily)
        try:
            return profile_with([(rule, self.sql(rule)) for rule in table.rules], daily)
        except AnalysisException:  # a rule's query no longer analyses (a column it reads is gone):
            return profile_with((), daily)  # that rule's check fails alone, the others count theirs

    def sql(self, rule: Rule) -> DataFrame:
        """The rule's query, with `rows` and every table it reads (same window if partitioned
        alike); built once per step: the profile counts it, a failing rule's check samples it."""
        if rule.name not in self.queries:
            frames = {"rows": self.rows}
            for path in rule.reads:
                other = TABLES_BY_PATH[path]
                window = self.window if other.partition_column == self.table.partition_column else None
                frames[other.name] = self.lake.table(self.spark, dg.AssetKey(other.asset_path), window)
            views = {name: f"_check_{name}_{uuid.uuid4().hex[:12]}" for name in frames}
            for name, frame in frames.items():
                frame.createOrReplaceTempView(views[name])
            self.views.extend(views.values())
            self.queries[rule.name] = self.spark.sql(bind_views(rule.violations, views))
        return self.queries[rule.name]

    def drop_views(self) -> None:
        for view in self.views:
            self.spark.catalog.dropTempView(view)

    def drift(self, drift: Drift) -> Outcome:
        counts, days, materialized = self.row_counts(drift)
        source_time = self.source_time(drift.clock)
        first_landed = None
        if drift.landed_within is not None and source_time is not None:
            # This run landed the window's days (a day landed before counts as landed now: at
            # worst it is not judged). Only a recent day is judged, so only its history's
            # landing times are looked up.
            first_landed = dict.fromkeys(days, source_time)
            recent = [d for d in days if source_time - _day_end(d) <= drift.landed_within]
            earlier = {d - dt.timedelta(weeks=k) for d in recent for k in range(1, drift.weeks + 1)}
            first_landed |= self.first_landed(sorted(earlier - set(days)))
        return row_count_drift(counts, days, materialized, drift, source_time, first_landed)

    def first_landed(self, days: list[dt.date]) -> dict[dt.date, dt.datetime]:
        """The source's present when each day was first landed (the `source_time` of its first
        materialization; days without one are left out)."""
        landed: dict[dt.date, dt.datetime] = {}
        if not days:
            return landed
        partitions = [d.isoformat() for d in days]
        records_filter = dg.AssetRecordsFilter(
            dg.AssetKey(self.table.asset_path), asset_partitions=partitions
        )
        cursor = None
        while True:
            page = self.instance.fetch_materializations(
                records_filter, limit=1000, cursor=cursor, ascending=True
            )
            for record in page.records:
                materialization = record.asset_materialization
                recorded = materialization.metadata.get(SOURCE_TIME) if materialization else None
                if recorded is not None and materialization.partition:
                    day = dt.date.fromisoformat(materialization.partition)
                    landed.setdefault(day, dt.datetime.fromisoformat(recorded.value))
            if not page.has_more:
                return landed
            cursor = page.cursor

    def source_time(self, clock: str | None) -> dt.datetime | None:
        """The source's present when the clock table was last materialized (None if not recorded)."""
        key = dg.AssetKey(clock.split("/") if clock else self.table.asset_path)
        event = self.instance.get_latest_materialization_event(key)
        recorded = (
            event.asset_materialization.metadata.get(SOURCE_TIME)
            if event and event.asset_materialization
            else None
        )
        return dt.datetime.fromisoformat(recorded.value) if recorded is not None else None

    def history_window(self, drift: Drift) -> Window:
        """The window and the weeks before it that the drift check compares it with."""
        assert self.window is not None
        since = self.window.start - dt.timedelta(weeks=drift.weeks)
        return Window(self.window.column, since, self.window.end)

    @cached_per_batch
    def logged_per_day(self) -> dict[dt.date, int] | None:
        """Rows per day over the drift check's history window from the table's Delta log, no data
        read; None when the log cannot tell (a file spans several days: the profile counts them)."""
        assert self.table.drift is not None
        window = self.history_window(self.table.drift)
        return self.lake.rows_per_day(dg.AssetKey(self.table.asset_path), window)

    def row_counts(self, drift: Drift) -> tuple[dict[dt.date, int], list[dt.date], set[dt.date]]:
        """Rows per day over the window and the weeks before it, the window's days, the materialized days."""
        assert self.window is not None
        counts = self.logged_per_day
        if counts is None:
            counts = self.profile.per_day or {}
        days = [
            self.window.start + dt.timedelta(days=n)
            for n in range((self.window.end - self.window.start).days)
        ]
        key = dg.AssetKey(self.table.asset_path)
        materialized = {dt.date.fromisoformat(p) for p in self.instance.get_materialized_partitions(key)}
        return counts, days, materialized

    @cached_per_batch
    def referenced_keys(self) -> dict[str, DataFrame | None]:
        """Per reference check, the referenced table's keys (same window if the reference says
        so); None: that table is not built yet."""
        keys = {}
        for ref in self.table.references:
            key = dg.AssetKey(TABLES_BY_PATH[ref.table].asset_path)
            window = self.window if ref.same_window else None
            keys[ref.check_name] = self.lake.frame(self.spark, key, window, [ref.key])
        return keys


# ------------------------------------------------------------------------------------ the factory


@dataclass(frozen=True)
class TableCheck:
    name: str
    description: str
    blocking: bool
    evaluate: Callable[[Batch], Outcome]


def table_checks(table: LakeTable) -> list[TableCheck]:
    """What a table's spec says its checks are."""
    checks = []
    if table.primary_key:
        checks.append(
            TableCheck(
                "unique_key",
                f"No two rows share the key ({', '.join(table.primary_key)}) in the window.",
                True,
                lambda b: unique_key(b.rows, table.primary_key, b.profile),
            )
        )
    if table.not_null_columns:
        checks.append(
            TableCheck(
                "not_null",
                f"No nulls in {', '.join(table.not_null_columns)}.",
                True,
                lambda b: not_null(b.rows, table.not_null_columns, table.primary_key, b.profile),
            )
        )
    if table.layer == "bronze" and table.source is not None:
        source_columns = table.source.all_columns
        checks.append(
            TableCheck(
                "schema",
                "Every source column landed with its type (values are judged in silver).",
                True,
                lambda b: schema(b.rows.schema, source_columns),
            )
        )
    if table.columns and table.layer != "bronze":
        checks.append(
            TableCheck(
                "contract",
                "The table's contract: column types, required columns and value rules.",
                True,
                lambda b: contract_check(table, b.rows, b.profile),
            )
        )
    if table.drift is not None and table.partition_column is not None:
        drift = table.drift
        checks.append(
            TableCheck(
                "row_count_drift",
                f"Rows per day within {drift.warn_band[0]}-{drift.warn_band[1]}x (warning) and "
                f"{drift.error_band[0]}-{drift.error_band[1]}x (error) of the median of the same "
                f"weekday over the previous {drift.weeks} materialized weeks.",
                False,
                lambda b: b.drift(drift),
            )
        )
    for ref in table.references:
        checks.append(
            TableCheck(
                ref.check_name,
                f"{ref.column} points to {ref.table}.{ref.key}; unknown at most {ref.max_unknown_share:.0%}.",
                False,
                lambda b, ref=ref: references(b.rows, b.referenced_keys[ref.check_name], ref, b.profile),
            )
        )
    for rule in table.rules:
        checks.append(
            TableCheck(
                rule.name,
                rule.description,
                rule.blocking,
                lambda b, r=rule: business_rule(r, b.sql(r), b.profile.violations.get(r.name)),
            )
        )
    return checks


def build_table_checks(table: LakeTable, partitions: dg.PartitionsDefinition) -> dg.AssetChecksDefinition:
    key = dg.AssetKey(table.asset_path)
    planned = table_checks(table)
    # The tables the checks read besides their own: in a run that builds them too, the checks wait.
    read = {ref.table for ref in table.references} | {path for rule in table.rules for path in rule.reads}
    others = [dg.AssetKey(path.split("/")) for path in sorted(read - {"/".join(table.asset_path)})]
    specs = [
        dg.AssetCheckSpec(
            check.name,
            asset=key,
            description=check.description,
            blocking=check.blocking,
            partitions_def=partitions if table.partition_column else None,
            additional_deps=others,
        )
        for check in planned
    ]

    @dg.multi_asset_check(specs=specs, name=f"{table.layer}_{table.name}_checks")
    def checks(context: dg.AssetCheckExecutionContext, spark: SparkResource, lakehouse: LakeResource):
        batch = Batch.load(table, context, spark.session(), lakehouse.lake())
        rows_checked = batch.profile.rows
        scope = "whole table"
        if batch.window:
            scope = f"{batch.window.start}..{batch.window.end - dt.timedelta(days=1)}"
        for check in planned:
            outcome = check.evaluate(batch)
            yield dg.AssetCheckResult(
                asset_key=key,
                check_name=check.name,
                passed=outcome.passed,
                severity=dg.AssetCheckSeverity[outcome.severity],
                metadata={"window": scope, "rows_checked": rows_checked, **outcome.metadata},
            )
        batch.drop_views()

    return checks


def quality_checks(
    partitions: dg.PartitionsDefinition, layers: Collection[str]
) -> list[dg.AssetChecksDefinition]:
    """Every check of the tables of these layers (bronze, silver, quarantine, gold)."""
    return [
        build_table_checks(table, partitions)
        for table in LAKE_TABLES
        if table.asset_path[0] in layers and table_checks(table)
    ]


def column_schema_change_checks(
    keys: Collection[dg.AssetKey], severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.WARN
) -> list[dg.AssetChecksDefinition]:
    """A `column_schema_change` check on each asset: the `dagster/column_schema` of its latest
    materialization against that of the latest one recorded before the run that made it (the IO
    managers and the stream lane record it). One definition per asset, so each check step runs
    right after its asset and alone in its step. WARN: a breaking change already fails the blocking
    `schema` and `contract` checks, and bronze takes an undeclared source column on purpose (schema
    evolution); this one says that it changed.

    Not Dagster's `build_column_schema_change_checks`: it compares the two latest materializations,
    and a ranged run (a backfill, a day's build over several order dates) records one per partition,
    all with the same columns, so a change a ranged run brought went unseen."""
    return [_schema_change_check(key, severity) for key in sorted(keys)]


def _columns(record: dg.EventLogRecord) -> dict[str, str] | None:
    materialization = record.asset_materialization
    value = materialization.metadata.get("dagster/column_schema") if materialization else None
    schema = getattr(value, "value", None)
    return {c.name: c.type for c in schema.columns} if isinstance(schema, dg.TableSchema) else None


def _schema_change_check(key: dg.AssetKey, severity: dg.AssetCheckSeverity) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=key,
        name="column_schema_change",
        description="Whether the columns of the asset's latest materialization differ from those of"
        " the latest one before that run: added, removed, or of another type",
    )
    def column_schema_change(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        instance = context.instance
        latest = instance.fetch_materializations(key, limit=1).records
        if not latest:
            return dg.AssetCheckResult(passed=True, description="The asset has no materialization yet")
        run = instance.get_run_record_by_id(latest[0].run_id)
        if run is None:
            # Reported outside a run (the UI's "Report materialization", `report_runless_asset_event`):
            # one event alone, so the one before it is the previous state.
            before = dg.AssetRecordsFilter(asset_key=key, before_storage_id=latest[0].storage_id)
        else:
            # Created before it wrote anything: every materialization older than the run is another run's.
            before = dg.AssetRecordsFilter(asset_key=key, before_timestamp=run.create_timestamp.timestamp())
        previous = instance.fetch_materializations(before, limit=1).records
        if not previous:
            return dg.AssetCheckResult(passed=True, description="No materialization before this run's")
        now, then = _columns(latest[0]), _columns(previous[0])
        if now is None or then is None:
            which = "latest" if now is None else "previous"
            return dg.AssetCheckResult(
                passed=False,
                severity=severity,
                description=f"The {which} materialization has no column schema",
            )
        added = [name for name in now if name not in then]
        removed = [name for name in then if name not in now]
        retyped = {
            name: f"{then[name]} -> {now[name]}" for name in now if name in then and now[name] != then[name]
        }
        lines = [f"Added columns: {', '.join(added)}"] if added else []
        lines += [f"Removed columns: {', '.join(removed)}"] if removed else []
        lines += [f"Column type changes: {name}: {change}" for name, change in retyped.items()]
        return dg.AssetCheckResult(
            passed=not lines,
            severity=severity,
            description="\n".join(lines) or "No change to the columns since the previous run",
            metadata={
                "compared_with_run": previous[0].run_id,
                "added": ", ".join(added),
                "removed": ", ".join(removed),
                "type_changes": json_metadata(retyped),
            },
        )

    return column_schema_change
