"""What the embedded servers (the Spark Connect server, the Kafka broker) share: they run under
$MEDALLION_HOME, outlive the command that started them, and are started once however many
processes need them at the same moment."""

from __future__ import annotations

import fcntl
import signal
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


def free_port() -> int:
    """A loopback port nothing listens on (for a server started now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port: int) -> bool:
    """Whether something accepts connections on this loopback port."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def default_stop_signals() -> None:
    """`preexec_fn` of a server's process: SIGTERM and SIGINT back to their default dispositions.

    A process started from a background job (`medallion build &`, a CI script) inherits SIGINT
    ignored, and Dagster maps SIGTERM to SIGINT's handler at each in-process run
    (its `setup_interrupt_handlers`): from then on SIGTERM is ignored too, and so by every process it
    starts. A JVM started with SIGTERM ignored installs no handler for it, so a stop found the
    server deaf to its clean shutdown and killed it after the grace (the broker: 30.2 s, then
    SIGKILL, where 0.2 s is normal; ~30 s of the test suite's teardowns, three times a run)."""
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, signal.SIG_DFL)
