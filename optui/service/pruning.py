"""Early stopping of search trials at rungs: successive halving (asha) and median stopping.

A group of trials pauses at each rung (an eval point); the trials that stop there keep their
partial histories and end as pruned (or diverged), and the survivors continue as a smaller
vmapped group (optui.service.execution.EarlyStop), so a stopped trial uses no more compute.

asha: rung r is at eval point min_budget * reduction_factor**r. A trial continues past a rung when
its objective metric there is among the best 1/reduction_factor of every value recorded at that
rung so far (this search's trials of any batch size, earlier groups and rounds included, and the
whole group now paused). That is the promotion rule of asynchronous successive halving (as in
Optuna's SuccessiveHalvingPruner, which always promotes while fewer than reduction_factor values
compete); it is applied to the paused group at once rather than one trial at a time, because the
group's members reach the rung together.

median: Optuna's MedianPruner (5 start-up trials, no warm-up) at every eval point, on a study
rebuilt from the store: a trial stops when its best value so far is worse than the median of
the finished trials' values at the same eval point.

Values are the space's metric (mean over a trial's replicates) at an eval point; a trial with a
diverged replicate stops at the next rung as diverged.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..engine import chunk_bounds
from ..search import plan_from_row, score_unit
from ..status import Status
from ..store import Store
from ..study.search_space import SearchSpace
from .execution import EarlyStop, UnitPlan


def rung_points(space: SearchSpace, points_total: int) -> list[int]:
    """Eval points (1-based) at which a trial with `points_total` eval points may stop."""
    if space.pruner == "asha":
        out, r = [], 0
        while (p := space.min_budget * space.reduction_factor ** r) < points_total:
            out.append(p)
            r += 1
        return out
    if space.pruner == "median":
        return list(range(1, points_total))
    return []


def intermediate(unit: Any, space: SearchSpace) -> dict[int, float]:
    """{eval point: the metric averaged over the unit's replicates} (NaN where one diverged)."""
    values = unit.eval.get(space.metric)
    if values is None:
        return {}
    out = {}
    for p in range(1, values.shape[1]):
        column = np.asarray(values[:, p], np.float64)
        out[p] = float(column.mean()) if np.isfinite(column).all() else math.nan
    return out


def promoted(values: dict[str, float], live: list[str], reduction_factor: int, goal: str) -> set[str]:
    """The live trials that continue past a rung, given every value recorded at it (live ones
    included): those no worse than the (len // reduction_factor)-th best, the best always."""
    sign = -1.0 if goal == "max" else 1.0
    ranked = sorted(sign * v for v in values.values() if math.isfinite(v))
    if not ranked:
        return set()
    cut = ranked[min(max(len(ranked) // reduction_factor - 1, 0), len(ranked) - 1)]
    return {n for n in live if math.isfinite(values[n]) and sign * values[n] <= cut}


class RungPruner:
    """The early stop of one search run's trials, read from and written to the store."""

    def __init__(self, store: Store, run_id: str, space: SearchSpace, eval_points: int):
        self.store = store
        self.run_id = run_id
        self.space = space
        self.eval_points = eval_points

    def early_stop(self) -> EarlyStop | None:
        if self.space.pruner == "none":
            return None
        return EarlyStop(self.rungs, self.decide)

    def rungs(self, plan: UnitPlan) -> list[int]:
        points = len(chunk_bounds(plan.steps, self.eval_points)) - 1
        return [p - 1 for p in rung_points(self.space, points)]  # chunk index of each eval point

    def _units(self) -> dict[str, tuple[dict[str, Any], Any]]:
        rows = [r for r in self.store.unit_rows(self.run_id) if not r["spec"].get("confirm_of")]
        return {r["name"]: (r, self.store.load_unit(self.run_id, r)) for r in rows}

    def decide(self, live: list[UnitPlan], chunk: int) -> dict[str, tuple[Status, dict[str, Any]]]:
        point = chunk + 1
        units = self._units()
        history = {n: intermediate(u, self.space) for n, (_, u) in units.items()}
        names = [p.name for p in live]
        if self.space.pruner == "asha":
            values = {n: h[point] for n, h in history.items() if point in h}
            keep = promoted(values, names, self.space.reduction_factor, self.space.goal)
        else:
            keep = self._median_keep(units, history, names, point)
        out = {}
        for plan in live:
            if plan.name in keep and math.isfinite(history[plan.name].get(point, math.nan)):
                continue
            row, unit = units[plan.name]
            status, extra = score_unit(unit, self.space)
            extra["steps_trained"] = int(unit.eval_steps[-1])
            if status == Status.DONE:
                status = Status.PRUNED
                extra["objective"] = None
                extra["pruned_at"] = {"eval_point": point, "step": int(unit.eval_steps[-1]),
                                      "value": history[plan.name].get(point)}
            out[plan.name] = (status, extra)
        return out

    def _median_keep(self, units: dict, history: dict, live: list[str], point: int) -> set[str]:
        from ..search.sampling import optuna_module, rebuild_study

        optuna = optuna_module("pruner = \"median\"")
        live_set = set(live)
        trials = []
        for n, (row, _) in units.items():
            status = row["status"]
            if n in live_set:
                status = Status.RUNNING
            elif status not in (Status.DONE, Status.PRUNED, Status.DIVERGED):
                continue
            trials.append({"name": n, "params": plan_from_row(row).params, "status": status,
                           "objective": row["extra"].get("objective"),
                           "intermediate": {p: v for p, v in history[n].items() if n not in live_set or p <= point}})
        pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
        study = rebuild_study(self.space, trials, {}, pruner=pruner)
        frozen = {t["name"]: ft for t, ft in zip(trials, study.get_trials(deepcopy=False))}
        return {n for n in live if not pruner.prune(study, frozen[n])}
