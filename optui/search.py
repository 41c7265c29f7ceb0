"""Search trials: their plans and names, events, objectives, scores and ranking.

Trials that share (optimiser, batch size) train together as one group (optui.service.searches
runs them): their hyperparameters are per-member data, so a group is one compiled program
however many learning rates it holds.

Events for consumers (the headless printer, the UI): the engine's RunStarted, UnitStarted,
ChunkDone, UnitFinished, RunFinished and RunFailed, one unit per trial, plus two of this module:
TrialsPlanned once after RunStarted (every trial with its params, steps and status, and the
groups in the order they will run: enough to draw the whole trials table at once) and
TrialScored after each trial's UnitFinished (its status and objective: a row to update).

Keys: trial i's replicate r trains with member_keys(seed, R, i, stream)[r];
stream 0 is the search, stream 1 the confirmation re-runs. A resumed trial therefore continues
(from its last checkpointed chunk) exactly as an uninterrupted one would have run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import PresetError
from .presets import Study
from .search_space import SearchSpace
from .status import Status
from .store import Store

SEARCH_STREAM, CONFIRM_STREAM = 0, 1


# -- events ----------------------------------------------------------------------------------

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


# -- plan ------------------------------------------------------------------------------------

@dataclass
class TrialPlan:
    name: str
    index: int  # 0-based draw index
    params: dict[str, float]  # batch_size and every optimiser hyperparameter
    steps: int
    replicates: int
    stream: int = SEARCH_STREAM
    confirm_of: str | None = None
    round: int | None = None  # the sampler's round that asked it (learning samplers only)

    @property
    def batch_size(self) -> int:
        return int(self.params["batch_size"])

    def spec(self, space: SearchSpace) -> dict[str, Any]:
        spec = {"optimizer": space.optimizer, **self.params, "trial": self.index + 1,
                "space": space.name, "steps": self.steps}
        if self.confirm_of:
            spec["confirm_of"] = self.confirm_of
        if self.round is not None:
            spec["round"] = self.round
        return spec


def trial_name(space: str, index: int) -> str:
    return f"{space}-t{index + 1:03d}"


def confirm_name(trial: str, replicates: int) -> str:
    return f"{trial}-r{replicates}"


def plan_from_row(row: dict[str, Any]) -> TrialPlan:
    spec = row["spec"]
    params = {k: v for k, v in spec.items()
              if k not in ("optimizer", "trial", "space", "steps", "confirm_of", "round")}
    params["batch_size"] = int(params["batch_size"])
    return TrialPlan(row["name"], int(spec["trial"]) - 1, params, int(row["total_steps"]),
                     int(row["replicates"]), CONFIRM_STREAM if spec.get("confirm_of") else SEARCH_STREAM,
                     spec.get("confirm_of"), spec.get("round"))


# -- objective -------------------------------------------------------------------------------

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


# -- ranking ---------------------------------------------------------------------------------

_STATUS_ORDER = {s: i for i, s in enumerate((Status.DONE, Status.PRUNED, Status.DIVERGED, Status.FAILED,
                                             Status.INTERRUPTED, Status.RUNNING, Status.PENDING))}


def _rows(store: Store, run_id: str, confirm: bool) -> list[dict[str, Any]]:
    out = []
    for r in store.unit_rows(run_id):
        spec = r["spec"]
        if bool(spec.get("confirm_of")) != confirm:
            continue
        plan = plan_from_row(r)
        objective = r["extra"].get("objective") if r["status"] == Status.DONE else None
        out.append({
            "name": r["name"], "trial": plan.index + 1, "status": r["status"], "objective": objective,
            "params": plan.params, "steps": r["total_steps"], "replicates": r["replicates"],
            "wall_time_s": r["wall_time_s"], "extra": r["extra"], "confirm_of": spec.get("confirm_of"),
        })
    # The goal is recorded with the run's space: higher is better for an accuracy.
    return rank(out, store.run_info(run_id)["meta"].get("space", {}).get("goal", "min"))


def rank(trials: list[dict[str, Any]], goal: str = "min") -> list[dict[str, Any]]:
    """Trials best first, each given a rank: scored ones by objective (lower is better, or
    higher when goal is "max"), then the others by status (pruned, diverged, failed,
    interrupted, running, pending) and draw order.

    Only trials with a finite objective rank: diverged ones never win.
    """
    sign = -1.0 if goal == "max" else 1.0

    def key(t: dict[str, Any]) -> tuple:
        objective = t.get("objective")
        return (objective is None, sign * objective if objective is not None else math.inf,
                _STATUS_ORDER.get(t.get("status"), 9), t.get("trial", 0))

    out = sorted(trials, key=key)
    for i, t in enumerate(out, 1):
        t["rank"] = i if t.get("objective") is not None else None
    return out


def rank_trials(store: Store, run_id: str) -> list[dict[str, Any]]:
    """A stored search's trials, best first: done by objective, then diverged, failed, unfinished.

    Each row: rank (None unless done), name, trial (1-based), status, objective, params, steps,
    replicates, wall_time_s (its share of its group's time), extra.
    """
    return _rows(store, store.resolve(run_id), confirm=False)


def rank_confirmations(store: Store, run_id: str) -> list[dict[str, Any]]:
    """The confirmation re-runs of a search, best mean objective first (extra has the spread)."""
    return _rows(store, store.resolve(run_id), confirm=True)


def best_trial(store: Store, run_id: str) -> dict[str, Any] | None:
    rows = rank_trials(store, run_id)
    return rows[0] if rows and rows[0]["objective"] is not None else None


def search_space_of(study: Study, name: str | None) -> SearchSpace:
    if not study.search:
        raise PresetError(f"{study.path or 'preset'}: has no [search.*] spaces; add one, e.g. "
                          f"[search.adam] optimizer = \"adam\", learning_rate = {{ low = 0.001, high = 0.1 }}, "
                          f"batch_size = 128")
    if name is None:
        if len(study.search) > 1:
            raise PresetError(f"{study.path or 'preset'}: has several search spaces "
                              f"({', '.join(study.search)}); choose one with --space")
        return next(iter(study.search.values()))
    if name not in study.search:
        raise PresetError(f"{study.path or 'preset'}: no search space {name!r}; it has: {', '.join(study.search)}")
    return study.search[name]
