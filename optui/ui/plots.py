"""Bands drawn with plotext at terminal size: per config a filled band (min-max or the chosen
kind) with its mean line over it; a loss on a log axis whose ticks read as loss values, an
accuracy (or any metric a workload declares as not a loss) on a linear one.

Curves are binned to one point per character column first (the bin's mean of the centre, its
lowest lo and highest hi, so binning never narrows the band). plotext has no fill_between: a band
is one zigzag series (lo, hi, hi, lo, ...) across adjacent columns, which fills every cell between
its edges. No legend is drawn inside the plot, where it would hide data: `legend` gives the
line of coloured names shown under it.

Without colour (NO_COLOR, a monochrome terminal) the configs still read apart: each mean line
has its own marker (•, +, x, o, ...), a test curve is dotted, and a band narrower than a cell
(which would only speckle the line) is left out. The y axis has at least four labels, the
lowest and highest values drawn among them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from rich.text import Text

from ..results import metrics as metric_decls
from ..export.figures import bin_for_drawing
from ..results.stats import band, metric_curve

# (line, band) as xterm-256 colour numbers: plotext and Rich show the same colour from them.
PALETTE = ((39, 24), (214, 130), (46, 28), (203, 88), (207, 90), (51, 30), (226, 100), (250, 239))
BAND_MARKER = "█"
LINE_MARKERS = ("•", "+", "x", "o", "*", "#", "%", "@")  # one per config: lines read apart without colour


@dataclass
class Series:
    label: str
    x: np.ndarray  # % of the run
    centre: np.ndarray  # log10 of a loss; other metrics as they are
    lo: np.ndarray
    hi: np.ndarray
    dashed: bool = False
    log: bool = True


def series_for(unit, metric: str, label: str, band_kind: str = "minmax", points: int = 80,
               dashed: bool = False, log: bool = True) -> Series | None:
    """A unit's band for one metric, binned to `points` (in log10 with log); None without data."""
    curve = metric_curve(unit, metric)
    if curve is None:
        return None
    x, values = curve
    mid, lo, hi = band(values, band_kind)
    x, mid, lo, hi = bin_for_drawing(x, mid, lo, hi, max(points, 10))
    if not log:
        return Series(label, x, mid, lo, hi, dashed=dashed, log=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = [np.log10(np.clip(a, 1e-30, None)) for a in (mid, lo, hi)]
    return Series(label, x, *logs, dashed=dashed)


NO_METRICS = metric_decls.RunMetrics((), None)  # before a preset or a run says which metrics exist


def is_log(metric: str, metrics: metric_decls.RunMetrics = NO_METRICS) -> bool:
    """Losses (the minibatch loss, train vs test, declared losses) are drawn on a log axis."""
    if metric == metric_decls.TRAIN_TEST:
        return metrics.train_test is None or metrics.train_test[1].log_scale
    return metric == metric_decls.MINIBATCH or metrics.get(metric).log_scale


def y_label(metric: str, metrics: metric_decls.RunMetrics = NO_METRICS) -> str:
    return "loss (log)" if is_log(metric, metrics) else metrics.label(metric)


def unit_series(unit, metric: str, label: str, band_kind: str, points: int,
                metrics: metric_decls.RunMetrics = NO_METRICS) -> list[Series]:
    """A unit's series for a metric; train vs test gives two (train, then test) for one unit.

    metrics: the run's metrics (optui.results.metrics.RunMetrics): its train/test pair, and which
    metrics are drawn on a log axis.
    """
    if metric == metric_decls.TRAIN_TEST:
        if metrics.train_test is None:
            return []
        train, test = metrics.train_test
        out = [series_for(unit, train.name, f"{label} {train.split or train.label}", band_kind, points,
                          log=train.log_scale),
               series_for(unit, test.name, f"{label} {test.split or test.label}", band_kind, points, dashed=True,
                          log=test.log_scale)]
        return [s for s in out if s is not None]
    s = series_for(unit, metric, label, band_kind, points, log=is_log(metric, metrics))
    return [s] if s is not None else []


def zigzag(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, columns: int = 0) -> tuple[list[float], list[float]]:
    """One path through (x, lo), (x, hi), (next x, hi), (next x, lo), ...: drawn with lines, it
    covers every cell between the edges. With the plot's width in columns, a short curve is first
    interpolated to one point per column, so wide columns leave no gaps in the band."""
    if columns and x.size > 1:
        n = 2 * int(columns * (x[-1] - x[0]) / 100) + 1  # twice: the canvas is a little wider than asked
        if n > x.size:
            grid = np.linspace(x[0], x[-1], n)
            x, lo, hi = grid, np.interp(grid, x, lo), np.interp(grid, x, hi)
    xs, ys = [], []
    for i, (xi, a, b) in enumerate(zip(x.tolist(), lo.tolist(), hi.tolist())):
        first, second = (a, b) if i % 2 == 0 else (b, a)
        xs += [xi, xi]
        ys += [first, second]
    return xs, ys


def log_ticks(bottom: float, top: float, most: int = 5) -> tuple[list[float], list[str]]:
    """Tick positions in log10 units and their labels as loss values (0.5, 1, 2, 5...)."""
    if not (math.isfinite(bottom) and math.isfinite(top)):
        return [], []
    if top - bottom < 1e-9:
        top, bottom = top + 0.05, bottom - 0.05
    for mantissas in ((1,), (1, 3), (1, 2, 5), (1, 1.5, 2, 3, 5, 7)):
        ticks = [math.log10(m) + e for e in range(math.floor(bottom) - 1, math.ceil(top) + 1)
                 for m in mantissas]
        ticks = [t for t in ticks if bottom <= t <= top]
        if len(ticks) >= 3:
            break
    if len(ticks) < 2:  # a narrow range: evenly spaced values
        ticks = np.linspace(bottom, top, 4).tolist()
    while len(ticks) > most:
        ticks = ticks[::2]
    return ticks, [f"{10 ** t:.3g}" for t in ticks]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each run of True in mask, end exclusive."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def y_ticks(bottom: float, top: float, rows: int = 0, log: bool = True) -> tuple[list[float], list[str]]:
    """At least four ticks (rows allowing) with the lowest and highest values drawn among them,
    labelled as values (a log axis in loss values, not log10 units); no two on the same row."""
    if not (math.isfinite(bottom) and math.isfinite(top)):
        return [], []
    if top - bottom < 1e-12:
        top, bottom = top + 0.05, bottom - 0.05
    if log:  # round values first (decades, then 2 and 5, then 3, ...), as many as fit
        low, high = math.floor(bottom) - 1, math.ceil(top) + 1
        inner = [math.log10(m) + e for ms in ((1,), (2, 5), (3,), (1.5, 7), (4, 6, 8))
                 for e in range(low, high) for m in ms]
    else:
        inner = []
    inner += np.linspace(bottom, top, 7)[1:-1].tolist()  # evenly spaced, when too few round ones fit
    inner = [t for t in inner if bottom < t < top]
    gap = (top - bottom) / max(rows - 1, 1) if rows else (top - bottom) / 12
    want = max(4, min(6, rows // 2)) if rows else 5
    chosen = [bottom, top]
    for t in inner:
        if len(chosen) >= want:
            break
        if all(abs(t - c) > gap * 1.5 for c in chosen):
            chosen.append(t)
    chosen.sort()
    fmt = (lambda t: f"{10 ** t:.3g}") if log else (lambda t: f"{t:.3g}")
    return chosen, [fmt(t) for t in chosen]


def draw(plt, series: list[list[Series]], title: str, empty_note: str = "no data yet", columns: int = 0,
         ylabel: str = "loss (log)", rows: int = 0) -> None:
    """Replot everything: series grouped per config (one colour and marker per group), bands first
    and every mean line over them. columns, rows: the plot's size in characters (bands fill it
    whole; a band under a row high is left out)."""
    plt.clear_data()
    plt.clear_figure()
    plt.title(title)
    plt.xlabel("% of run")
    plt.xlim(0, 100)
    shown = []
    for i, group in enumerate(series):
        line, fill = PALETTE[i % len(PALETTE)]
        for s in group:
            ok = np.isfinite(s.centre) & np.isfinite(s.lo) & np.isfinite(s.hi)
            if ok.any():
                shown.append((s, ok, line, fill, LINE_MARKERS[i % len(LINE_MARKERS)]))
    if not shown:
        plt.title(f"{title}: {empty_note}")
        return
    top = max(float(max(s.hi[ok].max(), s.centre[ok].max())) for s, ok, *_ in shown)
    bottom = min(float(min(s.lo[ok].min(), s.centre[ok].min())) for s, ok, *_ in shown)
    cell = (top - bottom) / rows if rows and top > bottom else 0.0
    for s, ok, _, fill, _ in shown:
        lo, hi = s.lo[ok], s.hi[ok]
        wide = (hi - lo) >= cell if cell else (hi > lo)
        x = s.x[ok]
        # Where the band is under a cell it would only speckle the line: drawn only where it is wider.
        for start, end in _runs(wide):
            part = slice(max(start - 1, 0), min(end + 1, len(x)))  # to the neighbours: no gap at its ends
            plt.plot(*zigzag(x[part], lo[part], hi[part], columns), color=fill, marker=BAND_MARKER)
    for s, ok, line, _, marker in shown:
        x, y = s.x[ok].tolist(), s.centre[ok].tolist()
        if s.dashed:  # a test curve: dotted, every other point
            plt.scatter(x[::2], y[::2], color=line, marker=marker)
        else:
            plt.plot(x, y, color=line, marker=marker)
    ticks, labels = y_ticks(bottom, top, rows, log=all(s.log for s, *_ in shown))
    if ticks:
        plt.yticks(ticks, labels)
    plt.ylabel(ylabel)


def legend(series: list[list[Series]]) -> Text:
    """The configs' names in their plot colours and markers: a dotted marker is a test curve,
    █ the band."""
    out = Text(no_wrap=False)
    for i, group in enumerate(series):
        line, fill = PALETTE[i % len(PALETTE)]
        marker = LINE_MARKERS[i % len(LINE_MARKERS)]
        for s in group:
            if out:
                out.append("  ")
            out.append(f"{marker} {marker}" if s.dashed else marker * 3, style=f"color({line})")
            out.append("█", style=f"color({fill})")
            out.append(f" {s.label}")
    return out
