"""The settings object reads the documented variables when asked, not at import time."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from medallion_assets.settings import get_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "MEDALLION_HOME",
        "MEDALLION_LAKE_URI",
        "MEDALLION_SOURCE_URL",
        "SPARK_REMOTE",
        "MEDALLION_WAREHOUSE",
        "MEDALLION_START_DATE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", "/somewhere/else")  # must not be taken for MEDALLION_HOME
    settings = get_settings()
    assert settings.home == tmp_path / ".medallion"
    assert settings.lake_uri == str(tmp_path / ".medallion" / "lake")
    assert settings.embedded_postgres_dir == tmp_path / ".medallion" / "postgres"
    assert settings.source_url is None and settings.spark_remote is None
    assert settings.warehouse == "duckdb"
    assert settings.start_date == dt.date(2016, 9, 1)


def test_environment_is_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDALLION_LAKE_URI", "s3://lake/prefix")
    monkeypatch.setenv("MEDALLION_SOURCE_URL", "postgresql://u:topsecret@db/olist")
    monkeypatch.setenv("MEDALLION_WAREHOUSE", "bigquery")
    monkeypatch.setenv("MEDALLION_START_DATE", "2017-01-01")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    settings = get_settings()
    assert settings.lake_uri == "s3://lake/prefix"
    assert settings.warehouse == "bigquery" and settings.start_date == dt.date(2017, 1, 1)
    assert settings.source_url.get_secret_value() == "postgresql://u:topsecret@db/olist"
    assert "topsecret" not in repr(settings) and "aws-secret" not in repr(settings)
    assert get_settings(warehouse="duckdb").warehouse == "duckdb"  # explicit overrides win


def test_invalid_values_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDALLION_WAREHOUSE", "snowflake")
    with pytest.raises(ValueError, match="MEDALLION_WAREHOUSE"):
        get_settings()
