"""Report-style figures: a centre line and a translucent band per config, x as % of the run.

Matplotlib through Figure + FigureCanvasAgg only (no pyplot: no global figure state), so figures
can be built from worker threads. Rendering is serialised by a lock because matplotlib's font and
text caches are shared between figures.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..results.metrics import MINIBATCH, TRAIN_TEST, RunMetrics
from ..study.presets import Compare
from ..results import RunResult, UnitResult
from ..results.stats import BAND_KINDS, CENTRES, band, metric_curve
from . import atomic

# The report's blue and orange first, then matplotlib's tab10 without them.
PALETTE = ("#2e6fd9", "#ff9c24", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
BAND_LABELS = {"minmax": "min-max", "iqr": "IQR", "ci95": "95% CI of mean"}
_RENDER_LOCK = threading.RLock()


@dataclass(frozen=True)
class FigureStyle:
    band: str = "minmax"  # minmax | iqr | ci95
    centre: str = "mean"  # mean | median
    log_y: bool = True
    width: float = 8.0  # inches
    height: float = 5.0
    dpi: int = 120
    max_points: int = 2000  # longer curves are binned for drawing (band keeps bin min/max)
    band_alpha: float = 0.3

    def __post_init__(self) -> None:
        if self.band not in BAND_KINDS:
            raise atomic.ExportError(f"band must be one of {', '.join(BAND_KINDS)}, got {self.band!r}")
        if self.centre not in CENTRES:
            raise atomic.ExportError(f"centre must be one of {', '.join(CENTRES)}, got {self.centre!r}")
        if not (1 <= self.width <= 50 and 1 <= self.height <= 50):
            raise atomic.ExportError(f"figure size must be 1-50 inches a side, got {self.width}x{self.height}")
        if not 20 <= self.dpi <= 1200:
            raise atomic.ExportError(f"dpi must be in [20, 1200], got {self.dpi}")
        if self.max_points < 10:
            raise atomic.ExportError(f"max_points must be at least 10, got {self.max_points}")


def bin_for_drawing(x: np.ndarray, centre: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                    max_points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shrink long curves to at most max_points bins.

    x and the centre line are averaged within a bin; the band takes the bin's lowest lo and
    highest hi, so binning never hides a spike or narrows the spread.
    """
    n = x.shape[0]
    if n <= max_points:
        return x, centre, lo, hi
    starts = np.linspace(0, n, max_points + 1).astype(int)[:-1]
    counts = np.diff(np.append(starts, n))
    finite = np.isfinite(centre)
    with np.errstate(invalid="ignore", divide="ignore"):
        c_sum = np.add.reduceat(np.where(finite, centre, 0.0), starts)
        c_n = np.add.reduceat(finite.astype(float), starts)
        c = np.where(c_n > 0, c_sum / np.maximum(c_n, 1), np.nan)
    xb = np.add.reduceat(x, starts) / counts
    return xb, c, np.fmin.reduceat(lo, starts), np.fmax.reduceat(hi, starts)


@dataclass
class _Series:
    label: str
    x: np.ndarray
    centre: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def _series(unit: UnitResult, metric: str, label: str, style: FigureStyle) -> _Series | None:
    """Band of the unit's healthy replicates; None when the metric was not recorded."""
    curve = metric_curve(unit, metric)
    if curve is None:
        return None
    x, values = curve
    healthy = values[np.asarray(unit.healthy)]
    if unit.diverged:
        label += (f" (all {unit.replicates} diverged)" if healthy.shape[0] == 0 else
                  f" ({unit.diverged} of {unit.replicates} diverged, excluded)")
    if healthy.shape[0] == 0:
        nan = np.full(x.shape, np.nan)
        return _Series(label, x, nan, nan, nan)
    centre, lo, hi = band(healthy, style.band, style.centre)
    x, centre, lo, hi = bin_for_drawing(x, centre, lo, hi, style.max_points)
    return _Series(label, x, centre, lo, hi)


def _draw(ax: Any, s: _Series, colour: str, style: FigureStyle, dashed: bool = False) -> None:
    line = "--" if dashed else "-"
    if s.x.shape[0] == 1:  # one eval point (e.g. an imported final test loss): a marker with a bar
        ax.errorbar(s.x, s.centre, yerr=[s.centre - s.lo, s.hi - s.centre], fmt="o", color=colour,
                    capsize=4, label=s.label, zorder=3, clip_on=False)
        return
    ax.plot(s.x, s.centre, line, color=colour, linewidth=1.4, label=s.label)
    if np.isfinite(s.lo).any():
        ax.fill_between(s.x, s.lo, s.hi, color=colour, alpha=style.band_alpha * (0.7 if dashed else 1.0),
                        linewidth=0)


def _new_figure(style: FigureStyle) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(style.width, style.height), dpi=style.dpi, layout="constrained")
    return fig, fig.add_subplot()


def _axis_label(metrics: RunMetrics, metric: str) -> str:
    """'minibatch loss', 'full test MSE' (an eval loss), 'test R^2 (higher is better)' (other
    metrics), 'full train MSE (solid) and test MSE (dashed)' (train vs test)."""
    if metric == MINIBATCH:
        return metrics.label(MINIBATCH)
    if metric == TRAIN_TEST:
        train, test = metrics.train_test or (metrics.get(MINIBATCH), metrics.get(MINIBATCH))
        full = "full " if test.kind == "loss" else ""
        return f"{full}{train.label} (solid) and {test.label} (dashed)"
    m = metrics.get(metric)
    return f"full {m.label}" if m.kind == "loss" else f"{m.label} ({metrics.direction(metric)})"


def _log_axis(metrics: RunMetrics, metric: str) -> bool:
    """Losses on a log axis; accuracies and other metrics on a linear one."""
    if metric == TRAIN_TEST:
        return metrics.train_test is None or metrics.train_test[1].log_scale
    return metrics.get(metric).log_scale


def _finish(ax: Any, title: str, ylabel: str, style: FigureStyle, notes: list[str], log: bool = True) -> None:
    ax.set_title(_wrap(title, style, 12))
    ax.set_xlabel("% of run")
    ax.set_ylabel(ylabel)
    # A lone point at 100% (an imported final test loss) needs room to show its marker.
    lone = any(len(line.get_xdata()) == 1 for line in ax.get_lines())
    ax.set_xlim(0, 102 if lone else 100)
    finite = _drawn_values(ax)
    if finite.size == 0:
        # Every config diverged (or recorded nothing): an empty axis that says so, never an error.
        notes.insert(0, "nothing to draw: no finite values")
        ax.set_ylim(0, 1)
        ax.set_yticks([])
    elif style.log_y and log and not (finite > 0).any():
        notes.insert(0, "no positive values: linear y axis")
    elif style.log_y and log:
        ax.set_yscale("log")
        _plain_log_ticks(ax)
    ax.grid(True, which="major", alpha=0.3)
    if notes:
        ax.text(0.01, 0.01, "; ".join(notes), transform=ax.transAxes, fontsize=8, color="0.3",
                va="bottom", ha="left")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize=9, framealpha=0.85)


def _drawn_values(ax: Any) -> np.ndarray:
    """The finite y values of every line drawn (bands lie around their lines)."""
    ys = [np.asarray(line.get_ydata(), dtype=float).ravel() for line in ax.get_lines()]
    values = np.concatenate(ys) if ys else np.zeros(0)
    return values[np.isfinite(values)]


def _plain_log_ticks(ax: Any) -> None:
    """Log-y ticks as plain numbers (0.7, not 7x10^-1); within a decade, label the minor ticks too."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    plain = FuncFormatter(lambda v, _: f"{v:.3g}")
    lo, hi = ax.get_ylim()
    ax.yaxis.set_major_formatter(plain)
    if lo > 0 and hi / lo < 20:  # too few decades for major ticks alone
        ax.yaxis.set_minor_locator(LogLocator(subs=(1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0)))
        ax.yaxis.set_minor_formatter(plain)
        ax.tick_params(axis="y", which="minor", labelsize=8)


def _wrap(text: str, style: FigureStyle, font_pt: float) -> str:
    """Break a long title line at commas so it fits the figure's width."""
    import textwrap

    chars = max(20, int(style.width * 72 / (font_pt * 0.6)))  # ~0.6 em per character
    return "\n".join(textwrap.fill(line, chars, break_on_hyphens=False) for line in text.split("\n"))


def _centre_band_caption(style: FigureStyle) -> str:
    return f"line: {style.centre} over replicates; band: {BAND_LABELS[style.band]}"


def compare_figure(run: RunResult, compare: Compare, style: FigureStyle = FigureStyle()) -> Any:
    """One figure for a [[compare]] entry; train_test draws the run's train/test pair per config
    (RunMetrics.train_test: train solid, test dashed)."""
    declared = RunMetrics.of_run(run)
    with _RENDER_LOCK:
        fig, ax = _new_figure(style)
        notes = []
        if compare.metric == TRAIN_TEST:
            metrics = tuple(m.name for m in declared.train_test) if declared.train_test else ()
            if not metrics:
                notes.append("this run has no train/test pair of metrics")
        else:
            metrics = (compare.metric,)
        for i, name in enumerate(compare.configs):
            colour = PALETTE[i % len(PALETTE)]
            unit = run.units.get(name)
            label = compare.labels[i] if i < len(compare.labels) and compare.labels[i] else name
            if unit is None:
                notes.append(f"{label}: not in this run")
                continue
            for j, metric in enumerate(metrics):
                suffix = f" {declared.get(metric).split or metric}" if len(metrics) > 1 else ""
                s = _series(unit, metric, label + suffix, style)
                if s is None:
                    notes.append(f"{label}: no {declared.label(metric)} recorded")
                    continue
                _draw(ax, s, colour, style, dashed=j == 1)
        notes.append(_centre_band_caption(style))
        _finish(ax, compare.title, _axis_label(declared, compare.metric), style, notes,
                log=_log_axis(declared, compare.metric))
        return fig


def config_figure(run: RunResult, name: str, style: FigureStyle = FigureStyle()) -> Any:
    """One config: its minibatch-loss band with its full-dataset loss curves over it; a workload's
    other metrics (accuracies) in a second panel below, on a linear axis."""
    unit = run.units[name]
    declared = RunMetrics.of_run(run)
    recorded = [m for m in declared if m.name in unit.eval]
    losses = [MINIBATCH] + sorted(m.name for m in recorded if m.kind == "loss")
    others = [m.name for m in recorded if m.kind != "loss"]
    with _RENDER_LOCK:
        fig, ax = _new_figure(style)
        lower = None
        if others:
            ax.remove()
            ax, lower = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
        notes = []
        for i, metric in enumerate(losses):
            s = _series(unit, metric, _axis_label(declared, metric), style)
            if s is None:
                continue
            _draw(ax, s, PALETTE[i % len(PALETTE)], style)
        notes.append(_centre_band_caption(style))
        _finish(ax, f"{run.study}: {name}\n{describe_spec(unit.spec)}", "loss", style, notes)
        if lower is not None:
            for i, metric in enumerate(others, start=len(losses)):
                s = _series(unit, metric, declared.label(metric), style)
                if s is not None:
                    _draw(lower, s, PALETTE[i % len(PALETTE)], style)
            kinds = {declared.get(m).kind for m in others}
            ylabel = (_axis_label(declared, others[0]) if len(others) == 1 else
                      "accuracy (higher is better)" if kinds == {"accuracy"} else "value")
            _finish(lower, "", ylabel, style, [], log=False)
            ax.set_xlabel("")
        return fig


def describe_spec(spec: dict[str, Any]) -> str:
    parts = [str(spec["optimizer"])] if "optimizer" in spec else []
    for key, value in spec.items():
        if key == "optimizer":
            continue
        parts.append(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}")
    return ", ".join(parts)


FIGURE_FORMATS = ("png", "pdf", "svg")
# Vector files embed their fonts as TrueType (Type 42): journals refuse the Type 3 fonts that are
# matplotlib's default in PDFs. SVG text becomes paths, so it looks the same without the font.
# No dates in the metadata and a fixed SVG id salt: the same figure gives the same bytes.
_VECTOR_RC = {"pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "path", "svg.hashsalt": "optui"}
_METADATA = {"pdf": {"Creator": "optui", "Producer": "optui (matplotlib)", "CreationDate": None},
             "svg": {"Creator": "optui", "Date": None}}


def save_figure(fig: Any, path: str | Path) -> Path:
    """Render to the file's type (.png at the figure's DPI, .pdf or .svg as vectors), atomically."""
    from matplotlib import rc_context

    path = Path(path)
    kind = path.suffix.lower().lstrip(".")
    if kind not in FIGURE_FORMATS:
        raise atomic.ExportError(f"{path}: figures are written as {', '.join(FIGURE_FORMATS)}, not {kind!r}")
    with _RENDER_LOCK:
        if kind == "png":
            from matplotlib.backends.backend_agg import FigureCanvasAgg

            canvas = FigureCanvasAgg(fig)
            with atomic.atomic_open(path, "wb") as handle:
                canvas.print_png(handle)
        else:
            with rc_context(_VECTOR_RC), atomic.atomic_open(path, "wb") as handle:
                fig.savefig(handle, format=kind, metadata=_METADATA[kind])
    return path
