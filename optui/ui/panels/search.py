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
from .. import jobs
from ..screens import ask
from ..widgets import FieldForm, PanelSafeInput
from .replicates import count_problem
from .search_controls import NONE, SearchControls
from .search_view import (HISTORY_AXIS, PARAM_SKIP, draw_scatter, fill_table, fmt, most_varied, numeric_params,  # noqa: F401
                          objective_goal, trials_of, varied_params)



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
        self._param_names: list[str] = []
        self._table_params: list[str] = []
        self._goals: dict[str, str] = {}  # objective -> "min" | "max", from the preset's spaces
        self._stored: list[str] = []  # the stored searches offered

    def compose(self) -> ComposeResult:
        with Horizontal(id="search-top"):
            yield FieldForm(prefix="search", id="search-form", empty_note="this preset has no [search.*] space")
            yield DataTable(id="search-trials", cursor_type="row")
        yield SearchControls(id="search-controls")
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
        """The open preset's study: its spaces, sampler and pruner in the controls."""
        changed_study = self.study is None or study is None or self.study.name != study.name
        self.study, self.preset_path = study, path
        self._goals.update({s.objective: s.goal for s in (study.search or {}).values()} if study else {})
        self.controls.set_study(study)
        self.runs_changed(live, force=changed_study)  # its best config now reads against this preset

    @property
    def controls(self) -> SearchControls:
        return self.query_one(SearchControls)

    def scales(self) -> dict[str, str]:
        """Parameter -> how the chosen space draws it (log, uniform): the scatter's axis."""
        space = self.chosen_space()
        sp = self.study.search.get(space) if self.study is not None and self.study.search and space else None
        return {k: iv.scale for k, iv in sp.intervals.items()} if sp is not None else {}

    def chosen_space(self) -> str | None:
        return self.controls.space

    def strategy_chosen(self) -> tuple[str, str]:
        return self.controls.strategy

    def describe_run(self) -> str:
        return self.controls.describe()

    def on_search_controls_space_chosen(self, message: SearchControls.SpaceChosen) -> None:
        message.stop()
        self.runs_changed(self.source == "live")
        self.dirty = True

    def request(self, study):
        """The search to run (the study with the chosen sampler and pruner), or None with a notice."""
        from ..runner import RunRequest

        space = self.chosen_space()
        if not study.search or space not in study.search:
            self.app.notify("the preset has no [search.*] space to run; add one in Presets", severity="error")
            return None
        trials, problem = self.controls.trials_requested()
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
        self._stored = [v for _, v in options]
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
        self.controls.show_space(info["meta"].get("space_name", ""))
        self.show_trials(rows, run_id, (info["meta"].get("space") or {}).get("objective", "objective"), info["meta"])
        if run_id in self._stored:
            with self.prevent(Select.Changed):
                self.query_one("#search-run", Select).value = run_id
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
        """A live search's progress (folded by optui.service.progress.reduce)."""
        sampler, pruner = self.strategy_chosen()
        if self.source != "live":
            self.show_best("searching: trials ranked as they finish; the best config shows at the end")
        self.show_trials(trials_of(progress), "live", progress.objective or self.objective_name,
                         {"space": {"sampler": sampler, "pruner": pruner}})

    @property
    def goal(self) -> str:
        return objective_goal(self.objective_name, self._goals)

    def refresh_table(self) -> None:
        trials = list(self.trials.values())
        self._table_params = fill_table(self.query_one("#search-trials", DataTable), rank(list(self.trials.values()), self.goal),
                                        varied_params(trials), self._table_params)
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
        if (run_id := self._shown_run()) is None:
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
        if (run_id := self._shown_run()) is None:
            return
        editor = self.app.query_one("PresetEditor")
        if editor.dirty:
            self.app.notify(f"{editor.doc.file} has unsaved edits: save them (ctrl+s) first; writing the best "
                            f"config rewrites the file", title="write best", severity="error")
            return
        if (study := editor.current_study()) is None:
            return
        # It rewrites the preset file: asked first, so that a stray w changes nothing.
        ask(self.app, f"Write the best config of search {run_id} into {editor.doc.file} as a new [configs] "
            f"table?", "Write (y)", lambda: self._write_best(run_id, study, editor.doc.path))

    @work(thread=True, exclusive=True, group="write", exit_on_error=False)
    def _write_best(self, run_id: str, study, path: Path) -> None:
        with jobs.reported(self.post_message, "write best"):
            self.post_message(self.BestWritten(jobs.write_best_in_thread(self.root, run_id, study, path), path))

    def on_search_panel_best_written(self, message: BestWritten) -> None:
        self.app.notify(message.text, title="write best")
        self.show_best(message.text)  # the message goes on to the app: the editor re-reads the file

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.select.id == "search-run" and self.chosen_run() and self.source != "live":
            self.show_run(self.chosen_run())
        self.dirty = True


    def _replot(self) -> None:
        if not self.dirty or not self.display:
            return
        self.dirty = False
        plot = self.query_one("#search-plot", PlotextPlot)
        draw_scatter(plot.plt, list(self.trials.values()), self._value("#search-param"), self.scales(),
                     self.objective_name, self.goal, self.strategy)
        plot.refresh()
