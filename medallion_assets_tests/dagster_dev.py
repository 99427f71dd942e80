"""`dagster dev` (webserver + daemon) on loopback for the tests that need the real thing: start it
in a process group of its own, wait until its code location has loaded, stop the whole group."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from medallion_assets.resources.embedded import default_stop_signals
from medallion_assets_tests.helpers import free_port

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STARTUP_TIMEOUT = 120.0  # the code server imports pyspark, dagster and every layer on a slow machine
STOP_GRACE = 20.0


def graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["data"]


LOCATIONS = """{ workspaceOrError { ... on Workspace { locationEntries {
    name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def wait_until_ready(url: str, server: subprocess.Popen, log: Path) -> None:
    """The webserver answers and the code location has loaded (or failed to: then fail now)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"dagster dev exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError):
            entries = graphql(url, LOCATIONS)["workspaceOrError"]["locationEntries"]
            if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
                errors = [e["locationOrLoadError"] for e in entries]
                if any(error["__typename"] == "PythonError" for error in errors):
                    pytest.fail(f"the code location failed to load: {errors}")
                return
        time.sleep(1)
    pytest.fail(f"dagster dev was not ready within {STARTUP_TIMEOUT:.0f} s:\n{log.read_text()[-3000:]}")


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def describe(proc: psutil.Process) -> str:
    """A process's command line, or what is left of it (killed above, it may be a zombie by now)."""
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return f"pid {proc.pid} (gone)"


def group_processes(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter():
        with contextlib.suppress(OSError, psutil.Error):
            if os.getpgid(proc.pid) == pgid and alive(proc):
                members.append(proc)
    return members


def stop_group(server: subprocess.Popen) -> None:
    """SIGINT to the whole group (dagster dev's clean shutdown), SIGKILL what is left after a grace."""
    pgid = server.pid  # a new session: the group is dagster dev and everything it started
    tree: list[psutil.Process] = []
    with contextlib.suppress(psutil.Error):
        tree = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(STOP_GRACE)
    deadline = time.monotonic() + 5  # children may outlive the parent by a moment
    while group_processes(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if leftover := group_processes(pgid):
        print(f"\ndagster dev left {len(leftover)} process(es) after SIGINT: killing its group")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    if server.poll() is None:
        server.wait(10)
    # Anything started under dagster dev, whatever group it moved to, must be gone.
    survivors = [proc for proc in tree if alive(proc)]
    for proc in survivors:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    assert not survivors, f"processes outlived dagster dev: {[describe(p) for p in survivors]}"


@contextlib.contextmanager
def dagster_dev(env: dict[str, str], log: Path) -> Iterator[str]:
    """The UI's URL while `dagster dev -w workspace.yaml` runs with this environment; always stopped."""
    port = free_port()
    with log.open("wb") as out:
        # default_stop_signals: a pytest started in the background ignores SIGINT (and SIGTERM after
        # a Dagster run), and so would its children, so dagster dev could not shut down cleanly. A
        # new session makes its own group.
        server = subprocess.Popen(
            [
                *(str(BIN / "dagster"), "dev"),
                *("-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)),
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=default_stop_signals,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(url, server, log)
        yield url
    finally:
        stop_group(server)
