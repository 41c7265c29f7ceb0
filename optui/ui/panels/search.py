"""Search: the preset's search spaces (editable), start and stop a random search, the trials
ranked live, and a scatter of the objective against a chosen hyperparameter."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, Label, Select, Static
from textual_plotext import PlotextPlot

from ...search import rank
from ..widgets import PanelSafeInput, FieldForm
from .replicates import count_problem

PARAM_SKIP = ("optimizer", "trial", "space", "steps", "confirm_of")



class SearchPanel(Vertical):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.trials: dict[str, dict[str, Any]] = {}  # name -> name, trial, params, status, objective
        self.objective_name = "objective"
        self.dirty = False
        self.source = ""  # what the table shows: a stored run, or the live search
        self._param_names: list[str] = []
        self._preset_trials = ""  # the trial count last taken from the preset

    def compose(self) -> ComposeResult:
        yield Static("", id="search-note", classes="note", markup=False)
        with Horizontal(id="search-top"):
            yield FieldForm(prefix="search", id="search-form",
                            empty_note="this preset has no [search.*] space")
            yield DataTable(id="search-trials", cursor_type="row")
        with Horizontal(id="search-controls"):
            yield Select([], prompt="space", id="search-space", compact=True)
            yield Label(" trials ")
            yield PanelSafeInput("", id="search-count", type="integer", compact=True)
            yield Select([], prompt="stored search", id="search-run", compact=True)
            yield Select([], prompt="x axis", id="search-param", compact=True)
        yield PlotextPlot(id="search-plot")

    def on_mount(self) -> None:
        self.query_one("#search-trials", DataTable).add_columns("#", "trial", "objective", "status", "params")
        self.set_interval(0.25, self._replot)
        self.dirty = True

    def set_note(self, text: str) -> None:
        self.query_one("#search-note", Static).update(text)

    # -- the space to run ---------------------------------------------------------------------
    def set_spaces(self, study) -> None:
        spaces = list(study.search) if study is not None and study.search else []
        select = self.query_one("#search-space", Select)
        current = select.value
        select.set_options([(s, s) for s in spaces])
        if spaces:
            select.value = current if current in spaces else spaces[0]
            count = self.query_one("#search-count", Input)
            if count.value in ("", self._preset_trials):  # the user's own count stays
                self._preset_trials = count.value = str(study.search[select.value].trials)

    def chosen_space(self) -> str | None:
        value = self.query_one("#search-space", Select).value
        return value if isinstance(value, str) else None

    def trial_count(self) -> str:
        return self.query_one("#search-count", Input).value.strip()

    def trials_requested(self) -> tuple[int, str | None]:
        """(the trial count, None) or (0, why it cannot run)."""
        text = self.trial_count()
        problem = count_problem("trials", text)
        self.query_one("#search-count", Input).set_class(problem is not None, "-invalid")
        return (0, problem) if problem else (int(text), None)

    # -- stored runs --------------------------------------------------------------------------
    def set_stored_runs(self, options: list[tuple[str, str]]) -> None:
        select = self.query_one("#search-run", Select)
        current = select.value
        with self.prevent(Select.Changed):
            select.set_options(options)
            values = [v for _, v in options]
            if current in values:
                select.value = current

    def show_choice(self, run_id: str) -> None:
        select = self.query_one("#search-run", Select)
        with self.prevent(Select.Changed):
            try:
                select.value = run_id
            except Exception:  # not among the options (yet)
                pass

    def chosen_run(self) -> str | None:
        value = self.query_one("#search-run", Select).value
        return value if isinstance(value, str) else None

    # -- trials -------------------------------------------------------------------------------
    def show_trials(self, rows: list[dict[str, Any]], source: str, objective_name: str = "objective") -> None:
        self.trials = {r["name"]: dict(r) for r in rows}
        self.source = source
        self.objective_name = objective_name
        self.refresh_table()

    def update_trial(self, name: str, **changes: Any) -> None:
        self.trials.setdefault(name, {"name": name, "params": {}, "trial": len(self.trials) + 1})
        self.trials[name].update(changes)

    def ranked(self) -> list[dict[str, Any]]:
        return rank(list(self.trials.values()))

    def refresh_table(self) -> None:
        table = self.query_one("#search-trials", DataTable)
        table.clear()
        n = 0
        for t in self.ranked():
            obj = t.get("objective")
            if obj is not None:
                n += 1
            items = sorted((t.get("params") or {}).items(), key=lambda kv: kv[0] == "batch_size")
            params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                              for k, v in items if k not in PARAM_SKIP)  # batch size last: often fixed
            table.add_row(str(n) if obj is not None else "-", t["name"],
                          f"{obj:.4g}" if obj is not None else "-", t.get("status", ""), params)
        names = sorted({k for t in self.trials.values() for k, v in (t.get("params") or {}).items()
                        if k not in PARAM_SKIP and isinstance(v, (int, float)) and not isinstance(v, bool)})
        select = self.query_one("#search-param", Select)
        current = select.value
        if names != self._param_names:
            self._param_names = names
            select.set_options([(k, k) for k in names])
            if names:
                select.value = current if current in names else self._most_varied(names)
        self.dirty = True

    def _most_varied(self, names: list[str]) -> str:
        """The hyperparameter with the most distinct values: the one the search explored."""
        def distinct(name):
            return len({t["params"].get(name) for t in self.trials.values() if t.get("params")})
        return max(names, key=distinct)

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "search-param":
            event.stop()
            self.dirty = True

    def scored_points(self, param: str) -> list[tuple[float, float]]:
        return [(float(t["params"][param]), float(t["objective"])) for t in self.trials.values()
                if t.get("objective") is not None and isinstance((t.get("params") or {}).get(param), (int, float))]

    def _replot(self) -> None:
        if not self.dirty or not self.display:
            return
        self.dirty = False
        plot = self.query_one("#search-plot", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        param = self.query_one("#search-param", Select).value
        points = self.scored_points(param) if isinstance(param, str) else []
        if points:
            xs, ys = zip(*points)
            log_x = all(x > 0 for x in xs) and max(xs) / min(xs) > 20  # spans decades: log axis
            xs = [math.log10(x) for x in xs] if log_x else list(xs)
            plt.scatter(xs, list(ys), marker="dot", color="orange+")
            plt.xlabel(f"log10 {param}" if log_x else param)
            plt.ylabel(self.objective_name)
            best = int(np.argmin(ys))
            plt.scatter([xs[best]], [ys[best]], marker="x", color="green+", label="best")
            plt.title(f"{self.objective_name} vs {param} ({len(points)} scored)")
        else:
            plt.title("no scored trials yet")
        plot.refresh()
