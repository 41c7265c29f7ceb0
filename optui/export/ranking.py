"""A study's configs ranked: final test loss and accuracy with bands, and time-to-target.

Written for studies of three or more configs (a zoo of optimisers): a Markdown table, a CSV and one
figure. Configs rank by the mean final test loss of their healthy replicates; a config with any
diverged replicate ranks after every config without, and one with none healthy ranks last
(a diverged run is never best).

Time-to-target is the share of the run (and the step) at which the mean over healthy replicates
first reaches the target: test loss at or below it, test accuracy at or above it. Without a
target given (`optui export --target test_loss=0.3`), the target is the median over configs of
their final mean, so about half the configs reach it and the column says how fast.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..results import RunResult, UnitResult
from ..results.stats import distribution, final_values, metric_curve
from . import atomic

MIN_CONFIGS = 3
LOSS = "test_loss"
ACCURACY = "test_accuracy"


@dataclass
class RankedConfig:
    rank: int
    name: str
    optimizer: str
    replicates: int
    diverged: int
    wall_time_s: float
    loss: dict[str, Any]  # distribution of the final test loss over healthy replicates
    loss_values: np.ndarray
    accuracy: dict[str, Any] | None = None
    accuracy_values: np.ndarray | None = None
    loss_target_percent: float | None = None
    loss_target_step: int | None = None
    accuracy_target_percent: float | None = None
    accuracy_target_step: int | None = None


@dataclass
class Ranking:
    study: str
    run_id: str
    loss_target: float | None
    accuracy_target: float | None
    rows: list[RankedConfig] = field(default_factory=list)
    targets_chosen: bool = True  # True: medians chosen here, not given

    @property
    def has_accuracy(self) -> bool:
        return any(r.accuracy is not None for r in self.rows)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ranked_by": "mean final test loss over healthy replicates (configs with divergence last)",
            "loss_target": self.loss_target, "accuracy_target": self.accuracy_target,
            "targets": "median of the configs' final means" if self.targets_chosen else "given",
            "configs": [{
                "rank": r.rank, "config": r.name, "optimizer": r.optimizer, "replicates": r.replicates,
                "diverged": r.diverged, "wall_time_s": r.wall_time_s, "final_test_loss": r.loss,
                "final_test_accuracy": r.accuracy,
                "loss_target": {"percent": r.loss_target_percent, "step": r.loss_target_step},
                "accuracy_target": {"percent": r.accuracy_target_percent, "step": r.accuracy_target_step},
            } for r in self.rows],
        }


def applies(run: RunResult) -> bool:
    """A run is ranked when it is a study of three or more configs with a recorded test loss."""
    return (run.kind == "study" and len(run.units) >= MIN_CONFIGS
            and any(final_values(u, LOSS) is not None for u in run.units.values()))


def _reached(unit: UnitResult, metric: str, target: float, above: bool) -> tuple[float | None, int | None]:
    curve = metric_curve(unit, metric)
    if curve is None:
        return None, None
    percent, values = curve
    healthy = values[np.asarray(unit.healthy)]
    healthy = healthy[np.isfinite(healthy).all(axis=1)] if healthy.size else healthy
    if healthy.shape[0] == 0:
        return None, None
    mean = healthy.mean(axis=0)
    hits = np.flatnonzero(mean >= target if above else mean <= target)
    if hits.size == 0:
        return None, None
    i = int(hits[0])
    steps = np.asarray(unit.eval_steps)[: values.shape[1]]
    return float(percent[i]), int(steps[i])


def _median_of_means(dists: list[dict[str, Any] | None]) -> float | None:
    means = [d["mean"] for d in dists if d and d["mean"] is not None]
    return float(f"{np.median(means):.3g}") if means else None


def rank(run: RunResult, targets: dict[str, float] | None = None) -> Ranking:
    """Rank a study's configs (see the module docstring)."""
    targets = targets or {}
    rows = []
    for name, unit in run.units.items():
        losses = final_values(unit, LOSS)
        accs = final_values(unit, ACCURACY)
        loss_values = np.asarray([] if losses is None else losses[np.isfinite(losses)])
        acc_values = None if accs is None else np.asarray(accs[np.isfinite(accs)])
        rows.append(RankedConfig(
            0, name, str(unit.spec.get("optimizer", "")), unit.replicates, unit.diverged,
            float(unit.wall_time_s), distribution(loss_values), loss_values,
            None if accs is None else distribution(acc_values), acc_values))
    loss_target = targets.get(LOSS, _median_of_means([r.loss for r in rows]))
    acc_target = targets.get(ACCURACY, _median_of_means([r.accuracy for r in rows]))
    for r in rows:
        unit = run.units[r.name]
        if loss_target is not None:
            r.loss_target_percent, r.loss_target_step = _reached(unit, LOSS, loss_target, above=False)
        if acc_target is not None and r.accuracy is not None:
            r.accuracy_target_percent, r.accuracy_target_step = _reached(unit, ACCURACY, acc_target, above=True)

    def key(r: RankedConfig) -> tuple:
        mean = r.loss["mean"]
        return (mean is None, r.diverged > 0, np.inf if mean is None else mean, r.name)

    rows.sort(key=key)
    for i, r in enumerate(rows, start=1):
        r.rank = i
    return Ranking(run.study, run.run_id, loss_target, acc_target, rows,
                   targets_chosen=LOSS not in targets and ACCURACY not in targets)


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


def header(ranking: Ranking) -> list[str]:
    cols = ["rank", "config", "optimizer", "final test loss, mean [95% CI]", "min..max"]
    if ranking.has_accuracy:
        cols += ["test accuracy %, mean [95% CI]", "min..max"]
    cols.append(f"test loss <= {_num(ranking.loss_target)}")
    if ranking.has_accuracy:
        cols.append(f"accuracy >= {_num(None if ranking.accuracy_target is None else 100 * ranking.accuracy_target)}%")
    return cols + ["diverged", "wall s"]


def cells(ranking: Ranking, r: RankedConfig) -> list[str]:
    out = [str(r.rank), r.name, _short(r.optimizer), *_band(r.loss)]
    if ranking.has_accuracy:
        out += list(_band(r.accuracy, 100.0, 4))
    out.append(_reach(r.loss_target_percent, r.loss_target_step))
    if ranking.has_accuracy:
        out.append(_reach(r.accuracy_target_percent, r.accuracy_target_step))
    return out + [f"{r.diverged}/{r.replicates}", f"{r.wall_time_s:.0f}"]


def _short(optimizer: str) -> str:
    from ..optim import registry as optimizers

    return optimizers.label(optimizer)


def markdown(ranking: Ranking) -> str:
    cols = header(ranking)
    lines = [f"# {ranking.study}: configs ranked by final test loss (run {ranking.run_id})", "",
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
    cols = ["rank", "config", "optimizer", "replicates", "diverged", "wall_time_s",
            "test_loss_mean", "test_loss_ci_low", "test_loss_ci_high", "test_loss_min", "test_loss_max",
            "test_accuracy_mean", "test_accuracy_ci_low", "test_accuracy_ci_high", "test_accuracy_min",
            "test_accuracy_max", "loss_target", "loss_target_percent", "loss_target_step",
            "accuracy_target", "accuracy_target_percent", "accuracy_target_step"]
    writer.writerow(cols)

    def stats(d):
        if not d or d["mean"] is None:
            return [""] * 5
        ci = d["ci95"] or [None, None]
        return [_csv(d["mean"]), _csv(ci[0]), _csv(ci[1]), _csv(d["min"]), _csv(d["max"])]

    for r in ranking.rows:
        writer.writerow([r.rank, r.name, r.optimizer, r.replicates, r.diverged, f"{r.wall_time_s:.3f}",
                         *stats(r.loss), *stats(r.accuracy), _csv(ranking.loss_target),
                         _csv(r.loss_target_percent), _csv(r.loss_target_step), _csv(ranking.accuracy_target),
                         _csv(r.accuracy_target_percent), _csv(r.accuracy_target_step)])
    return [atomic.write_text(md_path, markdown(ranking)), atomic.write_text(csv_path, buf.getvalue())]


def _csv(v: Any) -> str:
    return "" if v is None else repr(v) if isinstance(v, float) else str(v)


# -- the figure ------------------------------------------------------------------------------------

def figure(ranking: Ranking, width: float = 10.0, dpi: int = 120) -> Any:
    """Final test loss (and accuracy) per config in rank order: replicates as dots, the mean with
    its 95% CI as a bar, min..max as a line; time-to-target written beside each loss row."""
    from matplotlib.figure import Figure

    from .figures import PALETTE, _RENDER_LOCK

    rows = ranking.rows
    panels = 2 if ranking.has_accuracy else 1
    height = max(3.0, 0.45 * len(rows) + 1.6)
    with _RENDER_LOCK:
        fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
        axes = fig.subplots(1, panels, sharey=True, squeeze=False)[0]
        y = np.arange(len(rows))[::-1]  # rank 1 at the top
        specs = [("loss_values", "loss", 1.0, "final test loss (log)")]
        if panels == 2:
            specs.append(("accuracy_values", "accuracy", 100.0, "final test accuracy (%)"))
        for ax, (values_attr, dist_attr, scale, label) in zip(axes, specs):
            for yi, r in zip(y, rows):
                colour = PALETTE[(r.rank - 1) % len(PALETTE)]
                values = getattr(r, values_attr)
                d = getattr(r, dist_attr)
                if values is None or d is None or d["mean"] is None:
                    continue
                ax.plot([d["min"] * scale, d["max"] * scale], [yi, yi], color=colour, linewidth=1.0)
                ci = d["ci95"] or [d["mean"], d["mean"]]
                ax.plot([ci[0] * scale, ci[1] * scale], [yi, yi], color=colour, linewidth=5, alpha=0.5,
                        solid_capstyle="butt")
                jitter = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(1)
                ax.scatter(np.asarray(values) * scale, yi + jitter, s=9, color=colour, alpha=0.8, zorder=3)
                ax.plot([d["mean"] * scale], [yi], marker="|", markersize=14, color="black", zorder=4)
            ax.set_xlabel(label)
            ax.grid(True, axis="x", alpha=0.3)
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        axes[0].set_xscale("log")
        axes[0].xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axes[0].xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
        axes[0].xaxis.set_minor_formatter(NullFormatter())
        axes[0].set_yticks(y, [f"{r.rank}. {r.name}" + (f" ({r.diverged} div.)" if r.diverged else "")
                               for r in rows])
        axes[0].set_ylim(-0.7, len(rows) - 0.3)
        # Time-to-target as labels on the right-hand axis.
        reach = axes[-1].twinx()
        reach.set_ylim(axes[0].get_ylim())
        reach.set_yticks(y, ["never" if r.loss_target_percent is None else f"{r.loss_target_percent:.0f}% of run"
                             for r in rows])
        reach.tick_params(axis="y", length=0, labelsize=8)
        reach.set_ylabel(f"first mean test loss <= {_num(ranking.loss_target, 3)}", fontsize=8)
        fig.suptitle(f"{ranking.study}: configs ranked by final test loss\n"
                     f"dots: replicates; bar: mean 95% CI; line: min..max; |: mean", fontsize=10)
        return fig
