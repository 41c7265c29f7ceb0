"""Loss bands drawn with plotext: a mean line and thin min/max lines per config, log10 of the loss.

plotext has no fill_between, so a band is its two edges drawn as dotted lines in the config's
colour. Curves are binned to about the plot's width first: the terminal cannot show more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..export.figures import bin_for_drawing
from ..stats import band, metric_curve

COLOURS = ("blue+", "orange+", "green+", "red+", "magenta+", "cyan+", "yellow+", "gray")
METRIC_NAMES = {"minibatch_loss": "minibatch", "train_loss": "train", "test_loss": "test"}


@dataclass
class Series:
    label: str
    x: np.ndarray  # % of the run
    centre: np.ndarray  # log10 loss
    lo: np.ndarray
    hi: np.ndarray
    dashed: bool = False


def series_for(unit, metric: str, label: str, band_kind: str = "minmax", points: int = 80,
               dashed: bool = False) -> Series | None:
    """A unit's band for one metric, binned to `points` and in log10; None without data."""
    curve = metric_curve(unit, metric)
    if curve is None:
        return None
    x, values = curve
    mid, lo, hi = band(values, band_kind)
    x, mid, lo, hi = bin_for_drawing(x, mid, lo, hi, max(points, 10))
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = [np.log10(np.clip(a, 1e-30, None)) for a in (mid, lo, hi)]
    return Series(label, x, *logs, dashed=dashed)


def unit_series(unit, metric: str, label: str, band_kind: str, points: int) -> list[Series]:
    """train_test gives two series (train, then test) for one unit."""
    if metric == "train_test":
        out = [series_for(unit, "train_loss", f"{label} train", band_kind, points),
               series_for(unit, "test_loss", f"{label} test", band_kind, points, dashed=True)]
        return [s for s in out if s is not None]
    s = series_for(unit, metric, label, band_kind, points)
    return [s] if s is not None else []


def draw(plt, series: list[list[Series]], title: str, empty_note: str = "no data yet",
         height: int = 0) -> None:
    """Replot everything: series grouped per config (one colour per group). With the plot's
    height, the top rows are kept free for plotext's legend (always drawn top left)."""
    plt.clear_data()
    plt.clear_figure()
    plt.title(title)
    plt.xlabel("% of run")
    plt.ylabel("log10 loss")
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
