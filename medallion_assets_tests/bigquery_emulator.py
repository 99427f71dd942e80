"""The BigQuery emulator (`bqemulator`, PyPI) on loopback, for the tests and the benchmark.

It lives in a virtualenv of its own (`make emulator`, part of `make install`): it pins duckdb 1.5.5
and registers a pytest plugin that imports testcontainers. Its DuckDB loads the spatial extension
from $HOME/.duckdb, so the emulator runs with HOME inside its virtualenv, where `make emulator`
put the extension: nothing lands in the user's home.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from medallion_assets_tests.dagster_dev import REPO, stop_group
from medallion_assets_tests.helpers import free_port

EMULATOR_VENV = Path(os.environ.get("MEDALLION_BQEMULATOR_VENV", REPO / ".venv-bqemulator"))
PROJECT = "medallion-test"
STARTUP_TIMEOUT = 60.0


class EmulatorError(RuntimeError):
    pass


@contextlib.contextmanager
def bigquery_emulator(log: Path) -> Iterator[str]:
    """The emulator's API endpoint (http://127.0.0.1:<port>) while it runs; always stopped."""
    binary = EMULATOR_VENV / "bin" / "bqemulator"
    if not binary.exists():
        raise EmulatorError(f"no BigQuery emulator at {binary}: run `make emulator` (`make install` does)")
    port = free_port()
    env = {**os.environ, "HOME": str(EMULATOR_VENV / "home"), "BQEMU_ENABLE_FORMAT_EXTENSIONS": "false"}
    with log.open("wb") as out:
        server = subprocess.Popen(
            [
                *(str(binary), "start", "--project", PROJECT, "--ephemeral"),
                *("--rest-host", "127.0.0.1", "--rest-port", str(port), "--grpc-port", "0"),
                *("--log-level", "warning", "--log-format", "console"),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if server.poll() is not None:
                raise EmulatorError(f"bqemulator exited with {server.returncode}:\n{log.read_text()[-3000:]}")
            with (
                contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError),
                urllib.request.urlopen(f"{endpoint}/readyz", timeout=2) as response,
            ):
                if response.status == 200:
                    break
            if time.monotonic() > deadline:
                raise EmulatorError(
                    f"bqemulator not ready in {STARTUP_TIMEOUT:.0f} s:\n{log.read_text()[-3000:]}"
                )
            time.sleep(0.2)
        yield endpoint
    finally:
        stop_group(server)
