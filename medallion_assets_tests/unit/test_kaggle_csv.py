"""The Kaggle CSV reader and writer on the real sample, on generated files, and on broken files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from medallion_assets.specs import OLIST_TABLES, TABLES_BY_NAME
from olist_source.generator import GenerationResult
from olist_source.kaggle_csv import CsvLoadError, read_directory, read_table, write_table

# Row counts from the sample's README.
SAMPLE_ROWS = {
    "order_payments": 103_886,
    "products": 32_951,
    "sellers": 3_095,
    "product_category_name_translation": 71,
    "geolocation": 67_806,
    "order_reviews": 6_123,
    "order_items": 5_154,
    "orders": 4_071,
    "customers": 200,
}
ORDERS = TABLES_BY_NAME["orders"]


def test_real_sample_loads_every_row(sample_dir: Path) -> None:
    tables, reports = read_directory(sample_dir)
    assert {name: t.num_rows for name, t in tables.items()} == SAMPLE_ROWS
    assert all(r.rows_read == r.rows_loaded and not r.bad_rows for r in reports)
    for spec in OLIST_TABLES:
        assert tables[spec.name].schema == spec.arrow_schema


def test_real_sample_quirks(sample_tables: dict[str, pa.Table]) -> None:
    translation = sample_tables["product_category_name_translation"]
    # The UTF-8 BOM does not leak into the first column name, CRLF does not leak into values.
    assert translation.column_names == ["product_category_name", "product_category_name_english"]
    assert not pc.any(pc.match_substring(translation["product_category_name_english"], "\r")).as_py()

    messages = sample_tables["order_reviews"]["review_comment_message"]
    assert pc.sum(pc.match_substring(messages, "\n")).as_py() == 237  # embedded newlines kept
    assert pc.any(pc.match_substring(messages, '"')).as_py()
    assert pc.any(pc.match_substring(messages, "ã")).as_py()

    zips = sample_tables["geolocation"]["geolocation_zip_code_prefix"]
    assert pc.all(pc.match_substring_regex(zips, r"^\d{5}$")).as_py()
    assert zips[0].as_py() == "01037"

    orders = sample_tables["orders"]
    assert orders["order_approved_at"].null_count == 8
    assert orders["order_delivered_customer_date"].null_count == 106

    categories = set(pc.unique(sample_tables["products"]["product_category_name"]).to_pylist())
    translated = set(translation["product_category_name"].to_pylist())
    assert {"pc_gamer", "portateis_cozinha_e_preparadores_de_alimentos"} <= categories - translated
    assert sample_tables["products"]["product_category_name"].null_count == 610
    assert "product_name_lenght" in sample_tables["products"].column_names

    geo = sample_tables["geolocation"]
    assert pc.count_distinct(geo["geolocation_zip_code_prefix"]).as_py() < geo.num_rows
    assert geo["geolocation_id"].to_pylist()[:3] == [1, 2, 3]


def test_writer_reproduces_the_real_files_byte_for_byte(
    sample_tables: dict[str, pa.Table], sample_dir: Path, tmp_path: Path
) -> None:
    """Quoting, header, timestamp and number formats, BOM and line ends are the original ones."""
    for spec in OLIST_TABLES:
        table = sample_tables[spec.name]
        if spec.row_number_key:
            table = table.drop_columns([spec.row_number_key])
        write_table(spec, table, tmp_path / spec.csv_file)
        written = (tmp_path / spec.csv_file).read_bytes()
        original = (sample_dir / spec.csv_file).read_bytes()
        # The truncated files (and the translation file) end without a final line break.
        assert written.removesuffix(spec.csv_line_terminator.encode()) == original.removesuffix(
            spec.csv_line_terminator.encode()
        ), spec.csv_file


def test_generated_files_round_trip(small_generated: GenerationResult, small_generated_dir: Path) -> None:
    tables, reports = read_directory(small_generated_dir)
    for spec in OLIST_TABLES:
        assert tables[spec.name].equals(small_generated.tables[spec.name]), spec.name
    assert not any(r.bad_rows for r in reports)


# ------------------------------------------------------------------------------------ broken input


def _orders_copy(sample_dir: Path, tmp_path: Path, edit) -> Path:
    path = tmp_path / ORDERS.csv_file
    lines = (sample_dir / ORDERS.csv_file).read_text(encoding="utf-8").split("\n")[:50]
    path.write_text("\n".join(edit(lines)), encoding="utf-8")
    return path


def test_wrong_field_count_names_file_and_line(sample_dir: Path, tmp_path: Path) -> None:
    def edit(lines: list[str]) -> list[str]:
        lines[9] += ",surplus"
        return lines

    path = _orders_copy(sample_dir, tmp_path, edit)
    with pytest.raises(CsvLoadError) as error:
        read_table(ORDERS, path)
    assert f"{ORDERS.csv_file}:10: expected 8 fields, found 9" in str(error.value)


def test_unparsable_value_names_line_column_and_value(sample_dir: Path, tmp_path: Path) -> None:
    def edit(lines: list[str]) -> list[str]:
        lines[4] = lines[4].replace(",delivered,2017", ",delivered,17/08/2017")
        return lines

    path = _orders_copy(sample_dir, tmp_path, edit)
    with pytest.raises(CsvLoadError) as error:
        read_table(ORDERS, path)
    message = str(error.value)
    assert f"{ORDERS.csv_file}:5: column order_purchase_timestamp: cannot read '17/08/2017" in message
    assert "as a timestamp YYYY-MM-DD HH:MM:SS" in message


def test_line_numbers_count_embedded_newlines(sample_dir: Path, tmp_path: Path) -> None:
    """A review comment spanning lines shifts the physical line of every later record."""
    spec = TABLES_BY_NAME["order_reviews"]
    text = (sample_dir / spec.csv_file).read_bytes().decode("utf-8")
    records = text.split("\r\n")
    header, rest = records[0], records[1:40]
    multiline = '"' + "a" * 32 + '","' + "b" * 32 + '",5,,"one\r\ntwo\r\nthree",2018-01-01 00:00:00,'
    broken = rest[5] + ",surplus"
    body = [multiline, *rest[:5], broken, *rest[6:]]
    path = tmp_path / spec.csv_file
    path.write_bytes("\r\n".join([header, *body]).encode())
    with pytest.raises(CsvLoadError) as error:
        read_table(spec, path)
    # header (1) + 3 physical lines for the multi-line record + 5 records -> the broken one is line 10
    assert f"{spec.csv_file}:10:" in str(error.value)


def test_missing_required_value_and_duplicate_key(sample_dir: Path, tmp_path: Path) -> None:
    def edit(lines: list[str]) -> list[str]:
        lines[3] = "," + lines[3].split(",", 1)[1]  # order_id emptied
        lines.append(lines[7])  # the same order again
        return lines

    path = _orders_copy(sample_dir, tmp_path, edit)
    with pytest.raises(CsvLoadError) as error:
        read_table(ORDERS, path)
    message = str(error.value)
    assert "2 bad row(s)" in message
    assert f"{ORDERS.csv_file}:4: column order_id: required value missing" in message
    assert f"{ORDERS.csv_file}:51: duplicate primary key order_id=" in message


def test_skip_mode_loads_good_rows_and_reports_the_bad(sample_dir: Path, tmp_path: Path) -> None:
    def edit(lines: list[str]) -> list[str]:
        lines[2] += ",surplus"
        lines[6] = lines[6].replace(",delivered,", ",delivered,yesterday,", 1).rsplit(",", 1)[0]
        return lines

    path = _orders_copy(sample_dir, tmp_path, edit)
    table, report = read_table(ORDERS, path, on_bad_rows="skip")
    assert report.rows_read == 49
    assert report.rows_loaded == table.num_rows == 47
    assert [b.line for b in report.bad_rows] == [3, 7]
    assert report.rows_read == report.rows_loaded + len(report.bad_rows)  # nothing lost silently


def test_header_problems_and_missing_files(sample_dir: Path, tmp_path: Path) -> None:
    path = _orders_copy(
        sample_dir, tmp_path, lambda lines: [lines[0].replace("order_status", "status"), *lines[1:]]
    )
    with pytest.raises(
        CsvLoadError, match=r"header does not match the orders table: missing \['order_status'\]"
    ):
        read_table(ORDERS, path)
    path.write_text("", encoding="utf-8")
    with pytest.raises(CsvLoadError, match="empty file"):
        read_table(ORDERS, path)
    with pytest.raises(CsvLoadError, match="file not found"):
        read_table(ORDERS, tmp_path / "absent.csv")


def test_invalid_utf8_names_the_line(sample_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / ORDERS.csv_file
    lines = (sample_dir / ORDERS.csv_file).read_bytes().split(b"\n")[:20]
    lines[12] = lines[12].replace(b"delivered", b"deliv\xff\xfeered")
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(CsvLoadError, match=rf"{ORDERS.csv_file}:13: .*(UTF8|utf-?8)"):
        read_table(ORDERS, path)


def test_a_directory_missing_one_file_is_a_clear_error(sample_dir: Path, tmp_path: Path) -> None:
    for spec in OLIST_TABLES[:-1]:
        shutil.copy(sample_dir / spec.csv_file, tmp_path / spec.csv_file)
    with pytest.raises(CsvLoadError, match=r"product_category_name_translation\.csv"):
        read_directory(tmp_path)
