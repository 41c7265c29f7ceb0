"""How an exception that stopped training is described to the user."""

from __future__ import annotations

from ..errors import OptuiError


def is_out_of_memory(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, MemoryError) or "RESOURCE_EXHAUSTED" in text or "Out of memory" in text


def describe(exc: BaseException) -> str:
    """One line for the user: a device out of memory says which settings to lower."""
    if is_out_of_memory(exc):
        return ("the device ran out of memory; train fewer replicates at once (engine.replicates_per_batch, "
                "e.g. --set engine.replicates_per_batch=4), or lower eval.slice where the workload has it; "
                "finished chunks are kept: resume with --resume")
    return str(exc) if isinstance(exc, OptuiError) else f"{type(exc).__name__}: {exc}"


def for_user(exc: BaseException, run_id: str) -> BaseException:
    """The exception to raise once the run is recorded: a device failure becomes a message."""
    if isinstance(exc, (OptuiError, KeyboardInterrupt)) or not (
            is_out_of_memory(exc) or type(exc).__name__ in ("JaxRuntimeError", "XlaRuntimeError")):
        return exc
    return OptuiError(f"run {run_id} failed: {describe(exc)}")
