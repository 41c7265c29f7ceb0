"""Histories of the run in progress, grown chunk by chunk from engine events (UI thread only)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..results import UnitResult


@dataclass
class LiveUnit:
    name: str
    total_steps: int
    replicates: int
    spec: dict = field(default_factory=dict)
    steps_done: int = 0
    status: str = "waiting"
    chunks: list[np.ndarray] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    evals: dict[str, list[np.ndarray]] = field(default_factory=dict)
    diverged_at: np.ndarray | None = None

    def add_chunk(self, event) -> None:
        self.chunks.append(np.asarray(event.minibatch_loss, dtype=np.float32))
        self.steps_done = int(event.step_end)
        if event.eval:
            self.eval_steps.append(int(event.eval_step))
            for k, v in event.eval.items():
                self.evals.setdefault(k, []).append(np.asarray(v, dtype=float))
        if event.diverged_at is not None:
            self.diverged_at = np.asarray(event.diverged_at)
        self.status = "running"

    def last_value(self, metric: str) -> float | None:
        """The latest eval of a metric, averaged over the replicates that have one."""
        values = self.evals.get(metric)
        if not values:
            return None
        v = values[-1][np.isfinite(values[-1])]
        return float(v.mean()) if v.size else None

    @property
    def diverged(self) -> int:
        return 0 if self.diverged_at is None else int((self.diverged_at >= 0).sum())

    @property
    def has_data(self) -> bool:
        return bool(self.chunks)

    def as_unit(self) -> UnitResult:
        reps = self.replicates
        loss = np.concatenate(self.chunks, axis=1) if self.chunks else np.zeros((reps, 0), np.float32)
        return UnitResult(
            name=self.name, spec=self.spec, minibatch_loss=loss,
            eval_steps=np.asarray(self.eval_steps, dtype=np.int64),
            eval={k: np.stack(v, axis=1) for k, v in self.evals.items()},
            diverged_at=self.diverged_at if self.diverged_at is not None else np.full(reps, -1),
            status=self.status, total_steps=self.total_steps,
        )
