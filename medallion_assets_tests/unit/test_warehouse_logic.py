"""The warehouse's logic without a warehouse: BigQuery credentials come from the environment and
never leak; the comparison with gold names what differs. (Both IO managers against the real thing
and the pipeline's sync: integration/test_warehouse.py.)"""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pytest

from medallion_assets.resources.bigquery_warehouse import BigQueryWarehouse, credentials
from medallion_assets.resources.warehouse import WarehouseError
from medallion_assets.settings import get_settings
from medallion_assets.warehouse.assets import compare
from medallion_assets_tests.helpers import CATEGORIES, category_rows


def test_bigquery_credentials_come_from_the_environment_and_never_leak(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = '{"type": "service_account", "private_key": "-----BEGIN SECRET-----", "client_email": "x@y"}'
    monkeypatch.setenv("MEDALLION_BIGQUERY_CREDENTIALS_JSON", key)
    with pytest.raises(WarehouseError, match="not a service account key") as failure:
        credentials(get_settings())
    assert "SECRET" not in str(failure.value)
    monkeypatch.delenv("MEDALLION_BIGQUERY_CREDENTIALS_JSON")
    monkeypatch.setenv("MEDALLION_BIGQUERY_ENDPOINT", "http://127.0.0.1:9")
    assert type(credentials(get_settings())).__name__ == "AnonymousCredentials"
    monkeypatch.delenv("MEDALLION_BIGQUERY_ENDPOINT")
    assert credentials(get_settings()) is None  # Google's application default credentials
    monkeypatch.delenv("MEDALLION_BIGQUERY_PROJECT", raising=False)
    with pytest.raises(WarehouseError, match="needs MEDALLION_BIGQUERY_PROJECT"):
        BigQueryWarehouse().client()


def test_compare_names_what_differs() -> None:
    key = list(CATEGORIES.primary_key)
    gold = category_rows({0: ["toys", "books"]})
    changed = gold.set_column(
        4, "total_revenue", pa.array([Decimal("1234.56"), Decimal("9876.54")], pa.decimal128(18, 2))
    )
    differing = compare(gold, changed, key)
    assert not differing.equal
    assert differing.differences["differing_columns"].data["total_revenue"]["rows"] == 2
    missing = compare(gold, gold.slice(0, 1), key)
    assert (missing.gold_rows, missing.warehouse_rows) == (2, 1)
    assert (
        missing.differences["only_in_gold_rows"] == 1 and "only_in_warehouse_rows" not in missing.differences
    )
    # A key stored twice: no key is missing on either side, the counts still tell.
    doubled = compare(gold, pa.concat_tables([gold, gold.slice(0, 1)]), key)
    assert not doubled.equal and doubled.warehouse_rows == 3
    same = compare(gold, gold.take([1, 0]), key)  # the order does not matter
    assert same.equal and same.differences == {}
