"""The search's own events, beside the engine's: the whole plan once, then each trial's score.

A search emits the engine's RunStarted, UnitStarted, ChunkDone, UnitFinished, RunFinished and
RunFailed, one unit per trial, plus these two: TrialsPlanned once after RunStarted (every trial
with its params, steps and status, and the groups in the order they will run: enough to draw the
whole trials table at once) and TrialScored after each trial's UnitFinished (its status and
objective: a row to update).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TrialsPlanned:
    run_id: str
    space: str
    objective: str
    budget: str  # which budget each trial gets, and why
    trials: list[dict[str, Any]]  # name, trial, params, steps, replicates, status, objective
    groups: list[tuple[str, int, tuple[str, ...]]]  # (optimizer, batch size, units) in run order


@dataclass(frozen=True)
class TrialScored:
    run_id: str
    unit: str
    params: dict[str, float]
    status: str  # done | pruned | diverged | failed | interrupted
    objective: float | None  # mean over the trial's replicates; None unless done
    extra: dict[str, Any] = field(default_factory=dict)
