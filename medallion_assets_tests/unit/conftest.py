"""The unit tier starts no service: no PostgreSQL, no JVM. The session's autouse audit database is
replaced here by nothing, and asking for the session's server or Spark fails the test, so that a
test needing either is put in integration/ instead of slowing this tier down."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def audit_database() -> None:
    """Unit tests build nothing, so nothing is audited: no database (and no server) for it."""
    return None


@pytest.fixture(scope="session")
def pg_url() -> str:
    pytest.fail("a unit test asked for PostgreSQL (pg_url): it belongs in integration/")


@pytest.fixture(scope="session")
def spark_resource() -> None:
    pytest.fail("a unit test asked for Spark (spark_resource): it belongs in integration/")
