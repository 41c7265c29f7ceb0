"""A trained trial's score: each replicate's objective, and the trial's status and summary."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..status import Status
from ..study.search_space import SearchSpace


def replicate_objectives(unit: Any, space: SearchSpace) -> np.ndarray:
    """The objective of each replicate of a finished unit (NaN where it diverged or is missing)."""
    reps = unit.minibatch_loss.shape[0]
    values = unit.eval.get(space.metric)
    if values is None or values.shape[1] == 0:
        return np.full(reps, np.nan)
    if space.mean_last:
        # The metric averaged over the eval points in the last last_percent of the run.
        cut = unit.total_steps * (1.0 - space.last_percent / 100.0)
        take = unit.eval_steps >= cut
        take[-1] = True
        out = values[:, take].mean(axis=1)
    else:
        out = values[:, -1].astype(np.float64)
    out = np.where(np.asarray(unit.diverged_at) >= 0, np.nan, out)
    return np.where(np.isfinite(out), out, np.nan)


def score_unit(unit: Any, space: SearchSpace) -> tuple[Status, dict[str, Any]]:
    """(status, extra) of a unit that trained to the end: diverged if any replicate did."""
    per_rep = replicate_objectives(unit, space)
    diverged = int((np.asarray(unit.diverged_at) >= 0).sum())
    finals = {k: float(np.nanmean(v[:, -1])) if v.shape[1] and np.isfinite(v[:, -1]).any() else None
              for k, v in unit.eval.items()}
    extra: dict[str, Any] = {
        "objective_name": space.objective, "objective_goal": space.goal, "final": finals, "diverged": diverged,
        "diverged_at": [int(d) for d in np.asarray(unit.diverged_at)],
        "objectives": [None if not math.isfinite(v) else float(v) for v in per_rep],
    }
    ok = diverged == 0 and bool(np.isfinite(per_rep).all())
    extra["objective"] = float(per_rep.mean()) if ok else None
    if len(per_rep) > 1 and ok:
        extra["objective_std"] = float(per_rep.std(ddof=1))
        extra["objective_min"] = float(per_rep.min())
        extra["objective_max"] = float(per_rep.max())
    return (Status.DONE if ok else Status.DIVERGED), extra
