"""What the Search panel draws: its trials table's columns and rows, the scatter of the objective
against a hyperparameter, and the best objective so far against examples trained. Pure functions
of the trials (dicts: name, trial, params, status, objective, steps, replicates)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...results import metrics as metric_decls
from ...export import search_progress
from ...search.plans import NOT_HYPERPARAMETERS
from ...service.progress import RunProgress
from ..plots import log_ticks

PARAM_SKIP = NOT_HYPERPARAMETERS  # a trial's bookkeeping, not what the search varied
# The x-axis choice that plots the best objective so far against examples trained.
HISTORY_AXIS = "examples trained"


def objective_goal(objective: str, known: dict[str, str] | None = None) -> str:
    """'min' or 'max' for an objective name: as the preset's spaces declare it, else from the
    metric's name (final_test_accuracy: an accuracy, higher is better)."""
    if known and objective in known:
        return known[objective]
    metric = objective.removeprefix("final_").removeprefix("mean_last_")
    return metric_decls.infer(metric).goal


def fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def trials_of(progress: RunProgress) -> list[dict[str, Any]]:
    """A live search's trials as its progress (optui.service.progress.reduce) tells them."""
    out = []
    for u in progress.units.values():
        status = u.status
        if status == "running" and u.total_steps:
            status = f"{100 * u.steps_done // u.total_steps}%"
        out.append({"name": u.name, "trial": u.trial, "params": dict(u.params), "status": status,
                    "objective": u.objective, "steps": u.steps_done, "replicates": u.replicates})
    return out


def varied_params(trials: list[dict[str, Any]]) -> list[str]:
    """The hyperparameters that differ between trials (fixed ones say nothing in a table)."""
    names = sorted({k for t in trials for k in (t.get("params") or {}) if k not in PARAM_SKIP},
                   key=lambda k: (k == "batch_size", k))
    varied = [k for k in names if len({repr((t.get("params") or {}).get(k)) for t in trials}) > 1]
    return varied or names


def numeric_params(trials: list[dict[str, Any]]) -> list[str]:
    """The x-axis choices: every numeric hyperparameter, then examples trained."""
    names = sorted({k for t in trials for k, v in (t.get("params") or {}).items()
                    if k not in PARAM_SKIP and isinstance(v, (int, float)) and not isinstance(v, bool)})
    return names + [HISTORY_AXIS] if names else []


def most_varied(trials: list[dict[str, Any]], names: list[str]) -> str:
    """The hyperparameter with the most distinct values: the one the search explored."""
    def distinct(name):
        return len({(t.get("params") or {}).get(name) for t in trials})
    return max([n for n in names if n != HISTORY_AXIS] or names, key=distinct)


def fill_table(table, ranked: list[dict[str, Any]], varied: list[str], columns_shown: list[str]) -> list[str]:
    """The trials, best first: rank, objective, a column per varied parameter, status, name.
    Returns the parameter columns now shown (the columns are rebuilt only when they change)."""
    table.clear()
    if varied != columns_shown:
        table.clear(columns=True)
        table.add_columns("#", "objective", *varied, "status", "trial")
    n = 0
    for t in ranked:
        obj = t.get("objective")
        n += obj is not None
        given = t.get("params") or {}
        table.add_row(str(n) if obj is not None else "-", f"{obj:.4g}" if obj is not None else "-",
                      *[fmt(given[k]) if k in given else "-" for k in varied], t.get("status", ""), t["name"])
    return varied


def scored_points(trials: list[dict[str, Any]], param: str) -> list[tuple[float, float]]:
    return [(float(t["params"][param]), float(t["objective"])) for t in trials
            if t.get("objective") is not None and isinstance((t.get("params") or {}).get(param), (int, float))]


def draw_scatter(plt, trials: list[dict[str, Any]], param: str | None, scales: dict[str, str],
                 objective: str, goal: str, strategy: str) -> None:
    """The objective against one hyperparameter; a log axis (ticks in its values) for a
    parameter the space draws on a log scale, or one spanning decades."""
    plt.clear_data()
    plt.clear_figure()
    if param == HISTORY_AXIS:
        plot_history(plt, trials, objective, goal, strategy)
        return
    points = scored_points(trials, param) if param else []
    if not points:
        plt.title("no scored trials yet")
        return
    xs, ys = zip(*points)
    log_x = all(x > 0 for x in xs) and (scales.get(param) == "log"
                                         or (param not in scales and max(xs) / min(xs) > 20))
    xs = [math.log10(x) for x in xs] if log_x else list(xs)
    plt.scatter(xs, list(ys), marker="•", color="orange+")
    plt.xlabel(f"{param} (log)" if log_x else param)
    if log_x:
        ticks, labels = log_ticks(min(xs), max(xs))
        if ticks:
            plt.xticks(ticks, labels)
    plt.ylabel(objective)
    best = int(np.argmax(ys) if goal == "max" else np.argmin(ys))
    plt.scatter([xs[best]], [ys[best]], marker="x", color="green+")  # the best: no legend in the plot
    plt.title(f"{objective} vs {param} ({len(points)} scored; x: best)")


def plot_history(plt: Any, trials: list[dict[str, Any]], objective: str, goal: str, strategy: str) -> None:
    """Best objective so far against examples trained (log10), in the order trials were drawn."""
    points = [(x, y) for x, y in search_progress.history(trials, goal) if y is not None and x > 0]
    if not points:
        plt.title("no scored trials yet")
        return
    xs, ys = zip(*points)
    plt.plot([math.log10(x) for x in xs], list(ys), marker="•", color="orange+")
    plt.xlabel("examples trained (log)")
    ticks, labels = log_ticks(math.log10(min(xs)), math.log10(max(xs)))
    if ticks:
        plt.xticks(ticks, labels)
    plt.ylabel(f"best {objective}")
    total = sum(search_progress.examples_trained(t) for t in trials)
    pruned = sum(t.get("status") == "pruned" for t in trials)
    plt.title(f"{strategy}: best so far vs examples ({total:,} examples"
              + (f", {pruned} pruned)" if pruned else ")"))
