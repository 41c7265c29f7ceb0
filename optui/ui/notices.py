"""What the status line and the notices say about a run, from its request and its events."""

from __future__ import annotations

from typing import Any

from ..service.events import ChunkDone, RunFailed, RunFinished, RunStarted, UnitStarted
from ..status import Status


def began(request: Any, label: str) -> str:
    """The status line as a run starts (its first chunk compiles: seconds with nothing to show)."""
    name = request.study.name if request.study is not None else ""
    return {"replicates": f"running {name}: building and compiling…",
            "search": f"searching {name}/{request.space}: building and compiling…",
            "resume": f"resuming {label}…",
            "confirm": f"confirming the best {request.top} trials with {request.count} replicates…"}[request.kind]


def activity(e: Any, search: bool, stopping: bool) -> str | None:
    """The status line after an engine event, or None to leave it."""
    doing = "searching" if search else "running"
    if isinstance(e, RunStarted):
        return f"{doing} {e.study} on {e.device} ({e.strategy})"
    if isinstance(e, UnitStarted):
        return f"compiling {e.unit} ({e.replicates} replicates)…"
    if isinstance(e, ChunkDone):
        return f"{doing}: {e.unit} {e.step_end}/{e.total_steps} steps{' (stopping)' if stopping else ''}"
    if isinstance(e, RunFailed):
        return "failed"
    return None


def finished(e: RunFinished, search: bool, label: str, took: str, preset: str) -> tuple[str, str, int]:
    """(text, severity, timeout) of the notice at a run's end; how to resume a stopped one."""
    text = f"{'search' if search else 'run'} {label} {e.status}{took}"
    if e.status in (Status.INTERRUPTED, Status.FAILED):
        text += (f"\nfinished chunks are kept. Resume: r on it in Runs (5), or\n"
                 f"optui run {preset} --headless --resume {e.run_id}")
    done = e.status == Status.DONE
    return text, "information" if done else "warning", 5 if done else 12
