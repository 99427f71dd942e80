"""The `medallion` console script as a user runs it: embedded PostgreSQL, no settings at all."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from medallion_assets_tests.helpers import free_port_pair

MEDALLION = str(Path(sys.executable).with_name("medallion"))


KAFKA_PORT = str(free_port_pair())  # this module's embedded broker: stopped after each test


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    yield home
    run(home, "source", "stop")
    run(home, "kafka", "stop")
    assert not embedded_servers(home) and not embedded_servers(home, "java")


def run(home: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDALLION_", "AWS_"))}
    env["MEDALLION_HOME"] = str(home)
    env["MEDALLION_KAFKA_PORT"] = KAFKA_PORT
    env["MEDALLION_SPARK"] = "local"  # no Spark Connect server left behind by a test
    result = subprocess.run([MEDALLION, *args], env=env, capture_output=True, text=True, timeout=300)
    if ok:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_generate_load_advance_status(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "olist"
    generated = run(home, "generate", "--scale", "0.01", "--seed", "5", "--out", str(out))
    assert "orders" in generated.stdout and (out / "olist_orders_dataset.csv").is_file()

    loaded = run(home, "source", "load", "--csv-dir", str(out), "--as-of", "2017-08-01")
    assert "loaded the source as of 2017-08-01 00:00:00" in loaded.stdout
    assert (home / "postgres" / "PG_VERSION").is_file()  # the embedded server, under MEDALLION_HOME

    advanced = run(home, "source", "advance", "--days", "7")
    assert "advanced the source to 2017-08-08 00:00:00" in advanced.stdout
    # The web shop published the week's review events: one per review version of the week.
    versions = run(
        home,
        "source",
        "sql",
        "select count(*) as n from olist_replay.order_reviews"
        " where valid_from > '2017-08-01' and valid_from <= '2017-08-08'",
    )
    expected = int(versions.stdout.split()[-1])
    assert expected > 0 and f"published {expected:,} event(s) to olist.review_events" in advanced.stdout
    assert "event(s) to shop.clickstream" in advanced.stdout  # the week's shopping sessions
    produced = run(home, "events", "produce", "--rate", "500", "--duration", "2")
    seconds = float(
        re.search(r"produced 1,000 clickstream event\(s\) to shop.clickstream in ([\d.]+)s", produced.stdout)[
            1
        ]
    )
    assert 1.9 <= seconds < 4  # paced at 500 a second
    status = run(home, "source", "status")
    assert "source clock      2017-08-08 00:00:00" in status.stdout
    assert "order_reviews" in status.stdout

    counted = run(
        home, "source", "sql", "select count(*) as n from olist.orders where updated_at > '2017-08-01'"
    )
    assert int(counted.stdout.split()[-1]) > 0  # the week's changes
    read_only = run(home, "source", "sql", "delete from olist.orders", ok=False)
    assert read_only.returncode == 1 and "read-only transaction" in read_only.stderr

    again = run(home, "source", "load", "--csv-dir", str(out), ok=False)
    assert again.returncode == 1 and "pass --replace" in again.stderr
    assert "Traceback" not in again.stderr

    back = run(home, "source", "advance", "--to", "2017-01-01", ok=False)
    assert back.returncode == 1 and "cannot go back" in back.stderr

    assert "embedded PostgreSQL stopped" in run(home, "source", "stop").stdout
    assert not embedded_servers(home)
    assert "2017-08-08 00:00:00" in run(home, "source", "status").stdout  # started again on demand, data kept
    assert embedded_servers(home)


def embedded_servers(home: Path, name: str = "postgres") -> list[psutil.Process]:
    """This home's embedded PostgreSQL processes (or its Kafka broker: "java")."""
    return [
        p
        for p in psutil.process_iter(["name", "cmdline"])
        if p.info["name"] == name and any(str(home) in part for part in p.info["cmdline"] or [])
    ]


def test_bad_input_is_a_clear_error(home: Path, tmp_path: Path, sample_dir: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for csv_file in sample_dir.iterdir():
        (broken / csv_file.name).write_bytes(csv_file.read_bytes())
    orders = broken / "olist_orders_dataset.csv"
    lines = orders.read_text(encoding="utf-8").split("\n")
    lines[41] = lines[41].replace("delivered", "delivered,extra", 1)
    orders.write_text("\n".join(lines), encoding="utf-8")

    failed = run(home, "source", "load", "--csv-dir", str(broken), ok=False)
    assert failed.returncode == 1
    assert "olist_orders_dataset.csv:42: expected 8 fields, found 9" in failed.stderr
    assert "Traceback" not in failed.stderr

    skipped = run(home, "source", "load", "--csv-dir", str(broken), "--on-bad-rows", "skip")
    assert "4,070 rows   1 bad rows skipped" in skipped.stdout
    assert "olist_orders_dataset.csv:42" in skipped.stdout

    bad_time = run(home, "source", "advance", "--to", "next tuesday", ok=False)
    assert bad_time.returncode == 2 and "is not a time like" in bad_time.stderr


def test_source_url_password_never_printed(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDALLION_")}
    env.update(
        MEDALLION_HOME=str(tmp_path),
        MEDALLION_SOURCE_URL="postgresql://olist:hunter2@127.0.0.1:9/olist",
        MEDALLION_SPARK="local",
    )
    result = subprocess.run(
        [MEDALLION, "source", "status"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "cannot connect to the source database postgresql://olist:***@127.0.0.1:9/olist" in result.stderr
    assert "hunter2" not in result.stdout + result.stderr
