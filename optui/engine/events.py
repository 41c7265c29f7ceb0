"""Events the engine emits while it trains a group: a unit started, a chunk done.

Plain dataclasses of numpy arrays and Python numbers: safe to hand to another thread. The engine
knows no run: `run_id` is stamped by the service that records the run (optui.service.events
holds the run-level events and the whole event type the views receive).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class UnitStarted:
    unit: str
    total_steps: int
    replicates: int
    steps_done: int = 0
    run_id: str = ""


@dataclass(frozen=True)
class ChunkDone:
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
    run_id: str = ""


EngineEvent = UnitStarted | ChunkDone
