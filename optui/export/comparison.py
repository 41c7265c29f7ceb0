"""Final values of configs side by side: n, mean, the chosen band, time-to-target, and each
config paired against the first (the baseline) by replicate index.

What `optui compare` prints (as a terminal table, Markdown, LaTeX, CSV or JSON) and what a study
export writes as final-values.md / .tex.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import OptuiError
from ..results import RunResult, UnitResult
from ..results.stats import distribution, final_values, interval, metric_curve, paired_comparison, time_to_target
from .paper import PaperTable

BAND_TITLES = {"minmax": "min-max", "iqr": "IQR", "ci95": "95% CI of mean"}


class ComparisonError(OptuiError):
    """A config or metric asked for is not in the run; the message lists what is."""


@dataclass
class Entry:
    run: RunResult
    unit: UnitResult
    label: str
    finals: np.ndarray  # one value per replicate, NaN where it diverged
    stats: dict[str, Any]  # distribution(finals)
    band: tuple[float, float] | None
    time_to_target: float | None = None
    paired: dict[str, Any] | None = None  # against the baseline; None for it or when unpaired
    unpaired_reason: str = ""


@dataclass
class Comparison:
    metric: str
    band: str
    target: float | None
    entries: list[Entry]
    higher_is_better: bool = False  # an accuracy: "better" is above, and time-to-target rises to it
    label: str = ""  # the metric's label, as the run's RunMetrics gives it

    @property
    def better(self) -> str:
        return "above" if self.higher_is_better else "below"

    @property
    def run_ids(self) -> list[str]:
        return list(dict.fromkeys(e.run.run_id for e in self.entries))

    @property
    def baseline(self) -> Entry:
        return self.entries[0]


def recorded_metrics(unit: UnitResult) -> list[str]:
    return ["minibatch_loss"] * (np.asarray(unit.minibatch_loss).shape[-1] > 0) + list(unit.eval)


def compare(targets: list[tuple[RunResult, str]], metric: str | None = None, band: str = "ci95",
            target: float | None = None) -> Comparison:
    """Compare (run, config) pairs on a metric's final value per replicate; metric: default the
    first run's objective. Which way is better is the metric's declaration (RunMetrics)."""
    if not targets:
        raise ComparisonError("nothing to compare: give at least one RUN:CONFIG")
    from ..results.metrics import MINIBATCH, RunMetrics

    metrics = RunMetrics.of_run(targets[0][0])
    metric = metric or metrics.objective_name or MINIBATCH
    higher = metrics.higher_is_better(metric)
    several_runs = len({run.run_id for run, _ in targets}) > 1
    run_index = {rid: i + 1 for i, rid in enumerate(dict.fromkeys(run.run_id for run, _ in targets))}
    entries = []
    for run, config in targets:
        unit = run.units.get(config)
        if unit is None:
            raise ComparisonError(f"run {run.run_id} has no config {config!r}; it has: {', '.join(run.units)}")
        finals = final_values(unit, metric)
        if finals is None:
            raise ComparisonError(f"run {run.run_id} config {config!r} recorded no {metric}; recorded: "
                                  f"{', '.join(recorded_metrics(unit)) or 'nothing yet'}")
        ttt = None
        if target is not None:
            x, values = metric_curve(unit, metric)
            ttt = time_to_target(x, values[np.asarray(unit.healthy)], target, higher)
        label = f"[{run_index[run.run_id]}] {config}" if several_runs else config
        entries.append(Entry(run, unit, label, finals, distribution(finals), interval(finals, band), ttt))
    base = entries[0]
    for entry in entries[1:]:
        if entry.finals.shape != base.finals.shape:
            entry.unpaired_reason = (f"{entry.label} has {entry.finals.size} replicates, "
                                     f"{base.label} {base.finals.size}")
            continue
        paired = paired_comparison(entry.finals, base.finals, higher_is_better=higher)
        if paired["pairs"] == 0:
            entry.unpaired_reason = f"no replicate pair of {entry.label} and {base.label} where both finished"
            continue
        entry.paired = paired
    return Comparison(metric, band, target, entries, higher, metrics.label(metric))


def metric_title(metric: str, label: str = "", higher_is_better: bool | None = None) -> str:
    """'final test MSE (lower is better)': the metric's label and its direction when known."""
    title = f"final {label or metric}"
    if metric == "minibatch_loss":
        title += " (mean of the last 1% of steps)"
    if higher_is_better is not None:
        title += f" ({'higher' if higher_is_better else 'lower'} is better)"
    return title


def table(comparison: Comparison) -> PaperTable:
    """One row per config: n, diverged, mean, band, [time-to-target], paired against the first."""
    c = comparison
    base = c.baseline.label
    header = ["Config", "n", "Diverged", "Mean", BAND_TITLES[c.band]]
    if c.target is not None:
        header.append(f"% of run to {'>' if c.higher_is_better else '<'} {c.target:g}")
    paired = len(c.entries) > 1
    if paired:
        header += [f"P({c.better} {base})", "95% CI", "Wilcoxon p", "Paired t p", "Mean diff."]
    rows = []
    for e in c.entries:
        row: list[Any] = [e.label, e.stats["n"], e.unit.diverged, e.stats["mean"], e.band]
        if c.target is not None:
            row.append(e.time_to_target)
        if paired:
            p = e.paired
            if p is None:
                row += [None] * 5
            else:
                row += [p["p_a_below_b"], tuple(p["ci95"]), p["wilcoxon_p"], p["ttest_p"], p["mean_difference"]]
        rows.append(row)
    notes = [f"Final {c.label or c.metric} per replicate, {'higher' if c.higher_is_better else 'lower'} is better"
             + (" (mean of its last 1% of steps)" if c.metric == "minibatch_loss" else "")
             + f"; n replicates that finished without diverging; band: {BAND_TITLES[c.band]}."]
    if paired:
        notes.append(f"Paired against {base} by replicate index (the same PRNG key within a run): "
                     f"P({c.better}) is the share of pairs where the config ends "
                     f"{'higher' if c.higher_is_better else 'lower'} (ties count one "
                     f"half) with a bootstrap 95% CI; two-sided Wilcoxon signed-rank and paired "
                     f"t-test p-values of the differences.")
        notes += [f"Not paired: {e.unpaired_reason}." for e in c.entries if e.unpaired_reason]
        if len(c.run_ids) > 1:
            notes.append("Configs of different runs share PRNG keys only if both runs used the same "
                         "replicates.seed.")
    if len(c.run_ids) > 1:
        notes.append("Runs: " + ", ".join(f"[{i + 1}] {r}" for i, r in enumerate(c.run_ids)) + ".")
    caption = metric_title(c.metric, c.label, c.higher_is_better)
    if len(c.run_ids) == 1:
        caption += f", run {c.run_ids[0]} ({c.baseline.run.study})"
    return PaperTable(header, rows, caption=caption, notes=notes)


def as_json(comparison: Comparison) -> dict[str, Any]:
    c = comparison
    return {
        "metric": c.metric, "label": c.label or c.metric, "higher_is_better": c.higher_is_better,
        "band": c.band, "target": c.target,
        "baseline": {"run_id": c.baseline.run.run_id, "config": c.baseline.unit.name},
        "configs": [{
            "run_id": e.run.run_id, "study": e.run.study, "config": e.unit.name,
            "replicates": e.unit.replicates, "diverged": e.unit.diverged, **e.stats,
            "band": None if e.band is None else list(e.band),
            **({"time_to_target_percent": e.time_to_target} if c.target is not None else {}),
            "paired_with_baseline": e.paired, **({"unpaired": e.unpaired_reason} if e.unpaired_reason else {}),
        } for e in c.entries],
    }
