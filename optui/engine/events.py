"""Events the engine emits for its consumers (the store writer, the headless printer, the UI).

Plain dataclasses of numpy arrays and Python numbers: safe to hand to another thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    study: str
    kind: str  # "study" | "search" | "confirm"
    units: dict[str, tuple[int, int]]  # unit name -> (total steps, replicates)
    device: str
    strategy: str
    resumed: bool = False


@dataclass(frozen=True)
class UnitStarted:
    run_id: str
    unit: str
    total_steps: int
    replicates: int
    steps_done: int = 0


@dataclass(frozen=True)
class ChunkDone:
    run_id: str
    unit: str
    chunk_index: int
    chunks_total: int
    step_end: int
    total_steps: int
    minibatch_loss: np.ndarray  # (members, steps in this chunk)
    eval_step: int
    eval: dict[str, np.ndarray] = field(default_factory=dict)  # metric -> (members,)
    diverged_at: np.ndarray | None = None  # (members,), -1 = healthy
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class UnitFinished:
    run_id: str
    unit: str
    status: str  # done | cancelled | failed
    diverged: int
    wall_time_s: float


@dataclass(frozen=True)
class RunFinished:
    run_id: str
    status: str  # done | interrupted
    wall_time_s: float


@dataclass(frozen=True)
class RunFailed:
    run_id: str
    error: str


Event = RunStarted | UnitStarted | ChunkDone | UnitFinished | RunFinished | RunFailed
