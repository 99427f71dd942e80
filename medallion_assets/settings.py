"""The one typed settings object: every environment variable the platform reads is declared here.

Settings are read when `get_settings()` is called, never at import time, so tests and the CLI can
change the environment without reloading modules.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPOSITORY = Path(__file__).resolve().parent.parent  # the checkout (the package is installed editable)


class Settings(BaseSettings):
    # The environment is read only under the documented variable names (the aliases); a field
    # name such as `home` must never match an unrelated variable such as HOME.
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    home: Path = Field(Path(".medallion"), validation_alias="MEDALLION_HOME")
    lake_uri: str = Field("", validation_alias="MEDALLION_LAKE_URI")
    aws_endpoint_url: str | None = Field(None, validation_alias="AWS_ENDPOINT_URL")
    aws_access_key_id: str | None = Field(None, validation_alias="AWS_ACCESS_KEY_ID")
    aws_secret_access_key: SecretStr | None = Field(None, validation_alias="AWS_SECRET_ACCESS_KEY")
    aws_region: str | None = Field(None, validation_alias="AWS_REGION")
    # A URL may carry a password: kept secret so it never lands in a log or a repr.
    source_url: SecretStr | None = Field(None, validation_alias="MEDALLION_SOURCE_URL")
    # The audit log's PostgreSQL (unset: the embedded server); a URL, so secret like the source's.
    audit_url: SecretStr | None = Field(None, validation_alias="MEDALLION_AUDIT_URL")
    spark_remote: str | None = Field(None, validation_alias="SPARK_REMOTE")
    # Without SPARK_REMOTE: `server`, the embedded Spark Connect server (started on first use, kept
    # between commands), or `local`, a classic Spark session inside each process (tests).
    spark_mode: Literal["server", "local"] = Field("server", validation_alias="MEDALLION_SPARK")
    # How Spark evaluates expressions: `compiled` (Spark's default: Java code generated and compiled
    # for each query shape) or `interpreted` (no code generated), which can be faster where tables
    # are tiny: compiling a query's code then costs more than running it (README: Spark, Delta Lake
    # and the jars). The test suite runs interpreted.
    spark_codegen: Literal["compiled", "interpreted"] = Field(
        "compiled", validation_alias="MEDALLION_SPARK_CODEGEN"
    )
    # The JIT compilers of the Spark JVMs we start (the embedded server, a local session): `full`
    # (Java's default: the quick tier, then the optimizing one for hot code) or `quick` (the quick
    # tier only), faster for a JVM that makes one small build and stops: on two cores the optimizing
    # compiler's CPU is the build's. `medallion quickstart` uses `quick` unless this is set.
    spark_jit: Literal["full", "quick"] = Field("full", validation_alias="MEDALLION_SPARK_JIT")
    # The jars a local Spark session loads beside the wheel's (Delta Lake, S3A, the JDBC driver):
    # `make jars` puts them in jars/lib/ of the checkout (jars/pom.xml pins them).
    spark_jars_dir: Path = Field(REPOSITORY / "jars" / "lib", validation_alias="MEDALLION_SPARK_JARS")
    # The heap of the Spark JVMs we start (the embedded server, a local session), e.g. `4g`; unset:
    # a third of the machine's memory, 2-16 GiB. A running server keeps the heap it started with.
    spark_driver_memory: str | None = Field(None, validation_alias="MEDALLION_SPARK_DRIVER_MEMORY")
    # The loopback port of the embedded Spark Connect server (`medallion spark start`).
    spark_server_port: int = Field(15002, validation_alias="MEDALLION_SPARK_PORT")
    # Kafka: unset, the embedded broker (started on first use, kept between commands) on this
    # loopback port (and the next one for its controller), from the jars `make kafka` puts in
    # kafka/lib/. Set, any other cluster, reached with the security settings below.
    kafka_bootstrap: str | None = Field(None, validation_alias="MEDALLION_KAFKA_BOOTSTRAP")
    kafka_port: int = Field(19092, validation_alias="MEDALLION_KAFKA_PORT")
    kafka_jars_dir: Path = Field(REPOSITORY / "kafka" / "lib", validation_alias="MEDALLION_KAFKA_JARS")
    # PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL; SASL's mechanism (PLAIN, SCRAM-SHA-256/512) and
    # credentials; a CA file for TLS. The password is a secret: never logged.
    kafka_security_protocol: str = Field("PLAINTEXT", validation_alias="MEDALLION_KAFKA_SECURITY_PROTOCOL")
    kafka_sasl_mechanism: str | None = Field(None, validation_alias="MEDALLION_KAFKA_SASL_MECHANISM")
    kafka_sasl_username: str | None = Field(None, validation_alias="MEDALLION_KAFKA_SASL_USERNAME")
    kafka_sasl_password: SecretStr | None = Field(None, validation_alias="MEDALLION_KAFKA_SASL_PASSWORD")
    kafka_ssl_ca_location: str | None = Field(None, validation_alias="MEDALLION_KAFKA_SSL_CA_LOCATION")
    warehouse: Literal["duckdb", "bigquery"] = Field("duckdb", validation_alias="MEDALLION_WAREHOUSE")
    # The DuckDB warehouse file (unset: $MEDALLION_HOME/warehouse.duckdb).
    duckdb_path: Path | None = Field(None, validation_alias="MEDALLION_DUCKDB_PATH")
    # BigQuery: the project is required when MEDALLION_WAREHOUSE=bigquery. Credentials are Google's
    # application default (GOOGLE_APPLICATION_CREDENTIALS, gcloud, the metadata server) unless a
    # service account key is given as JSON text; an API endpoint points the client at an emulator.
    bigquery_project: str | None = Field(None, validation_alias="MEDALLION_BIGQUERY_PROJECT")
    bigquery_dataset: str = Field("medallion_gold", validation_alias="MEDALLION_BIGQUERY_DATASET")
    # The interface views of schema `analytics` (specs/interface.py), beside the tables' dataset.
    bigquery_analytics_dataset: str = Field(
        "medallion_analytics", validation_alias="MEDALLION_BIGQUERY_ANALYTICS_DATASET"
    )
    bigquery_location: str = Field("US", validation_alias="MEDALLION_BIGQUERY_LOCATION")
    bigquery_credentials_json: SecretStr | None = Field(
        None, validation_alias="MEDALLION_BIGQUERY_CREDENTIALS_JSON"
    )
    bigquery_endpoint: str | None = Field(None, validation_alias="MEDALLION_BIGQUERY_ENDPOINT")
    start_date: dt.date = Field(dt.date(2016, 9, 1), validation_alias="MEDALLION_START_DATE")
    # Run alerts: a Slack or Discord incoming-webhook URL (it embeds a token: secret).
    alert_webhook_url: SecretStr | None = Field(None, validation_alias="MEDALLION_ALERT_WEBHOOK_URL")
    alert_on_success: bool = Field(False, validation_alias="MEDALLION_ALERT_ON_SUCCESS")
    # The Dagster instance in PostgreSQL (postgresql+psycopg2://...; unset: SQLite in DAGSTER_HOME).
    dagster_pg_url: SecretStr | None = Field(None, validation_alias="DAGSTER_PG_URL")
    # How often the source sensor looks for new rows (the propagation sensor looks twice as often).
    poll_seconds: int = Field(30, ge=1, validation_alias="MEDALLION_POLL_SECONDS")
    # Start the source sensor, the propagation sensor and the catch-up schedule switched on (a
    # deployment's choice; by default a person turns them on in the UI or with `dagster sensor start`).
    automation: bool = Field(False, validation_alias="MEDALLION_AUTOMATION")
    # VACUUM (the weekly lake_maintenance job) keeps the files of this many hours of history: time
    # travel reaches that far back. Never below Delta's safety minimum of 168 h (7 days): the job
    # refuses a smaller value (maintenance/operations.py).
    vacuum_retention_hours: int = Field(168, validation_alias="MEDALLION_VACUUM_RETENTION_HOURS")
    # Where a person opens the Dagster UI: the alert links to the run there.
    ui_url: str = Field("http://127.0.0.1:3000", validation_alias="MEDALLION_UI_URL")

    @model_validator(mode="after")
    def _resolve_paths(self) -> Settings:
        home = self.home.expanduser().absolute()
        object.__setattr__(self, "home", home)
        if not self.lake_uri:
            object.__setattr__(self, "lake_uri", str(home / "lake"))
        duckdb_path = (
            self.duckdb_path.expanduser().absolute() if self.duckdb_path else home / "warehouse.duckdb"
        )
        object.__setattr__(self, "duckdb_path", duckdb_path)
        return self

    @property
    def embedded_postgres_dir(self) -> Path:
        return self.home / "postgres"


def get_settings(**overrides: object) -> Settings:
    """Read the environment now; explicit overrides (by field name) win."""
    fields = Settings.model_fields
    return Settings(**{fields[name].validation_alias: value for name, value in overrides.items()})
