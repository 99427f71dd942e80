"""Resources are the one door, and secrets stay secret: what the code location shows the UI (its
repository snapshot, served to the webserver) names every secret's variable and never its value;
a resource field left unset takes the settings' value."""

from __future__ import annotations

import pytest
from dagster._core.remote_representation.external_data import RepositorySnap  # what the UI reads
from dagster._serdes import serialize_value

from medallion_assets.definitions import build_definitions
from medallion_assets.resources.delta_lake import LakeResource
from medallion_assets.resources.postgres import Jdbc
from medallion_assets.settings import get_settings

SECRETS = {
    "MEDALLION_SOURCE_URL": "postgresql://etl:source-pw-123@db.example:5432/olist",
    "MEDALLION_AUDIT_URL": "postgresql://audit:audit-pw-456@db.example:5432/audit",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-789",
    "MEDALLION_ALERT_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/webhook-token-000",
}


def test_the_ui_sees_the_variable_names_never_the_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MEDALLION_LAKE_URI", "s3://lake/medallion")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "lake-user")
    snapshot = RepositorySnap.from_def(build_definitions(get_settings()).get_repository_def())
    shown = serialize_value(snapshot)
    for value in SECRETS.values():
        assert value not in shown
    resources = {resource.name: resource.configured_values for resource in snapshot.resources or ()}
    assert resources["source_db"]["database_url"].name == "MEDALLION_SOURCE_URL"
    assert resources["audit_db"]["database_url"].name == "MEDALLION_AUDIT_URL"
    assert resources["lakehouse"]["aws_secret_access_key"].name == "AWS_SECRET_ACCESS_KEY"
    assert resources["alert_webhook"]["url"].name == "MEDALLION_ALERT_WEBHOOK_URL"
    assert "s3://lake/medallion" in resources["lakehouse"]["root_uri"]  # not a secret: shown


def test_an_unset_field_takes_the_settings_value(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("MEDALLION_LAKE_URI", str(tmp_path / "from-settings"))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-env")
    assert LakeResource().lake().root == str(tmp_path / "from-settings")
    given = LakeResource(root_uri="s3://given/lake/", aws_secret_access_key="given").lake()
    assert given.root == "s3://given/lake"
    assert given.storage_options["AWS_SECRET_ACCESS_KEY"] == "given"
    assert LakeResource().lake().storage_options["AWS_SECRET_ACCESS_KEY"] == "from-env"


def test_jdbc_url_from_a_libpq_url_keeps_the_password_out_of_the_url() -> None:
    remote = Jdbc.of("postgresql://reader:s%40cret@db.example:6543/shop?sslmode=require")
    assert remote.url == "jdbc:postgresql://db.example:6543/shop?sslmode=require"
    assert remote.options["user"] == "reader" and remote.options["password"] == "s@cret"
    # The embedded server's Unix-socket URL: the same server on loopback TCP.
    local = Jdbc.of("postgresql://postgres:@/postgres?host=/tmp/pg&port=41234")
    assert local.url == "jdbc:postgresql://127.0.0.1:41234/postgres" and "password" not in local.options
