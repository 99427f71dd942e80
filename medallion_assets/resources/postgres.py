"""Where the source PostgreSQL comes from: `MEDALLION_SOURCE_URL`, or an embedded server.

The embedded server (the `pgserver` package: PostgreSQL 16 binaries that also start as root) lives
under `$MEDALLION_HOME/postgres` and is started on first use by whichever process needs it; every
caller then goes through the same URL-based code path as for an external server.
"""

from __future__ import annotations

import atexit
import re
import signal
import socket
import urllib.parse
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import adbc_driver_postgresql.dbapi as adbc_dbapi
import dagster as dg
import psutil
from pydantic import Field

from medallion_assets.settings import Settings, get_settings


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
    # From the pid file, not pgserver's handle: the handle keeps what it saw when it started the server.
    info = pgserver.utils.PostmasterInfo.read_from_pgdata(data_dir)
    if not info.hostname:
        # pgserver listens on a Unix socket only; Spark reads the source over JDBC, which needs TCP:
        # the server moves to a free loopback port once (it keeps it while it runs).
        port = _free_loopback_port()
        pgserver.pg_ctl(
            ["-w", "-o", f'-h 127.0.0.1 -p {port} -k "{info.socket_dir}"', "-l", str(server.log), "restart"],
            pgdata=data_dir,
            user=server.system_user,
            timeout=60,
        )
        info = pgserver.utils.PostmasterInfo.read_from_pgdata(data_dir)
    return f"postgresql://postgres:@/postgres?host={info.socket_dir}&port={info.port}"


def _free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop_embedded_server(settings: Settings, timeout: float = 30) -> bool:
    """Stop the embedded server if it runs (fast shutdown); True if one was stopped.

    Done by signal rather than through pgserver's handle counting, which only stops a server when
    the last process that used it lets go, and never one started with cleanup_mode=None.
    """
    data_dir = settings.embedded_postgres_dir.resolve()
    # Forget pgserver's handle in this process, so that a later call starts the server again.
    handle = _pgserver().PostgresServer._instances.pop(data_dir, None)
    if handle is not None:
        atexit.unregister(handle._cleanup)
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
        postmaster = psutil.Process(pid)
        if postmaster.name() != "postgres":
            return False  # a stale pid file whose number now belongs to another process
        postmaster.send_signal(signal.SIGINT)  # fast shutdown: end sessions, checkpoint, exit
        postmaster.wait(timeout)
    except (FileNotFoundError, ValueError, IndexError, psutil.NoSuchProcess):
        return False
    return True


@dataclass(frozen=True)
class Jdbc:
    """How Spark reaches a PostgreSQL database (its JDBC reader): the URL and the connection options.
    The password is an option, never in the URL; Spark redacts options named password in plans."""

    url: str
    options: dict[str, str]

    @classmethod
    def of(cls, url: str) -> Jdbc:
        """From a libpq URL. A Unix-socket URL (`?host=/dir&port=N`, the embedded server's) names a
        server on this machine, which JDBC reaches on loopback (the embedded server listens there)."""
        parts = urllib.parse.urlsplit(url)
        query = dict(urllib.parse.parse_qsl(parts.query))
        host = parts.hostname or query.get("host", "")
        if not host or host.startswith("/"):
            host = "127.0.0.1"
        port = parts.port or int(query.get("port", 5432))
        database = parts.path.lstrip("/") or "postgres"
        extra = {k: v for k, v in query.items() if k in {"sslmode", "sslrootcert", "options"}}
        options = {
            "user": urllib.parse.unquote(parts.username or "postgres"),
            "driver": "org.postgresql.Driver",
        }
        if parts.password:
            options["password"] = urllib.parse.unquote(parts.password)
        suffix = f"?{urllib.parse.urlencode(extra)}" if extra else ""
        return cls(f"jdbc:postgresql://{host}:{port}/{database}{suffix}", options)


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


class SourceDatabase(dg.ConfigurableResource):
    """The source system's PostgreSQL, only read. Its URL (maybe with a password) comes from the
    environment: the code location sets it as `dg.EnvVar`, so the UI shows the variable's name."""

    database_url: str | None = Field(
        None, description="MEDALLION_SOURCE_URL (unset: the embedded server under MEDALLION_HOME)."
    )

    def url(self) -> str:
        return self.database_url or source_database_url(get_settings())

    def display_url(self) -> str:
        return redact(self.url())


def audit_database_url(settings: Settings) -> str:
    """MEDALLION_AUDIT_URL, else the embedded server; never the source system we only read."""
    if settings.audit_url is not None:
        return settings.audit_url.get_secret_value()
    return embedded_server_url(settings)


class AuditDatabase(dg.ConfigurableResource):
    """Where the audit table `audit.run_logs` lives (written by the audit sensor and the build)."""

    database_url: str | None = Field(
        None, description="MEDALLION_AUDIT_URL (unset: the embedded server under MEDALLION_HOME)."
    )

    def url(self) -> str:
        return self.database_url or audit_database_url(get_settings())
