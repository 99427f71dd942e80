"""What the embedded servers (the Spark Connect server, the Kafka broker) share: they run under
$MEDALLION_HOME, outlive the command that started them, and are started once however many
processes need them at the same moment."""

from __future__ import annotations

import fcntl
import socket
from collections.abc import Callable
from pathlib import Path


def start_once(home: Path, running: Callable[[], bool], start: Callable[[], None]) -> None:
    """Start the server unless it runs. Processes that need it at the same moment (two runs, two
    test workers) take turns on a lock in its home: the first starts it, the others find it up."""
    if running():
        return
    home.mkdir(parents=True, exist_ok=True)
    with (home / "start.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not running():
            start()


def listening(port: int) -> bool:
    """Whether something accepts connections on this loopback port."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
