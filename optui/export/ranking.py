"""A study's configs ranked by the workload's objective, with bands and time-to-target.

Written for studies of three or more configs (a zoo of optimisers): a Markdown table, a CSV and one
figure. Configs rank by the mean final value of the run's objective (RunMetrics: lower or higher
is better as the workload declares) over their healthy replicates; a config with any diverged
replicate ranks after every config without, and one with none healthy ranks last (a diverged run
is never best). A second metric, the first other one of the objective's split (test accuracy
beside a test loss, R^2 beside an MSE), is shown beside it.

Time-to-target is the share of the run (and the step) at which the mean over healthy replicates
first reaches the target: at or below it when lower is better, at or above it when higher is.
Without a target given (`optui export --target METRIC=VALUE`), the target is the median over
configs of their final mean, so about half the configs reach it and the column says how fast.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..results.metrics import Metric, RunMetrics
from ..results import RunResult, UnitResult
from ..results.stats import distribution, final_values, metric_curve
from . import atomic

MIN_CONFIGS = 3


@dataclass
class Standing:
    """One metric of one config: its final values over healthy replicates and when it reached
    the ranking's target."""

    dist: dict[str, Any]
    values: np.ndarray
    target_percent: float | None = None
    target_step: int | None = None


@dataclass
class RankedConfig:
    rank: int
    name: str
    optimizer: str
    replicates: int
    diverged: int
    wall_time_s: float
    objective: Standing
    other: Standing | None = None


@dataclass
class Ranking:
    study: str
    run_id: str
    metrics: RunMetrics
    objective: Metric  # what the configs rank by
    other: Metric | None  # shown beside it
    objective_target: float | None
    other_target: float | None
    rows: list[RankedConfig] = field(default_factory=list)
    targets_chosen: bool = True  # True: medians chosen here, not given

    @property
    def has_other(self) -> bool:
        return self.other is not None and any(r.other is not None for r in self.rows)

    def as_dict(self) -> dict[str, Any]:
        o, x = self.objective, self.other
        return {
            "ranked_by": f"mean final {o.name} over healthy replicates, {self.metrics.direction(o.name)} "
                         f"(configs with divergence last)",
            "objective": o.name, "higher_is_better": bool(o.higher_is_better),
            "other": x.name if self.has_other else None,
            "targets": "median of the configs' final means" if self.targets_chosen else "given",
            "target": {o.name: self.objective_target, **({x.name: self.other_target} if self.has_other else {})},
            "configs": [{
                "rank": r.rank, "config": r.name, "optimizer": r.optimizer, "replicates": r.replicates,
                "diverged": r.diverged, "wall_time_s": r.wall_time_s,
                f"final_{o.name}": r.objective.dist,
                **({f"final_{x.name}": r.other.dist if r.other else None} if self.has_other else {}),
                "time_to_target": {
                    o.name: {"percent": r.objective.target_percent, "step": r.objective.target_step},
                    **({x.name: {"percent": r.other.target_percent if r.other else None,
                                 "step": r.other.target_step if r.other else None}} if self.has_other else {}),
                },
            } for r in self.rows],
        }


def applies(run: RunResult) -> bool:
    """A run is ranked when it is a study of three or more configs that recorded its objective."""
    objective = RunMetrics.of_run(run).objective
    return (run.kind == "study" and len(run.units) >= MIN_CONFIGS and objective is not None
            and any(final_values(u, objective.name) is not None for u in run.units.values()))


def other_metric(metrics: RunMetrics) -> Metric | None:
    """The metric shown beside the objective: the first other one of its split (not its own
    train/test counterpart), else None."""
    o = metrics.objective
    if o is None:
        return None
    return next((m for m in metrics if m.name != o.name and m.split == o.split), None)


def _reached(unit: UnitResult, metric: Metric, target: float) -> tuple[float | None, int | None]:
    curve = metric_curve(unit, metric.name)
    if curve is None:
        return None, None
    percent, values = curve
    healthy = values[np.asarray(unit.healthy)]
    healthy = healthy[np.isfinite(healthy).all(axis=1)] if healthy.size else healthy
    if healthy.shape[0] == 0:
        return None, None
    mean = healthy.mean(axis=0)
    hits = np.flatnonzero(mean >= target if metric.higher_is_better else mean <= target)
    if hits.size == 0:
        return None, None
    i = int(hits[0])
    steps = np.asarray(unit.eval_steps)[: values.shape[1]]
    return float(percent[i]), int(steps[i])


def _median_of_means(dists: list[dict[str, Any] | None]) -> float | None:
    means = [d["mean"] for d in dists if d and d["mean"] is not None]
    return float(f"{np.median(means):.3g}") if means else None


def _standing(unit: UnitResult, metric: Metric) -> Standing | None:
    finals = final_values(unit, metric.name)
    if finals is None:
        return None
    values = np.asarray(finals[np.isfinite(finals)])
    return Standing(distribution(values), values)


def rank(run: RunResult, targets: dict[str, float] | None = None) -> Ranking:
    """Rank a study's configs (see the module docstring)."""
    targets = targets or {}
    metrics = RunMetrics.of_run(run)
    objective = metrics.objective
    if objective is None:
        raise ValueError(f"run {run.run_id} records no metric to rank by")
    other = other_metric(metrics)
    rows = []
    for name, unit in run.units.items():
        mine = _standing(unit, objective) or Standing(distribution(np.asarray([])), np.asarray([]))
        rows.append(RankedConfig(0, name, str(unit.spec.get("optimizer", "")), unit.replicates, unit.diverged,
                                 float(unit.wall_time_s), mine, _standing(unit, other) if other else None))
    if other is not None and all(r.other is None for r in rows):
        other = None
    objective_target = targets.get(objective.name, _median_of_means([r.objective.dist for r in rows]))
    other_target = None if other is None else targets.get(
        other.name, _median_of_means([r.other.dist if r.other else None for r in rows]))
    for r in rows:
        unit = run.units[r.name]
        if objective_target is not None:
            r.objective.target_percent, r.objective.target_step = _reached(unit, objective, objective_target)
        if other is not None and other_target is not None and r.other is not None:
            r.other.target_percent, r.other.target_step = _reached(unit, other, other_target)

    def key(r: RankedConfig) -> tuple:
        mean = r.objective.dist["mean"]
        if mean is not None and objective.higher_is_better:
            mean = -mean  # best first: smaller sorts first
        return (mean is None, r.diverged > 0, np.inf if mean is None else mean, r.name)

    rows.sort(key=key)
    for i, r in enumerate(rows, start=1):
        r.rank = i
    given = objective.name in targets or (other is not None and other.name in targets)
    return Ranking(run.study, run.run_id, metrics, objective, other, objective_target, other_target, rows,
                   targets_chosen=not given)


# -- text ------------------------------------------------------------------------------------------

def _num(v: float | None, digits: int = 4) -> str:
    if v is None:
        return "-"
    return f"{v:.{digits}g}"


def _band(d: dict[str, Any] | None, scale: float = 1.0, digits: int = 4) -> tuple[str, str]:
    """('mean [ci low, ci high]', 'min..max') of a distribution."""
    if not d or d["mean"] is None:
        return "-", "-"
    ci = d["ci95"] or [None, None]
    s = lambda v: _num(None if v is None else v * scale, digits)  # noqa: E731
    return f"{s(d['mean'])} [{s(ci[0])}, {s(ci[1])}]", f"{s(d['min'])}..{s(d['max'])}"


def _reach(percent: float | None, step: int | None) -> str:
    return "never" if percent is None else f"{percent:.0f}% (step {step:,})"


def _scale(metric: Metric) -> float:
    """Accuracies are shown as percentages."""
    return 100.0 if metric.kind == "accuracy" else 1.0


def _unit(metric: Metric) -> str:
    return "%" if metric.kind == "accuracy" else ""


def target_label(metric: Metric, target: float | None, digits: int = 4) -> str:
    """'test MSE <= 0.12' or 'test R^2 >= 0.8': the target in the metric's direction."""
    value = None if target is None else target * _scale(metric)
    return f"{metric.label} {'>=' if metric.higher_is_better else '<='} {_num(value, digits)}{_unit(metric)}"


def header(ranking: Ranking) -> list[str]:
    o, x = ranking.objective, ranking.other
    cols = ["rank", "config", "optimizer", f"final {o.label}{' %' if _unit(o) else ''}, mean [95% CI]", "min..max"]
    if ranking.has_other:
        cols += [f"{x.label}{' %' if _unit(x) else ''}, mean [95% CI]", "min..max"]
    cols.append(target_label(o, ranking.objective_target))
    if ranking.has_other:
        cols.append(target_label(x, ranking.other_target))
    return cols + ["diverged", "wall s"]


def cells(ranking: Ranking, r: RankedConfig) -> list[str]:
    out = [str(r.rank), r.name, _short(r.optimizer), *_band(r.objective.dist, _scale(ranking.objective))]
    if ranking.has_other:
        out += list(_band(r.other.dist if r.other else None, _scale(ranking.other), 4))
    out.append(_reach(r.objective.target_percent, r.objective.target_step))
    if ranking.has_other:
        out.append(_reach(r.other.target_percent, r.other.target_step) if r.other else "-")
    return out + [f"{r.diverged}/{r.replicates}", f"{r.wall_time_s:.0f}"]


def title(ranking: Ranking) -> str:
    """'configs ranked by final test MSE (lower is better)'."""
    o = ranking.objective
    return f"configs ranked by final {o.label} ({ranking.metrics.direction(o.name)})"


def _short(optimizer: str) -> str:
    from ..optim import registry as optimizers

    return optimizers.label(optimizer)


def markdown(ranking: Ranking) -> str:
    cols = header(ranking)
    lines = [f"# {ranking.study}: {title(ranking)} (run {ranking.run_id})", "",
             "| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in cells(ranking, r)) + " |" for r in ranking.rows]
    how = "the median of the configs' final means" if ranking.targets_chosen else "given with --target"
    lines += ["", f"Bands are over healthy replicates: mean with a bootstrap 95% CI, and min..max. Targets "
                  f"are {how}; time-to-target is the share of the run (and the step) at which the mean "
                  f"first reaches it. Configs with any diverged replicate rank after those without."]
    return "\n".join(lines) + "\n"


def write_tables(ranking: Ranking, md_path: Any, csv_path: Any) -> list[Any]:
    buf = io.StringIO()
    writer = csv.writer(buf)
    shown = [ranking.objective] + ([ranking.other] if ranking.has_other else [])
    cols = ["rank", "config", "optimizer", "replicates", "diverged", "wall_time_s"]
    for m in shown:
        cols += [f"{m.name}_{s}" for s in ("mean", "ci_low", "ci_high", "min", "max")]
    for m in shown:
        cols += [f"{m.name}_target", f"{m.name}_target_percent", f"{m.name}_target_step"]
    writer.writerow(cols)

    def stats(st: Standing | None):
        d = st.dist if st else None
        if not d or d["mean"] is None:
            return [""] * 5
        ci = d["ci95"] or [None, None]
        return [_csv(d["mean"]), _csv(ci[0]), _csv(ci[1]), _csv(d["min"]), _csv(d["max"])]

    targets = [ranking.objective_target, ranking.other_target]
    for r in ranking.rows:
        standings = [r.objective, r.other][: len(shown)]
        row = [r.rank, r.name, r.optimizer, r.replicates, r.diverged, f"{r.wall_time_s:.3f}"]
        for st in standings:
            row += stats(st)
        for st, target in zip(standings, targets):
            row += [_csv(target), _csv(st.target_percent if st else None), _csv(st.target_step if st else None)]
        writer.writerow(row)
    return [atomic.write_text(md_path, markdown(ranking)), atomic.write_text(csv_path, buf.getvalue())]


def _csv(v: Any) -> str:
    return "" if v is None else repr(v) if isinstance(v, float) else str(v)


# -- the figure ------------------------------------------------------------------------------------

def figure(ranking: Ranking, width: float = 10.0, dpi: int = 120) -> Any:
    """The objective's final values (and the other metric's) per config in rank order: replicates
    as dots, the mean with its 95% CI as a bar, min..max as a line; time-to-target of the
    objective written beside each row."""
    from matplotlib.figure import Figure

    from .figures import PALETTE, _RENDER_LOCK

    rows = ranking.rows
    panels = 2 if ranking.has_other else 1
    height = max(3.0, 0.45 * len(rows) + 1.6)
    with _RENDER_LOCK:
        fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
        axes = fig.subplots(1, panels, sharey=True, squeeze=False)[0]
        y = np.arange(len(rows))[::-1]  # rank 1 at the top
        shown = [("objective", ranking.objective)] + ([("other", ranking.other)] if panels == 2 else [])
        for ax, (attr, metric) in zip(axes, shown):
            scale = _scale(metric)
            for yi, r in zip(y, rows):
                colour = PALETTE[(r.rank - 1) % len(PALETTE)]
                st = getattr(r, attr)
                if st is None or st.dist["mean"] is None:
                    continue
                values, d = st.values, st.dist
                ax.plot([d["min"] * scale, d["max"] * scale], [yi, yi], color=colour, linewidth=1.0)
                ci = d["ci95"] or [d["mean"], d["mean"]]
                ax.plot([ci[0] * scale, ci[1] * scale], [yi, yi], color=colour, linewidth=5, alpha=0.5,
                        solid_capstyle="butt")
                jitter = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(1)
                ax.scatter(np.asarray(values) * scale, yi + jitter, s=9, color=colour, alpha=0.8, zorder=3)
                ax.plot([d["mean"] * scale], [yi], marker="|", markersize=14, color="black", zorder=4)
            ax.set_xlabel(f"final {metric.label}" + (" (log)" if _log_axis(metric, rows, attr) else
                                                      " (%)" if _unit(metric) else "")
                          + f", {ranking.metrics.direction(metric.name)}")
            ax.grid(True, axis="x", alpha=0.3)
            if _log_axis(metric, rows, attr):
                from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

                ax.set_xscale("log")
                ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
                ax.xaxis.set_minor_formatter(NullFormatter())
        axes[0].set_yticks(y, [f"{r.rank}. {r.name}" + (f" ({r.diverged} div.)" if r.diverged else "")
                               for r in rows])
        axes[0].set_ylim(-0.7, len(rows) - 0.3)
        # Time-to-target as labels on the right-hand axis.
        reach = axes[-1].twinx()
        reach.set_ylim(axes[0].get_ylim())
        reach.set_yticks(y, ["never" if r.objective.target_percent is None
                             else f"{r.objective.target_percent:.0f}% of run" for r in rows])
        reach.tick_params(axis="y", length=0, labelsize=8)
        reach.set_ylabel(f"first mean {target_label(ranking.objective, ranking.objective_target, 3)}", fontsize=8)
        fig.suptitle(f"{ranking.study}: {title(ranking)}\n"
                     f"dots: replicates; bar: mean 95% CI; line: min..max; |: mean", fontsize=10)
        return fig


def _log_axis(metric: Metric, rows: list[RankedConfig], attr: str) -> bool:
    """A loss on a log axis when every value is positive; anything else on a linear one."""
    if not metric.log_scale:
        return False
    values = [v for r in rows if (st := getattr(r, attr)) is not None for v in np.asarray(st.values).ravel()]
    return bool(values) and min(values) > 0
