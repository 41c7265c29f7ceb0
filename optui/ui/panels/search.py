"""Search: the preset's search spaces (editable), start and stop a search, the trials ranked
live, and a scatter of the objective against a chosen hyperparameter, or the best objective so
far against examples trained (with the search's sampler, pruner and examples in its title)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Input, Label, Select, Static
from textual_plotext import PlotextPlot

from ...results import metrics as metric_decls
from ...service.events import ChunkDone, UnitStarted
from ...export import search_progress
from ...search.plans import NOT_HYPERPARAMETERS
from ...search import TrialScored, TrialsPlanned, rank
from ..plots import log_ticks
from ..widgets import FieldForm, PanelSafeInput
from .replicates import count_problem

# The x-axis choice that plots the best objective so far against examples trained.
HISTORY_AXIS = "examples trained"



def objective_goal(objective: str, known: dict[str, str] | None = None) -> str:
    """'min' or 'max' for an objective name: as the preset's spaces declare it, else from the
    metric's name (final_test_accuracy: an accuracy, higher is better)."""
    if known and objective in known:
        return known[objective]
    metric = objective.removeprefix("final_").removeprefix("mean_last_")
    return metric_decls.infer(metric).goal


def fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


class SearchPanel(Vertical):
    BINDINGS = [Binding("w", "app.write_best", "Write best", show=False),
                Binding("c", "confirm", "Confirm", show=False)]
    KEYS = [("ctrl+r", "run the chosen space with the trial count (edit its ranges on the left)"),
            ("ctrl+t", "stop after the current chunk"),
            ("w", "write the best config into the open preset as [configs.<space>-searched]"),
            ("c", "confirm: re-run the top K trials with R fresh replicates (fields 'top', '×')"),
            ("stored search", "show an earlier search run; 'x axis' picks the scatter's parameter"),
            ("table", "trials ranked by the objective, a column per parameter the search varied")]

    class Confirm(Message):
        def __init__(self, top: int, replicates: int) -> None:
            super().__init__()
            self.top = top
            self.replicates = replicates

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.trials: dict[str, dict[str, Any]] = {}  # name -> name, trial, params, status, objective
        self.objective_name = "objective"
        self.dirty = False
        self.source = ""  # what the table shows: a stored run, or the live search
        self._param_names: list[str] = []
        self._preset_trials = ""  # the trial count last taken from the preset
        self._goals: dict[str, str] = {}  # objective -> "min" | "max", from the preset's spaces
        self.strategy = "random"  # the shown search's sampler (+ pruner)
        self._table_params: list[str] = []
        self.scales: dict[str, str] = {}  # parameter -> how the space draws it (log, uniform)

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
        yield Static("", id="search-best", markup=False)
        with Horizontal(id="search-decide"):
            yield Label("c: confirm top ")
            yield PanelSafeInput("3", id="search-top-k", type="integer", compact=True)
            yield Label(" with ")
            yield PanelSafeInput("5", id="search-reps", type="integer", compact=True)
            yield Label(" replicates · w: write best to preset")
        yield PlotextPlot(id="search-plot")

    def on_mount(self) -> None:
        # The parameters' columns (refresh_table) come before status and name: at 80 columns they
        # are what the user came to read.
        self.query_one("#search-trials", DataTable).add_columns("#", "objective", "status", "trial")
        self.set_interval(0.25, self._replot)
        self.dirty = True

    def set_note(self, text: str) -> None:
        self.query_one("#search-note", Static).update(text)

    # -- the space to run ---------------------------------------------------------------------
    def set_spaces(self, study) -> None:
        spaces = list(study.search) if study is not None and study.search else []
        self._goals.update({s.objective: s.goal for s in (study.search.values() if spaces else ())})
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
    def show_trials(self, rows: list[dict[str, Any]], source: str, objective_name: str = "objective",
                    meta: dict[str, Any] | None = None) -> None:
        self.trials = {r["name"]: dict(r) for r in rows}
        self.source = source
        self.strategy = search_progress.strategy_label((meta or {}).get("space") or {})
        stored_goal = ((meta or {}).get("space") or {}).get("goal")
        if stored_goal:  # the goal recorded with the run wins over what the name suggests
            self._goals[objective_name] = stored_goal
        self.objective_name = objective_name
        self.refresh_table()

    def apply_event(self, e: Any) -> None:
        """A live search's engine event: plan, progress and scores of its trials."""
        if isinstance(e, TrialsPlanned):
            self.show_trials([{"name": t["name"], "trial": t.get("trial", 0), "params": t.get("params", {}),
                               "status": t.get("status", "pending"), "objective": t.get("objective"),
                               "steps": t.get("steps"), "replicates": t.get("replicates")}
                              for t in e.trials], "live", e.objective)
        elif isinstance(e, UnitStarted):
            self.update_trial(e.unit, status="running")
            self.refresh_table()
        elif isinstance(e, ChunkDone):
            self.update_trial(e.unit, status=f"{100 * e.step_end // max(e.total_steps, 1)}%")
            self.refresh_table()
        elif isinstance(e, TrialScored):
            self.update_trial(e.unit, status=e.status, objective=e.objective, params=e.params, extra=e.extra)
            self.refresh_table()

    def update_trial(self, name: str, **changes: Any) -> None:
        self.trials.setdefault(name, {"name": name, "params": {}, "trial": len(self.trials) + 1})
        self.trials[name].update(changes)

    @property
    def goal(self) -> str:
        return objective_goal(self.objective_name, self._goals)

    def ranked(self) -> list[dict[str, Any]]:
        return rank(list(self.trials.values()), self.goal)

    def refresh_table(self) -> None:
        table = self.query_one("#search-trials", DataTable)
        table.clear()
        n = 0
        varied = self.varied_params()
        if varied != self._table_params:  # a column per varied parameter, named by it
            self._table_params = varied
            table.clear(columns=True)
            table.add_columns("#", "objective", *varied, "status", "trial")
        for t in self.ranked():
            obj = t.get("objective")
            if obj is not None:
                n += 1
            given = t.get("params") or {}
            table.add_row(str(n) if obj is not None else "-", f"{obj:.4g}" if obj is not None else "-",
                          *[fmt(given[k]) if k in given else "-" for k in varied], t.get("status", ""), t["name"])
        names = sorted({k for t in self.trials.values() for k, v in (t.get("params") or {}).items()
                        if k not in NOT_HYPERPARAMETERS and isinstance(v, (int, float)) and not isinstance(v, bool)})
        select = self.query_one("#search-param", Select)
        current = select.value
        if names:
            names.append(HISTORY_AXIS)
        if names != self._param_names:
            self._param_names = names
            select.set_options([(k, k) for k in names])
            if names:
                select.value = current if current in names else self._most_varied(names)
        self.dirty = True

    def varied_params(self) -> list[str]:
        """The hyperparameters that differ between trials (fixed ones say nothing in a table)."""
        names = sorted({k for t in self.trials.values() for k in (t.get("params") or {}) if k not in NOT_HYPERPARAMETERS},
                       key=lambda k: (k == "batch_size", k))
        varied = [k for k in names if len({repr((t.get("params") or {}).get(k)) for t in self.trials.values()}) > 1]
        return varied or names

    def show_best(self, text: str) -> None:
        self.query_one("#search-best", Static).update(text)

    def action_confirm(self) -> None:
        """c: re-run the top K trials of the shown search with R replicates (the fields' values)."""
        values = []
        for field_id, name in (("#search-top-k", "top"), ("#search-reps", "replicates")):
            text = self.query_one(field_id, Input).value.strip()
            problem = count_problem(name, text)
            if problem:
                self.app.notify(problem, title="not started", severity="error")
                return
            values.append(int(text))
        self.post_message(self.Confirm(*values))

    def _most_varied(self, names: list[str]) -> str:
        """The hyperparameter with the most distinct values: the one the search explored."""
        def distinct(name):
            return len({t["params"].get(name) for t in self.trials.values() if t.get("params")})
        return max([n for n in names if n != HISTORY_AXIS] or names, key=distinct)

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
        param = self.query_one("#search-param", Select).value
        self._draw_scatter(plot.plt, param if isinstance(param, str) else None)
        plot.refresh()

    def _draw_scatter(self, plt, param: str | None) -> None:
        """The objective against one hyperparameter; a log axis (ticks in its values) for a
        parameter the space draws on a log scale, or one spanning decades."""
        plt.clear_data()
        plt.clear_figure()
        if param == HISTORY_AXIS:
            self._plot_history(plt)
            return
        points = self.scored_points(param) if param else []
        if not points:
            plt.title("no scored trials yet")
            return
        xs, ys = zip(*points)
        log_x = all(x > 0 for x in xs) and (self.scales.get(param) == "log"
                                             or (param not in self.scales and max(xs) / min(xs) > 20))
        xs = [math.log10(x) for x in xs] if log_x else list(xs)
        plt.scatter(xs, list(ys), marker="dot", color="orange+")
        plt.xlabel(f"{param} (log)" if log_x else param)
        if log_x:
            ticks, labels = log_ticks(min(xs), max(xs))
            if ticks:
                plt.xticks(ticks, labels)
        plt.ylabel(self.objective_name)
        best = int(np.argmax(ys) if self.goal == "max" else np.argmin(ys))
        plt.scatter([xs[best]], [ys[best]], marker="x", color="green+")  # the best: no legend in the plot
        plt.title(f"{self.objective_name} vs {param} ({len(points)} scored; x: best)")

    def _plot_history(self, plt: Any) -> None:
        """Best objective so far against examples trained (log10), in the order trials were drawn."""
        trials = list(self.trials.values())
        points = [(x, y) for x, y in search_progress.history(trials, self.goal) if y is not None and x > 0]
        if not points:
            plt.title("no scored trials yet")
            return
        xs, ys = zip(*points)
        plt.plot([math.log10(x) for x in xs], list(ys), marker="dot", color="orange+")
        plt.xlabel("examples trained (log)")
        ticks, labels = log_ticks(math.log10(min(xs)), math.log10(max(xs)))
        if ticks:
            plt.xticks(ticks, labels)
        plt.ylabel(f"best {self.objective_name}")
        total = sum(search_progress.examples_trained(t) for t in trials)
        pruned = sum(t.get("status") == "pruned" for t in trials)
        plt.title(f"{self.strategy}: best so far vs examples ({total:,} examples"
                  + (f", {pruned} pruned)" if pruned else ")"))
