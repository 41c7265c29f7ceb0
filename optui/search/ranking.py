"""Ranking a search's trials, best first: scored ones by objective, then the others by status."""

from __future__ import annotations

import math
from typing import Any

from ..status import Status
from ..store import Store
from .plans import plan_from_row

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
