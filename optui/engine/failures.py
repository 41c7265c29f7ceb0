"""How a run that stopped on an exception is recorded and told to the user."""

from __future__ import annotations

from typing import Callable

from ..errors import OptuiError, StoreError
from ..store import Store
from .events import Event, RunFailed, RunFinished


def is_out_of_memory(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, MemoryError) or "RESOURCE_EXHAUSTED" in text or "Out of memory" in text


def describe(exc: BaseException) -> str:
    if is_out_of_memory(exc):
        return ("the device ran out of memory; train fewer replicates at once (engine.replicates_per_batch, "
                "e.g. --set engine.replicates_per_batch=4), or lower eval.slice where the workload has it; "
                "finished chunks are kept: resume with --resume")
    return str(exc) if isinstance(exc, OptuiError) else f"{type(exc).__name__}: {exc}"


def end_run(store: Store, run_id: str, wall: float, exc: BaseException, emit: Callable[[Event], None]) -> None:
    """Record the run as interrupted (KeyboardInterrupt) or failed with the reason, if the store can."""
    interrupted = isinstance(exc, KeyboardInterrupt)
    message = None if interrupted else describe(exc)
    try:
        store.finish_run(run_id, "interrupted" if interrupted else "failed", wall, message)
    except StoreError as store_exc:  # a full disk, say: the run then reads as interrupted
        message = f"{message or 'interrupted'}; the store could not record it either ({store_exc})"
    emit(RunFinished(run_id, "interrupted", wall) if interrupted else RunFailed(run_id, message))


def for_user(exc: BaseException, run_id: str) -> BaseException:
    """The exception to raise after end_run: a device failure becomes a message, not a traceback."""
    if isinstance(exc, (OptuiError, KeyboardInterrupt)) or not (
            is_out_of_memory(exc) or type(exc).__name__ in ("JaxRuntimeError", "XlaRuntimeError")):
        return exc
    return OptuiError(f"run {run_id} failed: {describe(exc)}")
