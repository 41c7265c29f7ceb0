"""Search: the preset's search spaces (editable), the sampler and pruner to run with, start and
stop a search, the trials ranked live, and a scatter of the objective against a hyperparameter,
or the best objective so far against examples trained. The panel owns its actions on the shown
search: its best config, writing it into the preset, confirming the best trials."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Input, Label, Select, Static
from textual_plotext import PlotextPlot

from ...errors import OptuiError
from ...export import search_progress
from ...search import rank
from ...search_space import PRUNERS, SAMPLERS
from .. import jobs
from ..widgets import FieldForm, PanelSafeInput
from .replicates import count_problem
from .search_view import (HISTORY_AXIS, PARAM_SKIP, draw_scatter, fmt, most_varied, numeric_params,  # noqa: F401
                          objective_goal, scored_points, trials_of, varied_params)

NONE = ""  # the value of a list's "nothing to choose" entry (a Select must never be blank)


class SearchPanel(Vertical):
    BINDINGS = [Binding("w", "write_best", "Write best", show=False),
                Binding("c", "confirm", "Confirm", show=False),
                Binding("t", "toggle_table", "Chart/table", show=False)]
    KEYS = [("ctrl+r", "run the chosen space with the sampler, pruner and trial count shown"),
            ("ctrl+t", "stop after the current chunk"),
            ("w", "write the best config into the open preset as [configs.<space>-searched]"),
            ("c", "confirm: re-run the top K trials with R fresh replicates (fields 'top', '×')"),
            ("space / stored", "the space to run; the table shows that space's newest search of this study "
                               "(or the one chosen in 'stored')"),
            ("x axis", "the scatter's parameter, or examples trained"),
            ("table", "trials ranked by the objective, a column per parameter the search varied"),
            ("t", "at 24 rows or fewer: the whole table instead of the chart, and back")]

    class Confirm(Message):
        def __init__(self, run_id: str, top: int, replicates: int) -> None:
            super().__init__()
            self.run_id = run_id
            self.top = top
            self.replicates = replicates

    class BestWritten(Message):
        """The best config was written into the preset file: the editor re-reads it."""

        def __init__(self, text: str, path: Path) -> None:
            super().__init__()
            self.text = text
            self.path = path

    class _Best(Message):
        def __init__(self, run_id: str, text: str) -> None:
            super().__init__()
            self.run_id = run_id
            self.text = text

    def __init__(self, root: Path | None = None, runs=None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.root = root or Path.cwd()
        self.runs = runs  # the runs model
        self.study = None
        self.preset_path: Path | None = None
        self.trials: dict[str, dict[str, Any]] = {}  # name -> name, trial, params, status, objective
        self.objective_name = "objective"
        self.dirty = False
        self.source = ""  # what the table shows: a stored run id, or "live"
        self.strategy = "random"  # the shown search's sampler (+ pruner)
        self.scales: dict[str, str] = {}  # parameter -> how the space draws it (log, uniform)
        self._param_names: list[str] = []
        self._table_params: list[str] = []
        self._preset_trials = ""  # the trial count last taken from the preset
        self._goals: dict[str, str] = {}  # objective -> "min" | "max", from the preset's spaces

    def compose(self) -> ComposeResult:
        with Horizontal(id="search-top"):
            yield FieldForm(prefix="search", id="search-form", empty_note="this preset has no [search.*] space")
            yield DataTable(id="search-trials", cursor_type="row")
        with Horizontal(id="search-controls"):
            yield Select([("(no space)", NONE)], value=NONE, allow_blank=False, id="search-space", compact=True)
            yield Select([(s, s) for s in SAMPLERS], value="random", allow_blank=False, id="search-sampler",
                         compact=True, tooltip="sampler")
            yield Select([(f"prune:{p}", p) for p in PRUNERS], value="none", allow_blank=False,
                         id="search-pruner", compact=True, tooltip="pruner")
            yield Label(" trials ")
            yield PanelSafeInput("", id="search-count", type="integer", compact=True)
        with Horizontal(id="search-controls2"):
            yield Select([("(no stored search)", NONE)], value=NONE, allow_blank=False, id="search-run",
                         compact=True)
            yield Select([("(x axis)", NONE)], value=NONE, allow_blank=False, id="search-param", compact=True)
        yield Static("", id="search-best", markup=False)
        with Horizontal(id="search-decide"):
            yield Label("c: confirm top ")
            yield PanelSafeInput("3", id="search-top-k", type="integer", compact=True)
            yield Label(" × ")
            yield PanelSafeInput("5", id="search-reps", type="integer", compact=True)
            yield Label(" replicates · w: write best")
        yield PlotextPlot(id="search-plot")

    def on_mount(self) -> None:
        # The parameters' columns (refresh_table) come before status and name: at 80 columns they
        # are what the user came to read.
        self.query_one("#search-trials", DataTable).add_columns("#", "objective", "status", "trial")
        self.set_interval(0.25, self._replot)
        self.dirty = True

    def on_show(self) -> None:
        self.dirty = True

    def action_toggle_table(self) -> None:
        self.toggle_class("-table")
        self.dirty = True

    def _value(self, select_id: str) -> str | None:
        value = self.query_one(select_id, Select).value
        return value if isinstance(value, str) and value != NONE else None

    # -- the space to run ---------------------------------------------------------------------
    def set_study(self, study, path: Path | None = None, live: bool = False) -> None:
        """The open preset's study: its spaces (the chosen one kept), the preset's sampler and pruner."""
        changed_study = self.study is None or study is None or self.study.name != study.name
        self.study, self.preset_path = study, path
        spaces = list(study.search) if study is not None and study.search else []
        self._goals.update({s.objective: s.goal for s in (study.search.values() if spaces else ())})
        select = self.query_one("#search-space", Select)
        current = self._value("#search-space")
        with self.prevent(Select.Changed):
            select.set_options([(s, s) for s in spaces] or [("(no space)", NONE)])
            select.value = current if current in spaces else (spaces[0] if spaces else NONE)
        self._space_chosen(reset_strategy=True)
        if spaces:
            count = self.query_one("#search-count", Input)
            if count.value in ("", self._preset_trials):  # the user's own count stays
                self._preset_trials = count.value = str(study.search[select.value].trials)
        self.runs_changed(live, force=changed_study)  # its best config now reads against this preset

    def _space_chosen(self, reset_strategy: bool) -> None:
        space = self.chosen_space()
        sp = self.study.search[space] if self.study is not None and space else None
        self.scales = {k: iv.scale for k, iv in sp.intervals.items()} if sp is not None else {}
        if sp is not None and reset_strategy:
            with self.prevent(Select.Changed):
                self.query_one("#search-sampler", Select).value = sp.sampler
                self.query_one("#search-pruner", Select).value = sp.pruner

    def chosen_space(self) -> str | None:
        return self._value("#search-space")

    def trial_count(self) -> str:
        return self.query_one("#search-count", Input).value.strip()

    def trials_requested(self) -> tuple[int, str | None]:
        """(the trial count, None) or (0, why it cannot run)."""
        text = self.trial_count()
        problem = count_problem("trials", text)
        self.query_one("#search-count", Input).set_class(problem is not None, "-invalid")
        return (0, problem) if problem else (int(text), None)

    def strategy_chosen(self) -> tuple[str, str]:
        return (self._value("#search-sampler") or "random", self._value("#search-pruner") or "none")

    def describe_run(self) -> str:
        """What ctrl+r here would run, as the palette says it."""
        space = self.chosen_space()
        if space is None:
            return "Open a preset with a [search.*] space first"
        sampler, pruner = self.strategy_chosen()
        pruned = "" if pruner == "none" else f", {pruner} pruning"
        return f"Start a {sampler} search of space {space!r}: {self.trial_count() or '?'} trials{pruned}"

    def request(self, study):
        """The search to run (the study with the chosen sampler and pruner), or None with a notice."""
        from ..runner import RunRequest

        space = self.chosen_space()
        if not study.search or space not in study.search:
            self.app.notify("the preset has no [search.*] space to run; add one in Presets", severity="error")
            return None
        trials, problem = self.trials_requested()
        if problem:
            self.app.notify(problem, title="not started", severity="error")
            return None
        sampler, pruner = self.strategy_chosen()
        chosen = dataclasses.replace(study.search[space], sampler=sampler, pruner=pruner)
        study = dataclasses.replace(study, search={**study.search, space: chosen})
        return RunRequest("search", study=study, space=space, count=trials)

    # -- stored searches ----------------------------------------------------------------------
    def runs_changed(self, live: bool = False, force: bool = False) -> None:
        """The store changed: offer this study's searches of the chosen space; show the chosen
        one, else the newest (a live search keeps the table)."""
        if self.runs is None:
            return
        study = self.study.name if self.study is not None else None
        searches = self.runs.searches(study, self.chosen_space())
        select = self.query_one("#search-run", Select)
        current = self._value("#search-run")
        options = [(f"{self.runs.label(r['id'])} {r['status']}", r["id"]) for r in searches]
        with self.prevent(Select.Changed):
            select.set_options(options or [("(no stored search)", NONE)])
            ids = [v for _, v in options]
            select.value = current if current in ids else (ids[0] if ids else NONE)
        if live:
            return
        chosen = self._value("#search-run")
        if chosen is None:
            self.show_trials([], "", "objective")
            self.show_best(f"no search of space {self.chosen_space()!r} in {study} yet: ctrl+r runs one"
                           if self.chosen_space() else "")
        elif force or chosen != self.source or (self.runs.info(chosen) or {}).get("status") != "done":
            self.show_run(chosen)

    def show_run(self, run_id: str) -> None:
        """A stored search in the table, the scatter and the best line."""
        from ...search import rank_trials

        store = self.runs.store if self.runs is not None else None
        if store is None:
            return
        try:
            rows = rank_trials(store, run_id)
            info = store.run_info(run_id)
        except OptuiError as exc:
            self.app.notify(str(exc), title="run store", severity="error")
            return
        space_name = info["meta"].get("space_name", "")
        if space_name and space_name != self.chosen_space():
            select = self.query_one("#search-space", Select)
            if any(v == space_name for _, v in select._options):
                with self.prevent(Select.Changed):
                    select.value = space_name
                self._space_chosen(reset_strategy=True)
        self.show_trials(rows, run_id, (info["meta"].get("space") or {}).get("objective", "objective"), info["meta"])
        select = self.query_one("#search-run", Select)
        with self.prevent(Select.Changed):
            if any(v == run_id for _, v in select._options):
                select.value = run_id
        self.show_best("best: …")
        self._find_best(run_id, self.study)

    @work(thread=True, exclusive=True, group="best", exit_on_error=False)
    def _find_best(self, run_id: str, study) -> None:
        with jobs.reported(self.post_message, "best config"):
            self.post_message(self._Best(run_id, jobs.describe_best(self.root, run_id, study)))

    def on_search_panel__best(self, message: _Best) -> None:
        message.stop()
        if self.source == message.run_id:
            self.show_best(message.text)

    def chosen_run(self) -> str | None:
        return self._value("#search-run")

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

    def show_progress(self, progress, live: bool = True) -> None:
        """A live search's progress (folded by optui.progress.reduce)."""
        sampler, pruner = self.strategy_chosen()
        self.show_trials(trials_of(progress), "live", progress.objective or self.objective_name,
                         {"space": {"sampler": sampler, "pruner": pruner}})

    @property
    def goal(self) -> str:
        return objective_goal(self.objective_name, self._goals)

    def ranked(self) -> list[dict[str, Any]]:
        return rank(list(self.trials.values()), self.goal)

    def refresh_table(self) -> None:
        table = self.query_one("#search-trials", DataTable)
        table.clear()
        trials = list(self.trials.values())
        varied = varied_params(trials)
        if varied != self._table_params:  # a column per varied parameter, named by it
            self._table_params = varied
            table.clear(columns=True)
            table.add_columns("#", "objective", *varied, "status", "trial")
        n = 0
        for t in self.ranked():
            obj = t.get("objective")
            n += obj is not None
            given = t.get("params") or {}
            table.add_row(str(n) if obj is not None else "-", f"{obj:.4g}" if obj is not None else "-",
                          *[fmt(given[k]) if k in given else "-" for k in varied], t.get("status", ""), t["name"])
        names = numeric_params(trials)
        if names != self._param_names:
            self._param_names = names
            select = self.query_one("#search-param", Select)
            current = select.value
            with self.prevent(Select.Changed):
                select.set_options([(k, k) for k in names] or [("(x axis)", NONE)])
                select.value = (current if current in names else most_varied(trials, names)) if names else NONE
        self.dirty = True

    def show_best(self, text: str) -> None:
        self.query_one("#search-best", Static).update(text)

    # -- actions on the shown search ------------------------------------------------------------
    def _shown_run(self) -> str | None:
        run_id = self.chosen_run()
        if not run_id:
            self.app.notify("choose a stored search run in the Search panel first", severity="warning")
        return run_id

    def action_confirm(self) -> None:
        """c: re-run the top K trials of the shown search with R replicates (the fields' values)."""
        run_id = self._shown_run()
        if run_id is None:
            return
        values = []
        for field_id, name in (("#search-top-k", "top"), ("#search-reps", "replicates")):
            text = self.query_one(field_id, Input).value.strip()
            problem = count_problem(name, text)
            if problem:
                self.app.notify(problem, title="not started", severity="error")
                return
            values.append(int(text))
        self.post_message(self.Confirm(run_id, *values))

    def action_write_best(self) -> None:
        """w: write the shown search's best config into the open preset file (comments kept)."""
        run_id = self._shown_run()
        if run_id is None:
            return
        editor = self.app.query_one("PresetEditor")
        if editor.dirty:
            self.app.notify(f"{editor.doc.file} has unsaved edits: save them (ctrl+s) first; writing the best "
                            f"config rewrites the file", title="write best", severity="error")
            return
        study = editor.current_study()
        if study is not None:
            self._write_best(run_id, study, editor.doc.path)

    @work(thread=True, exclusive=True, group="write", exit_on_error=False)
    def _write_best(self, run_id: str, study, path: Path) -> None:
        with jobs.reported(self.post_message, "write best"):
            self.post_message(self.BestWritten(jobs.write_best_in_thread(self.root, run_id, study, path), path))

    def on_search_panel_best_written(self, message: BestWritten) -> None:
        self.app.notify(message.text, title="write best")
        self.show_best(message.text)  # the message goes on to the app: the editor re-reads the file

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.select.id == "search-space":
            self._space_chosen(reset_strategy=True)
            self.runs_changed(self.source == "live")
        elif event.select.id == "search-run" and self.chosen_run() and self.source != "live":
            self.show_run(self.chosen_run())
        self.dirty = True

    def scored_points(self, param: str) -> list[tuple[float, float]]:
        return scored_points(list(self.trials.values()), param)

    def _draw_scatter(self, plt, param: str | None) -> None:
        draw_scatter(plt, list(self.trials.values()), param, self.scales, self.objective_name, self.goal,
                     self.strategy)

    def _replot(self) -> None:
        if not self.dirty or not self.display:
            return
        self.dirty = False
        plot = self.query_one("#search-plot", PlotextPlot)
        self._draw_scatter(plot.plt, self._value("#search-param"))
        plot.refresh()
