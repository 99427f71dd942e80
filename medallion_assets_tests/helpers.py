"""Plain helpers that tests of several files (and tiers) import; the fixtures stay in conftest.py.

No test imports conftest.py: what a test module imports by name lives here.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import adbc_driver_postgresql.dbapi as adbc_dbapi
import boto3
import dagster as dg
import pyarrow as pa

from medallion_assets.build import BuildSummary
from medallion_assets.gold.history import UNKNOWN_KEY
from medallion_assets.resources.embedded import free_port  # the tests import it from here
from medallion_assets.resources.instance import instance_yaml
from medallion_assets.resources.warehouse import conform
from medallion_assets.settings import get_settings
from medallion_assets.specs import GOLD_REPORTS

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO.parent / "shared" / "olist-sample"


# ------------------------------------------------------------------- instances, databases, builds


def booked_instance(home: Path) -> dg.DagsterInstance:
    """A Dagster instance on disk as the platform writes it (SQLite, our batched event log: ~1 ms
    per partition booked; the in-memory ephemeral instance takes 5-9 ms)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(instance_yaml(get_settings(), home))
    return dg.DagsterInstance.from_config(str(home))


def scratch_database(pg_url: str, name: str, fresh: bool = True) -> str:
    """A database of its own on the session's server (dropped and created again when `fresh`), so
    that a test's source or instance never touches another test's."""
    with adbc_dbapi.connect(pg_url, autocommit=True) as conn, conn.cursor() as cur:
        if fresh:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        cur.execute("SELECT count(*) FROM pg_database WHERE datname = $1", (name,))
        if cur.fetchone()[0] == 0:
            cur.execute(f"CREATE DATABASE {name}")
    base, _, query = pg_url.partition("?")
    return base.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")


@dataclass(frozen=True)
class HandmadeBuild:
    """The session's build of the hand-made shop through every layer (conftest's `handmade_build`)."""

    lake: Path
    instance: dg.DagsterInstance
    summary: BuildSummary
    home: Path  # its MEDALLION_HOME: the DuckDB warehouse file is there


# ----------------------------------------------------------------------------------- run alerts

WEBHOOK_SECRET = "s3cr3t-token"


class Webhook:
    """An HTTP server on 127.0.0.1 that records the JSON bodies posted to it."""

    def __init__(self, status: int = 204) -> None:
        received: list[dict] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                received.append({"path": self.path, "body": json.loads(self.rfile.read(length))})
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/webhooks/1/{WEBHOOK_SECRET}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ----------------------------------------------------------------------------------------- gold


def assert_scd2_invariants(versions: list[dict], member: str, key: str) -> None:
    """Per member: versions in time order touch end to start (no gap, no overlap), one is current."""
    by_member: dict[str, list[dict]] = {}
    for row in versions:
        if row[key] != UNKNOWN_KEY:
            by_member.setdefault(row[member], []).append(row)
    assert by_member
    for rows in by_member.values():
        rows.sort(key=lambda r: r["valid_from"])
        for earlier, later in itertools.pairwise(rows):
            assert earlier["valid_to"] == later["valid_from"] and earlier["is_current"] is False
        assert rows[-1]["valid_to"] is None and rows[-1]["is_current"] is True
    assert len({r[key] for r in versions}) == len(versions)  # surrogate keys are unique
    unknown = [r for r in versions if r[key] == UNKNOWN_KEY]
    assert len(unknown) == 1 and unknown[0][member] is None


# ------------------------------------------------------------------------------------ warehouse

CATEGORIES = GOLD_REPORTS["daily_category_report"]  # partitioned by order date, several rows a day
DAY = dt.date(2018, 3, 1)


def day(n: int) -> dt.date:
    return DAY + dt.timedelta(days=n)


def category_rows(days: dict[int, list[str]], revenue: str = "10.00") -> pa.Table:
    """daily_category_report rows: for each day, one row per category, with exact money."""
    rows = [
        {
            "order_date": day(n),
            "product_category": category,
            "items": 1,
            "orders": 1,
            "total_revenue": Decimal(revenue) + n,
            "avg_item_revenue": Decimal(revenue) + n,
            "median_item_revenue": Decimal(revenue) + n,
        }
        for n, categories in days.items()
        for category in categories
    ]
    return conform(pa.Table.from_pylist(rows), CATEGORIES)


def free_port_pair() -> int:
    """A loopback port P with P + 1 free too, below the kernel's ephemeral range (32768+), where
    clients' sockets (a JVM's, a driver's) could take P + 1 before a server binds it."""
    for port in random.sample(range(20000, 32000, 2), 200):
        with socket.socket() as first, socket.socket() as second:
            if first.connect_ex(("127.0.0.1", port)) and second.connect_ex(("127.0.0.1", port + 1)):
                return port
    raise RuntimeError("no two free loopback ports next to each other")


@contextmanager
def s3_server(secret: str, bucket: str = "lake") -> Iterator[str]:
    """A real S3 HTTP endpoint on loopback (moto's server, in its own process like MinIO: delta-rs
    holds this process's GIL while it waits for some S3 answers) with one bucket; yields its URL.
    The access key is "test", the region us-east-1."""
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, "moto_server did not start"
            time.sleep(0.1)
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key=secret,
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket=bucket)
    try:
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=30)
