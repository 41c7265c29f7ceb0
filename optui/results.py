"""In-memory form of finished (or partly finished) runs: what the store returns and exports consume."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class UnitResult:
    """One config of a study, or one trial of a search, with all its replicates.

    minibatch_loss: (replicates, steps_done) float32, NaN from a replicate's divergence on.
    eval_steps: (points_done,) int, the step at which each full-dataset eval ran (0 = before training).
    eval: metric name ("train_loss", "test_loss", "train_accuracy", ...) -> (replicates, points_done).
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

    def percent_of_run(self, steps: np.ndarray) -> np.ndarray:
        total = max(self.total_steps, 1)
        return 100.0 * np.asarray(steps, dtype=float) / total


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
