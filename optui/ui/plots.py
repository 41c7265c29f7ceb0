"""Bands drawn with plotext: a mean line and thin min/max lines per config; log10 of a loss, an
accuracy (or any metric a workload declares as not a loss) as it is.

plotext has no fill_between, so a band is its two edges drawn as dotted lines in the config's
colour. Curves are binned to about the plot's width first: the terminal cannot show more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import metrics as metric_decls
from ..export.figures import bin_for_drawing
from ..stats import band, metric_curve

COLOURS = ("blue+", "orange+", "green+", "red+", "magenta+", "cyan+", "yellow+", "gray")


@dataclass
class Series:
    label: str
    x: np.ndarray  # % of the run
    centre: np.ndarray  # log10 of a loss; other metrics as they are
    lo: np.ndarray
    hi: np.ndarray
    dashed: bool = False


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
        return Series(label, x, mid, lo, hi, dashed=dashed)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = [np.log10(np.clip(a, 1e-30, None)) for a in (mid, lo, hi)]
    return Series(label, x, *logs, dashed=dashed)


def is_log(metric: str, declared=()) -> bool:
    """Losses (the minibatch loss, train_test, declared losses) are drawn in log10."""
    return metric in metric_decls.RESERVED or metric_decls.find(declared, metric).log_scale


def y_label(metric: str, declared=()) -> str:
    return "log10 loss" if is_log(metric, declared) else metric_decls.label(declared, metric)


def unit_series(unit, metric: str, label: str, band_kind: str, points: int, declared=()) -> list[Series]:
    """A unit's series for a metric; train_test gives two (train, then test) for one unit.

    declared: the workload's metric declarations (optui.metrics.Metric), for the train and test
    losses of train_test and for which metrics are drawn in log10; names are inferred without.
    """
    if metric == metric_decls.TRAIN_TEST:
        pair = metric_decls.train_test_pair(declared) or (metric_decls.infer("train_loss"),
                                                           metric_decls.infer("test_loss"))
        out = [series_for(unit, pair[0].name, f"{label} train", band_kind, points),
               series_for(unit, pair[1].name, f"{label} test", band_kind, points, dashed=True)]
        return [s for s in out if s is not None]
    s = series_for(unit, metric, label, band_kind, points, log=is_log(metric, declared))
    return [s] if s is not None else []


def draw(plt, series: list[list[Series]], title: str, empty_note: str = "no data yet",
         height: int = 0, ylabel: str = "log10 loss") -> None:
    """Replot everything: series grouped per config (one colour per group). With the plot's
    height, the top rows are kept free for plotext's legend (always drawn top left)."""
    plt.clear_data()
    plt.clear_figure()
    plt.title(title)
    plt.xlabel("% of run")
    plt.ylabel(ylabel)
    plt.xlim(0, 100)
    drawn, top, bottom = 0, -np.inf, np.inf
    for i, group in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        for s in group:
            ok = np.isfinite(s.centre) & np.isfinite(s.lo) & np.isfinite(s.hi)
            if not ok.any():
                continue
            x = s.x[ok].tolist()
            plt.plot(x, s.lo[ok].tolist(), color=colour, marker="dot")
            plt.plot(x, s.hi[ok].tolist(), color=colour, marker="dot")
            plt.plot(x, s.centre[ok].tolist(), color=colour, marker="hd" if s.dashed else "braille",
                     label=s.label)
            drawn += 1
            top = max(top, float(s.hi[ok].max()), float(s.centre[ok].max()))
            bottom = min(bottom, float(s.lo[ok].min()), float(s.centre[ok].min()))
    if not drawn:
        plt.title(f"{title}: {empty_note}")
    elif height:
        _legend_room(plt, bottom, top, drawn, height)


def _legend_room(plt, bottom: float, top: float, labels: int, height: int) -> None:
    """Raise the y range so the legend's rows sit above the curves: losses fall, so the
    curves start in the top left corner, right where plotext puts the legend."""
    canvas = height - 5  # title, x label, two axis lines and the tick labels
    if canvas - labels < 3:
        return  # too small to spare the rows: let the legend overlap
    span = top - bottom if top > bottom else max(abs(top), 1.0) * 0.1
    plt.ylim(bottom, top + span * (labels + 0.5) / (canvas - labels))
