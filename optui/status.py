"""The states of a run and of its units (configs or trials), as stored and shown."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """A str enum: stored as its value, and equal to it (`Status.DONE == "done"`)."""

    PENDING = "pending"  # a unit not started yet
    RUNNING = "running"
    DONE = "done"
    DIVERGED = "diverged"  # a search trial whose replicates did not all stay finite
    PRUNED = "pruned"  # a search trial stopped early at a rung (its partial history is kept)
    FAILED = "failed"
    INTERRUPTED = "interrupted"


# A unit in one of these states is never trained again on resume.
FINISHED = frozenset({Status.DONE, Status.DIVERGED, Status.PRUNED})
