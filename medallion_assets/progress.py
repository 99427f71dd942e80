"""Progress of `medallion build`: a Dagster logger that shows each run as it goes.

On a terminal, one live line per run, rewritten as steps finish: steps done / total, partitions,
rows written, elapsed time, an estimate of the time left and the step running now; it stays on
screen when the run ends. Elsewhere (CI, a log file) plain lines: one per finished step and one
per run, so a log reads top to bottom.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any, TextIO

import dagster as dg


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


class RunProgress:
    """What one run has done so far, and how it is shown."""

    def __init__(self, run_id: str, label: str, steps: int, partitions: int, out: TextIO, live: bool):
        self.run_id, self.label, self.steps, self.partitions = run_id, label, steps, partitions
        self.out, self.live = out, live
        self.started = time.monotonic()
        self.done = 0
        self.rows = 0
        self.running: list[str] = []
        self.counted: set[tuple[str, str]] = set()
        self.lock = threading.Lock()  # a run's steps run side by side, each reporting from its thread

    def line(self, final: bool = False) -> str:
        elapsed = time.monotonic() - self.started
        # The steps left take as long as the steps done on average: crude, but it moves.
        left = ""
        if self.done and not final:
            left = f", ~{clock(elapsed / self.done * (self.steps - self.done))} left"
        partitions = f", {self.partitions:,} partitions" if self.partitions else ""
        now = f"  {', '.join(self.running)}" if self.running and not final else ""
        return (
            f"{self.label}: {self.done}/{self.steps} steps{partitions}, {self.rows:,} rows, "
            f"{clock(elapsed)}{left}{now}"
        )

    def show(self) -> None:
        if self.live:
            self.out.write("\r\x1b[K" + self.line()[:200])
            self.out.flush()

    def print(self, text: str) -> None:
        """A line that stays (a failure, a warning), above the live line."""
        self.out.write(("\r\x1b[K" if self.live else "") + text + "\n")
        self.show()

    def on_event(self, event: dg.DagsterEvent) -> None:
        with self.lock:
            self._count(event)

    def _count(self, event: dg.DagsterEvent) -> None:
        step = event.step_key or ""
        if event.is_step_start:
            self.running.append(step)
        elif event.is_step_success or event.is_step_failure or event.is_step_skipped:
            self.done += 1
            if step in self.running:
                self.running.remove(step)
            if event.is_step_failure:
                self.print(f"  FAILED {step}: {root_cause(event.event_specific_data.error)}")
            elif event.is_step_success and not self.live:
                self.print(f"  done {step} in {event.event_specific_data.duration_ms / 1000:.1f}s")
        elif event.is_step_materialization:
            materialization = event.step_materialization_data.materialization
            key = materialization.asset_key.to_user_string()
            rows = materialization.metadata.get("dagster/row_count")
            # A ranged step reports one materialization per partition, each with the range's count.
            if rows is not None and (step, key) not in self.counted:
                self.counted.add((step, key))
                self.rows += int(rows.value)
        elif event.is_job_success or event.is_job_failure:
            state = "done" if event.is_job_success else "FAILED"
            self.out.write(("\r\x1b[K" if self.live else "") + f"{self.line(final=True)} ({state})\n")
            self.out.flush()
            _RUNS.pop(self.run_id, None)
            return
        self.show()


class _ProgressHandler(logging.Handler):
    def __init__(self, progress: RunProgress):
        super().__init__()
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if event is not None:
            self.progress.on_event(event)
        elif record.levelno >= logging.WARNING:
            self.progress.print(f"  [{meta.get('step_key') or 'run'}] {meta.get('orig_message', '')}")


def root_cause(error: object) -> str:
    """The innermost error's first line: Dagster wraps the asset's own exception in its own."""
    while getattr(error, "cause", None) is not None:
        error = error.cause  # type: ignore[attr-defined]
    message = (getattr(error, "message", "") or "").strip()
    return message.splitlines()[0][:500] if message else ""


def progress_config(label: str, steps: int, partitions: int, quiet: bool = False) -> dict[str, Any]:
    """The run config that gives a run its progress line."""
    config = {"label": label, "steps": steps, "partitions": partitions, "quiet": quiet}
    return {"loggers": {"medallion_progress": {"config": config}}}


@dg.logger(
    config_schema={
        "label": dg.Field(str, default_value="run"),
        "steps": dg.Field(int, default_value=0),
        "partitions": dg.Field(int, default_value=0),
        "quiet": dg.Field(bool, default_value=False),
    },
    description="Progress of `medallion build`: a live line per run on a terminal, plain lines elsewhere.",
)
def medallion_progress(init_context: dg.InitLoggerContext) -> logging.Logger:
    config = init_context.logger_config
    logger = logging.Logger("medallion_progress", level=logging.DEBUG)  # Dagster logs events at DEBUG
    if not config["quiet"]:
        # Dagster builds the logger again for each step: a run's progress outlives these loggers.
        run_id = init_context.run_id or ""
        with _RUNS_LOCK:
            if run_id not in _RUNS:
                live = sys.stdout.isatty()
                _RUNS[run_id] = RunProgress(
                    run_id, config["label"], config["steps"], config["partitions"], sys.stdout, live
                )
        logger.addHandler(_ProgressHandler(_RUNS[run_id]))
    return logger


_RUNS: dict[str, RunProgress] = {}  # by run id, for the runs of this process
_RUNS_LOCK = threading.Lock()
