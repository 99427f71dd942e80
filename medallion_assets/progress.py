"""A Dagster logger that prints concise progress lines (used by `medallion build`)."""

from __future__ import annotations

import logging

import dagster as dg


class _ProgressHandler(logging.Handler):
    """One line per finished step, materialization or check, instead of Dagster's full event log."""

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if event is None:
            if record.levelno >= logging.WARNING:
                print(f"  [{meta.get('step_key') or 'run'}] {meta.get('orig_message', record.getMessage())}")
            return
        if event.is_step_success:
            print(
                f"  done   {event.step_key} in {event.event_specific_data.duration_ms / 1000:.1f}s",
                flush=True,
            )
        elif event.is_step_failure:
            print(f"  FAILED {event.step_key}: {root_cause(event.event_specific_data.error)}", flush=True)
        elif event.is_step_start:
            print(f"  start  {event.step_key}", flush=True)


def root_cause(error: object) -> str:
    """The innermost error's first line: Dagster wraps the asset's own exception in its own."""
    while getattr(error, "cause", None) is not None:
        error = error.cause  # type: ignore[attr-defined]
    message = (getattr(error, "message", "") or "").strip()
    return message.splitlines()[0][:500] if message else ""


@dg.logger(description="Concise progress lines for `medallion build`.")
def medallion_progress(_init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = logging.Logger("medallion_progress", level=logging.DEBUG)  # Dagster logs events at DEBUG
    logger.addHandler(_ProgressHandler())
    return logger
