"""Search: the preset's search spaces, stored search runs ranked by objective, and a scatter."""

from __future__ import annotations

import numpy as np
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Select, Static
from textual_plotext import PlotextPlot

from ...stats import final_values
from ..widgets import FieldForm


def trial_objective(unit, objective: str = "final_train_loss") -> float:
    """A trial's score: what the search recorded, else the mean final value of the metric."""
    for key in ("objective", "score"):
        value = unit.extra.get(key) if isinstance(unit.extra, dict) else None
        if isinstance(value, (int, float)):
            return float(value)
    metric = objective.removeprefix("final_")
    finals = final_values(unit, metric)
    if finals is None:
        return float("nan")
    finals = finals[np.isfinite(finals)]
    return float(finals.mean()) if finals.size else float("nan")


class SearchPanel(Vertical):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.trials: list[tuple[str, dict, float, str]] = []  # name, spec, objective, status
        self.dirty = False

    def compose(self) -> ComposeResult:
        yield Static("", id="search-note", classes="note")
        with Horizontal(id="search-top"):
            yield FieldForm(prefix="search", id="search-form",
                            empty_note="this preset has no [search.*] space")
            yield DataTable(id="search-trials", cursor_type="row")
        with Horizontal(id="search-bottom"):
            yield Select([], prompt="hyperparameter", id="search-param", compact=True)
        yield PlotextPlot(id="search-plot")

    def on_mount(self) -> None:
        self.query_one("#search-trials", DataTable).add_columns("#", "trial", "objective", "status", "params")
        self.set_interval(0.25, self._replot)

    def set_note(self, text: str) -> None:
        self.query_one("#search-note", Static).update(text)

    def show_trials(self, trials: list[tuple[str, dict, float, str]]) -> None:
        """Trials ranked best first; diverged or unfinished trials (NaN objective) go last."""
        self.trials = sorted(trials, key=lambda t: (not np.isfinite(t[2]), t[2]))
        table = self.query_one("#search-trials", DataTable)
        table.clear()
        for rank, (name, spec, score, status) in enumerate(self.trials, start=1):
            params = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                              for k, v in spec.items() if k != "steps")
            table.add_row(str(rank), name, f"{score:.4g}" if np.isfinite(score) else "-", status, params)
        numeric = sorted({k for _, spec, _, _ in self.trials for k, v in spec.items()
                          if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "steps"})
        select = self.query_one("#search-param", Select)
        current = select.value
        select.set_options([(k, k) for k in numeric])
        if numeric:
            select.value = current if current in numeric else numeric[0]
        self.dirty = True

    def on_select_changed(self, event: Select.Changed) -> None:
        self.dirty = True

    def _replot(self) -> None:
        if not self.dirty or not self.display:
            return
        self.dirty = False
        plot = self.query_one("#search-plot", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        param = self.query_one("#search-param", Select).value
        points = [(spec.get(param), score) for _, spec, score, _ in self.trials
                  if isinstance(spec.get(param), (int, float)) and np.isfinite(score)]
        if points and isinstance(param, str):
            xs, ys = zip(*points)
            positive = all(x > 0 for x in xs)
            xs = [float(np.log10(x)) for x in xs] if positive else list(map(float, xs))
            plt.scatter(xs, list(ys), marker="dot", color="orange+")
            plt.xlabel(f"log10 {param}" if positive else param)
            plt.ylabel("objective")
            plt.title(f"objective vs {param}")
        else:
            plt.title("no scored trials to plot")
        plot.refresh()
