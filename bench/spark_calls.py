"""Where a build's Spark time goes: every Spark Connect call (or, in a local session, every call
into the JVM) timed, charged to the line of ours that made it (not a test: it prints figures).

    .venv/bin/python bench/benchmark.py --scale 1 --keep        # prints its work folder
    MEDALLION_HOME=<work>/home DAGSTER_HOME=<work>/dagster \\
        .venv/bin/python bench/spark_calls.py --start 2018-08-29 --end 2018-08-29 --repeat 2

Builds the selection (default: every asset) over the window against the lake, source and instance
the environment names, `--repeat` times (the first pays the server's start and warm-up), and
prints the last build's calls: total seconds, count, the call's kind (exec: a query run, analyze:
a plan resolved, config; in a local session the JVM method's name) and the two innermost frames of
medallion_assets that made it. Step threads run side by side, so the calls' seconds add up to more
than the wall time. With MEDALLION_SPARK=local (the test suite's topology) the build runs in a
classic session and every Py4J call is timed instead: a Spark action is one call there, its query
planning included (a check's profile is mostly planning, see the README's Benchmark).
"""

from __future__ import annotations

import argparse
import datetime as dt
import threading
import time
import traceback
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import py4j.java_gateway
from pyspark.sql.connect.client import core

import medallion_assets
from medallion_assets.build import build
from medallion_assets.definitions import code_location
from medallion_assets.settings import get_settings

PACKAGE = Path(medallion_assets.__file__).parent
calls: defaultdict[str, list[float]] = defaultdict(lambda: [0, 0.0])
lock = threading.Lock()


def caller() -> str:
    """The two innermost frames of ours on the stack: the line that made the call, and its caller."""
    ours = [frame for frame in traceback.extract_stack() if Path(frame.filename).is_relative_to(PACKAGE)]
    named = [f"{Path(f.filename).relative_to(PACKAGE)}:{f.lineno} {f.name}" for f in ours[-2:]]
    return " <- ".join(reversed(named)) or "?"


def timed(kind: str, method: Callable[..., Any]) -> Callable[..., Any]:
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        label, started = f"{kind} {caller()}", time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            with lock:
                calls[label][0] += 1
                calls[label][1] += time.perf_counter() - started

    return call


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--select", default=None, help="an asset selection (default: every asset)")
    parser.add_argument("--start", type=dt.date.fromisoformat, default=None)
    parser.add_argument("--end", type=dt.date.fromisoformat, default=None)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    settings = get_settings()
    if settings.spark_mode == "local" and not settings.spark_remote:
        member = py4j.java_gateway.JavaMember
        call_jvm = member.__call__
        member.__call__ = lambda self, *args: timed(self.name, call_jvm)(self, *args)  # type: ignore[method-assign]
    else:
        client = core.SparkConnectClient
        for kind, name in (("exec", "_execute_and_fetch"), ("analyze", "_analyze"), ("config", "config")):
            setattr(client, name, timed(kind, getattr(client, name)))
    for attempt in range(1, args.repeat + 1):
        calls.clear()
        started = time.perf_counter()
        summary = build(
            code_location(), args.select, args.start, args.end, echo=lambda _: None, show_progress=False
        )
        print(f"build {attempt}: {time.perf_counter() - started:.1f} s, success {summary.success}")
    total = sum(seconds for _, seconds in calls.values())
    print(f"Spark calls of the last build: {total:.1f} s in {sum(n for n, _ in calls.values()):.0f}")
    for label, (count, seconds) in sorted(calls.items(), key=lambda item: -item[1][1])[: args.top]:
        print(f"{seconds:8.2f} s {count:5.0f}  {label}")


if __name__ == "__main__":
    main()
