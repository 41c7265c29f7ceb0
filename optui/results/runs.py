"""In-memory form of finished (or partly finished) runs: what the store returns and exports consume."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol

import numpy as np


class Chunk(Protocol):
    """One chunk of a unit's history, as stored or as a ChunkDone event carries it."""

    minibatch_loss: np.ndarray  # (replicates, steps in the chunk)
    eval_step: int
    eval: dict[str, np.ndarray]  # metric -> (replicates,)
    diverged_at: np.ndarray | None


@dataclass
class UnitResult:
    """One config of a study, or one trial of a search, with all its replicates.

    minibatch_loss: (replicates, steps_done) float32, NaN from a replicate's divergence on.
    eval_steps: (points_done,) int, the step at which each full-dataset eval ran (0 = before training).
    eval: metric name (as the workload declares it) -> (replicates, points_done).
    diverged_at: (replicates,) int, the first step whose loss was NaN or inf, -1 if none.
    """

    name: str
    spec: dict[str, Any]
    minibatch_loss: np.ndarray
    eval_steps: np.ndarray
    eval: dict[str, np.ndarray]
    diverged_at: np.ndarray
    status: str = "done"
    wall_time_s: float = 0.0
    total_steps: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def replicates(self) -> int:
        return int(self.diverged_at.shape[0])

    @property
    def diverged(self) -> int:
        return int((self.diverged_at >= 0).sum())

    @property
    def healthy(self) -> np.ndarray:
        """Boolean mask of replicates that never diverged."""
        return self.diverged_at < 0

    @classmethod
    def from_chunks(cls, name: str, spec: dict[str, Any], replicates: int, chunks: Iterable[Chunk],
                    **rest: Any) -> "UnitResult":
        """A unit from its chunks in order: the one place histories are assembled."""
        losses, steps, evals = [], [], {}
        diverged = np.full(replicates, -1, dtype=np.int64)
        for chunk in chunks:
            losses.append(np.asarray(chunk.minibatch_loss, np.float32))
            steps.append(chunk.eval_step)
            for k, v in chunk.eval.items():
                evals.setdefault(k, []).append(np.asarray(v, dtype=np.float64))
            if chunk.diverged_at is not None:
                diverged = np.asarray(chunk.diverged_at)
        return cls(name=name, spec=spec,
                   minibatch_loss=np.concatenate(losses, axis=1) if losses else np.zeros((replicates, 0), np.float32),
                   eval_steps=np.asarray(steps, dtype=np.int64),
                   eval={k: np.stack(v, axis=1) for k, v in evals.items()}, diverged_at=diverged, **rest)


@dataclass
class RunResult:
    run_id: str
    study: str
    workload: str
    kind: str
    status: str
    device: str
    created: float
    wall_time_s: float
    preset_text: str
    units: dict[str, UnitResult]
    meta: dict[str, Any] = field(default_factory=dict)
