"""What a search spent and what it found for it: examples trained (pruned trials count only the
steps they ran) and the best objective so far against examples trained, the optimisation-history
figure, with other searches of the same space beside it (random search against tpe, say)."""

from __future__ import annotations

import math
from typing import Any

from ..search import rank_trials
from ..store import Store


def steps_trained(t: dict[str, Any]) -> int:
    """Training steps a ranked trial ran: all of them unless it stopped early (or never ran)."""
    extra = t.get("extra") or {}
    if "steps_trained" in extra:
        return int(extra["steps_trained"])
    return int(t.get("steps") or 0) if t.get("status") in ("done", "diverged") else 0


def examples_trained(t: dict[str, Any]) -> int:
    """Training examples a trial consumed over all its replicates (0 while that is unknown)."""
    return steps_trained(t) * int((t.get("params") or {}).get("batch_size", 0)) * int(t.get("replicates") or 1)


def history(ranked: list[dict[str, Any]], goal: str = "min") -> list[tuple[int, float | None]]:
    """(examples trained so far, best objective so far) after each trial, in the order trials
    were drawn (a learning sampler's rounds in order); None until a trial has an objective."""
    sign = -1.0 if goal == "max" else 1.0
    total, best, out = 0, None, []
    for t in sorted(ranked, key=lambda t: t.get("trial", 0)):
        total += examples_trained(t)
        value = t.get("objective")
        if value is not None and math.isfinite(value) and (best is None or sign * value < sign * best):
            best = value
        out.append((total, best))
    return out


def summary(ranked: list[dict[str, Any]]) -> dict[str, Any]:
    """Examples trained in total and per trial, and what a trial trained to its end takes."""
    per = [examples_trained(t) for t in ranked]
    full = [int(t.get("steps") or 0) * int(t["params"]["batch_size"]) * int(t.get("replicates") or 1)
            for t in ranked]
    return {"total": sum(per), "per_trial_mean": sum(per) / len(per) if per else 0,
            "per_trial_min": min(per, default=0), "per_trial_max": max(per, default=0),
            "full_total": sum(full), "pruned": sum(t["status"] == "pruned" for t in ranked)}


def strategy_label(space_dict: dict[str, Any]) -> str:
    sampler = space_dict.get("sampler", "random")
    pruner = space_dict.get("pruner", "none")
    return sampler if pruner == "none" else f"{sampler} + {pruner}"


SAMPLER_TITLES = {"random": "Random", "qmc": "QMC", "tpe": "TPE", "cmaes": "CMA-ES"}


def strategy_title(space_dict: dict[str, Any]) -> str:
    """'Random', 'TPE', 'TPE + asha': for titles and captions."""
    sampler = space_dict.get("sampler", "random")
    pruner = space_dict.get("pruner", "none")
    title = SAMPLER_TITLES.get(sampler, sampler)
    return title if pruner == "none" else f"{title} + {pruner}"


def related_searches(store: Store, run_id: str) -> dict[str, list[dict[str, Any]]]:
    """Other finished searches of the same study and space, newest per strategy label, whose
    strategy differs from this run's: {label (run id): ranked trials}."""
    info = store.run_info(run_id)
    mine = strategy_label(info["meta"].get("space", {}))
    out: dict[str, list[dict[str, Any]]] = {}
    seen = {mine}
    for r in sorted(store.list_runs(), key=lambda r: r.get("created") or "", reverse=True):
        if r.get("damaged") or r["id"] == run_id or r["kind"] != "search" or r["study"] != info["study"]:
            continue
        if r["status"] != "done":
            continue
        meta = store.run_info(r["id"])["meta"]
        if meta.get("space_name") != info["meta"].get("space_name"):
            continue
        label = strategy_label(meta.get("space", {}))
        if label in seen:
            continue
        seen.add(label)
        out[f"{label} ({r['id']})"] = rank_trials(store, r["id"])
    return out


def history_figure(title: str, objective: str, goal: str, series: dict[str, list[dict[str, Any]]]) -> Any:
    """Best objective so far against examples trained, one step line per search."""
    from matplotlib.figure import Figure

    from .figures import _RENDER_LOCK

    with _RENDER_LOCK:
        fig = Figure(figsize=(7.0, 4.5), dpi=120, layout="constrained")
        ax = fig.add_subplot()
        for label, ranked in series.items():
            points = [(x, y) for x, y in history(ranked, goal) if y is not None]
            if points:
                xs, ys = zip(*points)
                ax.step(xs, ys, where="post", marker="o", markersize=3, label=label)
        ax.set_xscale("log")
        ax.set_xlabel("examples trained (all trials so far)")
        ax.set_ylabel(f"best {objective} so far ({'higher' if goal == 'max' else 'lower'} is better)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize=9, framealpha=0.85)
    return fig
