"""Where the source PostgreSQL comes from: `MEDALLION_SOURCE_URL`, or an embedded server.

The embedded server (the `pgserver` package: PostgreSQL 16 binaries that also start as root) lives
under `$MEDALLION_HOME/postgres` and is started on first use by whichever process needs it; every
caller then goes through the same URL-based code path as for an external server.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import adbc_driver_postgresql.dbapi as adbc_dbapi

from medallion_assets.settings import Settings


class SourceUnavailableError(RuntimeError):
    """The source database cannot be reached; the message never contains a password."""


def source_database_url(settings: Settings) -> str:
    if settings.source_url is not None:
        return settings.source_url.get_secret_value()
    return embedded_server_url(settings)


def _pgserver():  # imported lazily: only the embedded path needs it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns that XDG_RUNTIME_DIR is unset in containers
        import pgserver
    return pgserver


def embedded_server_url(settings: Settings) -> str:
    pgserver = _pgserver()
    data_dir = settings.embedded_postgres_dir
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: the server outlives this process, so the CLI, `dagster dev` and test
    # processes share one server instead of each paying a start (it is stopped by `stop_embedded`).
    server = pgserver.get_server(data_dir, cleanup_mode=None)
    return server.get_uri()


def stop_embedded_server(settings: Settings) -> bool:
    """Stop the embedded server if it runs; True if one was stopped."""
    pgserver = _pgserver()

    data_dir = settings.embedded_postgres_dir
    if not (data_dir / "postmaster.pid").exists():
        return False
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    server.cleanup()
    return True


def redact(url: str) -> str:
    """The URL with any password replaced, safe for logs and metadata."""
    url = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
    return re.sub(r"(password=)[^&\s]*", r"\1***", url)


@contextmanager
def connect(url: str) -> Iterator[adbc_dbapi.Connection]:
    """An ADBC connection (Arrow in and out, COPY for bulk loads) in one transaction.

    Committed on success, rolled back on error; connection failures become a
    SourceUnavailableError whose message names the server without its password.
    """
    try:
        conn = adbc_dbapi.connect(url)
    except adbc_dbapi.Error as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SourceUnavailableError(
            f"cannot connect to the source database {redact(url)}: {redact(first_line)}"
        ) from None
    try:
        yield conn
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()
