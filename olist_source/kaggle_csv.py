"""Read and write the Olist tables in the original Kaggle CSV format.

Reading is strict and vectorised (pyarrow): every cell is read as text, then parsed by the column's
declared type; a row that has the wrong number of fields, a value that does not parse, a missing
required value or a repeated primary key is a *bad row*. Bad rows either stop the load with an
error naming file, line and column, or (on request) are skipped and reported: never silently lost.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from medallion_assets.specs import (
    KAGGLE_TIMESTAMP_FORMAT,
    OLIST_TABLES,
    TYPES,
    Column,
    SourceTable,
)

OnBadRows = Literal["error", "skip"]
# Exports through pandas write integers as "40.0": the reader accepts that form too.
VALUE_PATTERNS = {
    **{name: t.text_form for name, t in TYPES.items() if t.text_form},
    "int": r"^[+-]?\d{1,9}(\.0+)?$",
}
ERRORS_SHOWN = 10


class CsvLoadError(ValueError):
    """A Kaggle file could not be read; the message names the file and the lines at fault."""


@dataclass(frozen=True)
class BadRow:
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class FileReport:
    table: str
    file: str
    rows_read: int = 0
    rows_loaded: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- read


def read_table(
    spec: SourceTable, path: Path, on_bad_rows: OnBadRows = "error"
) -> tuple[pa.Table, FileReport]:
    """Read one Kaggle file into a typed Arrow table with the spec's schema."""
    report = FileReport(spec.name, str(path))
    if not path.is_file():
        raise CsvLoadError(f"{path}: file not found (the {spec.name} table is read from {spec.csv_file})")
    _check_header(spec, path)

    wrong_field_counts: list[str] = []

    def on_invalid_row(row: pa_csv.InvalidRow) -> str:
        wrong_field_counts.append(f"expected {row.expected_columns} fields, found {row.actual_columns}")
        return "skip"

    names = [c.name for c in spec.csv_columns]
    try:
        raw = pa_csv.read_csv(
            path,
            parse_options=pa_csv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid_row),
            convert_options=pa_csv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                include_columns=names,
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise CsvLoadError(f"{path}:{_first_undecodable_line(path)}: {exc}") from exc

    report.rows_read = raw.num_rows + len(wrong_field_counts)
    typed, bad_mask, reasons = _parse_columns(spec, raw)
    if reasons or wrong_field_counts:
        lines_of_good, lines_of_wrong = _record_lines(path, len(names))
        report.bad_rows = sorted(
            [BadRow(path.name, lines_of_wrong[i], r) for i, r in enumerate(wrong_field_counts)]
            + [BadRow(path.name, int(lines_of_good[i]), reason) for i, reason in reasons.items()],
            key=lambda b: b.line,
        )
        if on_bad_rows == "error":
            shown = "\n  ".join(str(b) for b in report.bad_rows[:ERRORS_SHOWN])
            more = len(report.bad_rows) - ERRORS_SHOWN
            raise CsvLoadError(
                f"{path}: {len(report.bad_rows)} bad row(s) in {spec.name}:\n  {shown}"
                + (f"\n  ... and {more} more" if more > 0 else "")
                + "\n(load with --on-bad-rows skip to load the good rows and report these)"
            )
        typed = typed.filter(pa.array(~bad_mask))

    if spec.row_number_key is not None:
        # Surrogate key by position among the well-formed records; a skipped row's number is not reused.
        positions = np.flatnonzero(~bad_mask) + 1
        typed = typed.add_column(0, spec.row_number_key, pa.array(positions, pa.int32()))
    report.rows_loaded = typed.num_rows
    return typed.cast(spec.arrow_schema), report


def read_directory(
    directory: Path, on_bad_rows: OnBadRows = "error", tables: Iterable[SourceTable] = OLIST_TABLES
) -> tuple[dict[str, pa.Table], list[FileReport]]:
    if not directory.is_dir():
        raise CsvLoadError(f"{directory}: not a directory of Olist CSV files")
    result, reports = {}, []
    for spec in tables:
        result[spec.name], report = read_table(spec, directory / spec.csv_file, on_bad_rows)
        reports.append(report)
    return result, reports


def _check_header(spec: SourceTable, path: Path) -> None:
    with path.open("rb") as f:
        first_line = f.readline()
    try:
        header = next(csv.reader([first_line.decode("utf-8-sig")]), None)
    except UnicodeDecodeError as exc:
        raise CsvLoadError(f"{path}:1: the header is not UTF-8 text ({exc.reason})") from None
    expected = [c.name for c in spec.csv_columns]
    if not header:
        raise CsvLoadError(f"{path}:1: empty file, expected a header with {', '.join(expected)}")
    missing = [n for n in expected if n not in header]
    unexpected = [n for n in header if n not in expected]
    if missing or unexpected or len(header) != len(set(header)):
        raise CsvLoadError(
            f"{path}:1: header does not match the {spec.name} table: "
            f"missing {missing or 'none'}, unexpected {unexpected or 'none'}, found {header}"
        )


def _parse_columns(spec: SourceTable, raw: pa.Table) -> tuple[pa.Table, np.ndarray, dict[int, str]]:
    """Parse every column by its type: the typed table, which rows are bad, and why (by row index)."""
    n = raw.num_rows
    bad = np.zeros(n, dtype=bool)
    reasons: dict[int, str] = {}
    arrays = []

    def flag(mask: pa.Array | np.ndarray, reason_of: object) -> None:
        hits = np.asarray(mask, dtype=bool) & ~bad
        for i in np.flatnonzero(hits):
            reasons[int(i)] = reason_of(i) if callable(reason_of) else str(reason_of)
        bad[hits] = True

    for column in spec.csv_columns:
        text = raw.column(column.name).combine_chunks() if n else pa.array([], pa.string())
        values = _parse(column, text)
        if column.type != "string":
            unparsable = pc.and_(pc.is_valid(text), pc.is_null(values)).to_numpy(zero_copy_only=False)
            flag(
                unparsable,
                lambda i, c=column, t=text: (
                    f"column {c.name}: cannot read {t[i].as_py()!r} as {c.type_names.description}"
                ),
            )
        if column.required:
            flag(
                pc.is_null(values).to_numpy(zero_copy_only=False),
                f"column {column.name}: required value missing",
            )
        arrays.append(values)
    typed = pa.table(arrays, names=[c.name for c in spec.csv_columns])
    flag(_repeated_keys(spec, typed, bad), lambda i: f"duplicate primary key {_key_text(spec, typed, i)}")
    return typed, bad, reasons


def _parse(column: Column, text: pa.Array) -> pa.Array:
    if column.type == "string":
        return text
    if column.type == "timestamp":
        return pc.strptime(text, format=KAGGLE_TIMESTAMP_FORMAT, unit="us", error_is_null=True)
    well_formed = pc.match_substring_regex(text, VALUE_PATTERNS[column.type])
    clean = pc.if_else(well_formed, text, pa.scalar(None, pa.string()))
    if column.type == "int":
        clean = pc.replace_substring_regex(clean, r"\.0+$", "")
    return pc.cast(clean, column.type_names.arrow)


def _repeated_keys(spec: SourceTable, typed: pa.Table, already_bad: np.ndarray) -> np.ndarray:
    """Rows whose primary key was already seen on an earlier good row (the first one wins)."""
    if spec.row_number_key is not None or typed.num_rows == 0:
        return np.zeros(typed.num_rows, dtype=bool)
    keyed = typed.select(list(spec.primary_key)).append_column("_row", pa.array(np.arange(typed.num_rows)))
    keyed = keyed.filter(pa.array(~already_bad))
    first = keyed.group_by(list(spec.primary_key), use_threads=False).aggregate([("_row", "min")])
    repeated = np.ones(typed.num_rows, dtype=bool)
    repeated[first.column("_row_min").to_numpy()] = False
    return repeated & ~already_bad


def _key_text(spec: SourceTable, typed: pa.Table, i: int) -> str:
    return ", ".join(f"{k}={typed.column(k)[i].as_py()!r}" for k in spec.primary_key)


def _record_lines(path: Path, field_count: int) -> tuple[np.ndarray, list[int]]:
    """Physical start line of each record (error path only): good records, and wrong-width ones."""
    good, wrong = [], []
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        next(reader, None)
        line = reader.line_num + 1
        for record in reader:
            if record:  # blank lines are skipped, as the fast reader does
                (good if len(record) == field_count else wrong).append(line)
            line = reader.line_num + 1
    return np.array(good, dtype=np.int64), wrong


def _first_undecodable_line(path: Path) -> int | str:
    with path.open("rb") as f:
        for number, raw_line in enumerate(f, start=1):
            try:
                raw_line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return "?"


# --------------------------------------------------------------------------------------------- write


def write_table(spec: SourceTable, table: pa.Table, path: Path, batch_rows: int = 500_000) -> None:
    """Write a typed table as the Kaggle file: same header, quoting, timestamp format, line ends."""
    terminator = spec.csv_line_terminator
    names = [c.name for c in spec.csv_columns]
    header = ",".join([f'"{n}"' for n in names] if spec.csv_quoted_header else names) + terminator
    with path.open("wb") as out:
        out.write(("\ufeff" if spec.csv_bom else "").encode() + header.encode())
        for offset in range(0, table.num_rows, batch_rows):
            batch = table.slice(offset, batch_rows)
            cells = [_format_cells(c, batch.column(c.name).combine_chunks()) for c in spec.csv_columns]
            lines = pc.binary_join_element_wise(*cells, ",")
            lines = pc.binary_join_element_wise(lines, pa.scalar(terminator), "")
            out.write(_concatenated_bytes(lines))


def _format_cells(column: Column, values: pa.Array) -> pa.Array:
    if column.type == "timestamp":
        text = pc.strftime(pc.cast(values, pa.timestamp("s")), format=KAGGLE_TIMESTAMP_FORMAT)
    else:
        text = pc.cast(values, pa.string())
    if column.type == "string":
        must_quote = {
            "always": lambda: pc.is_valid(text),
            "leading_digit": lambda: pc.match_substring_regex(text, '^[0-9]|[,"\r\n]'),
            "needed": lambda: pc.match_substring_regex(text, '[,"\r\n]'),
        }[column.quoting]()
        quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
        text = pc.if_else(must_quote, quoted, text)
    return pc.fill_null(text, "")


def _concatenated_bytes(lines: pa.Array) -> bytes:
    lines = lines.cast(pa.large_string()) if len(lines) > 2_000_000 else lines
    offsets_type = np.int64 if pa.types.is_large_string(lines.type) else np.int32
    offsets = np.frombuffer(lines.buffers()[1], dtype=offsets_type)[
        lines.offset : lines.offset + len(lines) + 1
    ]
    data = lines.buffers()[2]
    return data.to_pybytes()[offsets[0] : offsets[-1]] if data is not None else b""
