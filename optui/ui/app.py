"""The optui session: panels for presets, replicates, search, compare, runs and export.

Work (training, validation, device probing, exports) runs in thread workers that only post
Messages; every widget changes in a handler on the UI thread. One run at a time; stopping sets
the runner's cancel Event, so the run ends after its current chunk with everything kept.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from functools import partial
from pathlib import Path
from typing import Iterable

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Input, ListView, TabbedContent, TabPane

from ..study import presets
from ..errors import OptuiError
from ..results import RunResult
from ..service.events import ChunkDone, RunFailed, RunFinished, RunStarted, UnitFinished, UnitStarted
from ..service.progress import RunProgress, reduce
from ..status import Status
from ..system.signals import INTERRUPTED, STOP_SIGNALS
from ..system.terminal import detach_if_hung_up
from . import jobs
from .messages import (BestWritten, DeviceProbed, EngineEvent, ExportDone, JobFailed, PresetChecked, RunDone,
                       SearchBest)
from .screens import FieldCommands, HelpScreen, QuitScreen
from .shown import combine
from .panels.compare import ComparePanel, metric_label
from .panels.export import ExportPanel
from .panels.presets import PresetsPanel, preset_files
from .panels.replicates import ReplicatesPanel
from .panels.runs import RunsPanel
from .panels.search import SearchPanel
from .presetdoc import PresetDocument, error_key
from .widgets import ALT_DIGIT_KEYS, FieldForm, StatusLine, device_label

PANELS = (("presets", "Presets"), ("replicates", "Replicates"), ("search", "Search"),
          ("compare", "Compare"), ("runs", "Runs"), ("export", "Export"))
NARROW = 66  # columns: the six tab labels with their usual padding
SESSION_KEYS = [("f1 or ?", "this help (? types into a text field; f1 works everywhere)"),
                ("escape, then 1-6", "go to a panel; alt+1-6 goes there from a field"),
                ("ctrl+r", "run: the chosen configs (Replicates) or the chosen space (Search)"),
                ("ctrl+t", "stop the run after its current chunk (finished chunks are kept)"),
                ("ctrl+s", "save the open preset"),
                ("ctrl+o", "export what Compare shows (Export panel chooses formats)"),
                ("ctrl+p", "command palette: every action, and any field of the preset"),
                ("ctrl+q", "quit (asks when a run is in progress or edits are unsaved)")]
FIRST_FOCUS = {"presets": "#preset-list", "replicates": "#rep-configs", "search": "#search-trials",
               "compare": "#cmp-units", "runs": "#runs-table", "export": "#exp-go"}


class OptuiApp(App):
    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses live elsewhere
    TITLE = "optui"
    COMMANDS = App.COMMANDS | {FieldCommands}
    BINDINGS = [
        Binding("f1", "help", "Help", priority=True),
        Binding("question_mark", "help", "Help", show=False),  # in a text field ? is text
        Binding("escape", "focus_tabs", "Panels"),  # then 1-6 (digits typed in a field are values)
        Binding("ctrl+r", "start", "Run"),
        Binding("ctrl+t", "stop", "Stop"),
        Binding("ctrl+s", "save_preset", "Save"),
        Binding("ctrl+o", "export", "Export"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
        *[Binding(str(i + 1), f"show_panel('{pid}')", name, show=False) for i, (pid, name) in enumerate(PANELS)],
        *[Binding(f"alt+{i + 1},{ALT_DIGIT_KEYS[i]}", f"show_panel('{pid}')", name, show=False, priority=True)
          for i, (pid, name) in enumerate(PANELS)],
    ]

    def __init__(self, preset: str | None = None, root: Path | None = None, probe_device: bool = True) -> None:
        super().__init__()
        self.root = Path(root) if root else Path.cwd()
        self.initial_preset = preset
        self.probe_device = probe_device
        self.cursor_blink = True
        self.store = None
        self.doc: PresetDocument | None = None
        self.study: presets.Study | None = None
        self.preset_error: str | None = None
        self.parse_errors: dict[str, str] = {}
        self.edit_generation = 0
        self.checked_generation = -1
        self.last_edited: str | None = None
        self.fields: dict = {}
        self._fields_cache: dict[str, dict] = {}  # workload -> its field specs
        self._focus_first = False
        self.running: str | None = None  # "replicates" | "search" while the run worker works
        self.run_study: presets.Study | None = None
        self.cancel_event: threading.Event | None = None
        self.current_run_id: str | None = None
        self.last_run_status: str | None = None
        self.progress = RunProgress()  # the run in progress, folded from its events
        self.runs: list[dict] = []
        self._run_cache: dict[str, RunResult] = {}
        self._quit_after_run = False
        self.stop_signals = 0  # SIGINT/SIGTERM/SIGHUP received (run_app installs the handlers)
        self.last_export: list[Path] = []

    # -- layout -------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with TabbedContent(id="panels", initial="presets"):
            with TabPane(f"1 {PANELS[0][1]}", id="presets"):
                yield PresetsPanel(self.root, id="presets-panel")
            with TabPane(f"2 {PANELS[1][1]}", id="replicates"):
                yield ReplicatesPanel(id="replicates-panel")
            with TabPane(f"3 {PANELS[2][1]}", id="search"):
                yield SearchPanel(id="search-panel")
            with TabPane(f"4 {PANELS[3][1]}", id="compare"):
                yield ComparePanel(id="compare-panel")
            with TabPane(f"5 {PANELS[4][1]}", id="runs"):
                yield RunsPanel(id="runs-panel")
            with TabPane(f"6 {PANELS[5][1]}", id="export"):
                yield ExportPanel(id="export-panel")
        yield StatusLine(id="status")
        yield Footer()

    async def on_mount(self) -> None:
        if not self.cursor_blink:
            for inp in self.query(Input):
                inp.cursor_blink = False
        self.preset_form = self.query_one("#preset-form", FieldForm)  # the palette runs on its own screen
        self.query_one(ComparePanel).loader = self.load_run
        self.query_one(SearchPanel).set_note(self._search_note())
        if self.probe_device:
            self._probe_device()
        else:
            self.query_one(StatusLine).set_device("jax: not probed")
        try:
            from ..store import Store

            self.store = Store.open(self.root / "runs")
        except OptuiError as exc:
            self.notify(str(exc), title="run store", severity="error")
        self.refresh_runs()
        self._describe_export()
        if self.initial_preset:
            await self.open_preset(Path(self.initial_preset))
        else:
            self.query_one("#preset-list", ListView).focus()

    def on_resize(self, event) -> None:
        # Below 66 columns the six tab labels fit only with less padding between them.
        self.set_class(event.size.width < NARROW, "-narrow")

    # -- workers (threads): they only post messages ------------------------------------------
    @work(thread=True, group="probe", exit_on_error=False)
    def _probe_device(self) -> None:
        try:
            from ..engine.device import describe  # imports jax: seconds, so never on the UI thread

            info = describe()
            self.post_message(DeviceProbed(info["backend"], info["device"]))
        except Exception as exc:  # a broken JAX install should not take the session down
            self.post_message(JobFailed("JAX", f"{type(exc).__name__}: {exc}"))

    @work(thread=True, exclusive=True, group="check", exit_on_error=False)
    def _check_preset(self, generation: int, text: str, file: str, workload: object) -> None:
        study, error, fields = jobs.check_preset(text, file, workload)
        self.post_message(PresetChecked(generation, study, error, fields))

    @work(thread=True, exclusive=True, group="run", exit_on_error=False)
    def _run_replicates(self, study: presets.Study, configs: list[str], replicates: int,
                        cancel: threading.Event) -> None:
        jobs.run_replicates(self.post_message, self.root, study, configs, replicates, cancel)

    @work(thread=True, exclusive=True, group="run", exit_on_error=False)
    def _run_search(self, study: presets.Study, space: str, trials: int, cancel: threading.Event) -> None:
        jobs.run_search(self.post_message, self.root, study, space, trials, cancel)

    @work(thread=True, exclusive=True, group="run", exit_on_error=False)
    def _resume(self, run_id: str, cancel: threading.Event) -> None:
        jobs.resume_run(self.post_message, self.root, run_id, cancel)

    @work(thread=True, exclusive=True, group="run", exit_on_error=False)
    def _confirm(self, run_id: str, top: int, replicates: int, cancel: threading.Event) -> None:
        jobs.confirm_search(self.post_message, self.root, run_id, top, replicates, cancel)

    @work(thread=True, exclusive=True, group="best", exit_on_error=False)
    def _find_best(self, run_id: str, study: presets.Study | None) -> None:
        with jobs.reported(self.post_message, "best config"):
            self.post_message(SearchBest(run_id, jobs.describe_best(self.root, run_id, study)))

    @work(thread=True, exclusive=True, group="write", exit_on_error=False)
    def _write_best(self, run_id: str, study: presets.Study, path: Path) -> None:
        with jobs.reported(self.post_message, "write best"):
            self.post_message(BestWritten(jobs.write_best_in_thread(self.root, run_id, study, path), path))

    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def _export(self, run: RunResult, names: list[str], metric: str, band: str, formats: list[str],
                out_dir: Path) -> None:
        with jobs.reported(self.post_message, "export"):
            label = metric_label(metric)
            self.post_message(ExportDone(jobs.export_shown(run, names, metric, label, band, formats, out_dir)))

    # -- presets --------------------------------------------------------------------------------
    async def on_presets_panel_open(self, message: PresetsPanel.Open) -> None:
        await self.open_preset(message.path)

    async def open_preset(self, path: Path, show: bool = True) -> None:
        if self.doc is not None and self.doc.dirty and self.doc.path != path:
            self.notify(f"unsaved edits to {self.doc.path.name} were left behind", severity="warning")
        full = path if path.is_absolute() else self.root / path
        try:
            display = str(full.relative_to(self.root))  # messages name presets/x.toml, as the CLI does
        except ValueError:
            display = str(full)
        try:
            doc = PresetDocument.read(full, display)
        except OptuiError as exc:
            self.notify(str(exc), title="preset", severity="error")
            return
        self.doc = doc
        self.parse_errors = {}
        self.study = None
        self.preset_error = None
        self.fields = self._fields_cache.get(str(doc.plain().get("workload")), {})
        if show:
            self.query_one(TabbedContent).active = "presets"
        if self.fields:
            await self._show_rows()
            if show:
                self._focus_first_field()
        else:  # the first preset of a workload: build the form once its field specs are known
            self._focus_first = show
            self.query_one(PresetsPanel).set_header(f"{doc.file}: reading the workload's settings…")
        self._request_check()

    async def _show_rows(self) -> None:
        rows = self.doc.rows(self.fields) if self.doc else []
        for form in self.query(FieldForm):
            await form.show(self.doc, rows)
        self._update_header()

    def _request_check(self) -> None:
        if self.doc is None:
            return
        self.edit_generation += 1
        raw = self.doc.plain()
        self._check_preset(self.edit_generation, self.doc.text(), self.doc.file, raw.get("workload"))

    def on_field_form_edited(self, message: FieldForm.Edited) -> None:
        label = message.row.label
        self.last_edited = label
        if message.parse_error:
            self.parse_errors[label] = message.parse_error
        else:
            self.parse_errors.pop(label, None)
        for form in self.query(FieldForm):
            if form is not message.form:
                form.sync_values()
        self._request_check()
        self._show_errors()

    async def on_preset_checked(self, message: PresetChecked) -> None:
        if message.generation != self.edit_generation or self.doc is None:
            return  # an older edit's result
        previous_search = self.study.search if self.study is not None else None
        self.study = message.study
        self.preset_error = message.error
        form = self.query_one("#preset-form", FieldForm)
        if message.fields:
            self._fields_cache[str(self.doc.plain().get("workload"))] = message.fields
        new_rows = [r.label for r in self.doc.rows(message.fields)]
        if message.fields != self.fields or new_rows != [r.label for r in form.rows] or form.doc is not self.doc:
            self.fields = message.fields
            await self._show_rows()  # a new document, or the field set changed (another optimizer)
        if self._focus_first:
            self._focus_first = False
            if self.query_one(TabbedContent).active == "presets":  # focus would switch the panel
                self._focus_first_field()
        self.checked_generation = message.generation  # last: tests and callers wait on it
        self._show_errors()
        if self.study is not None:
            self.query_one(ReplicatesPanel).set_study(self.study)
            self.query_one(SearchPanel).set_spaces(self.study)
            self.query_one(ComparePanel).set_views(self.study)
            shown = self.query_one(SearchPanel).chosen_run()
            if shown and self.running != "search" and self.study.search != previous_search:
                self._show_stored_search(shown)  # its space's scales and best config, now known

    def edit_field(self, label: str) -> None:
        self.query_one(TabbedContent).active = "presets"
        # Focus as soon as the palette has closed, and again once the tab is laid out: only
        # then can the form scroll the field into view.
        self.call_after_refresh(self.preset_form.focus_label, label)
        self.set_timer(0.1, lambda: self.preset_form.focus_label(label))

    def _focus_first_field(self) -> None:
        form = self.query_one("#preset-form", FieldForm)
        if form.rows:
            form.focus_label(form.rows[0].label)

    def _show_errors(self) -> None:
        if self.doc is None:
            return
        err = self.preset_error if self.checked_generation == self.edit_generation else None
        key = error_key(err, self.doc.file) if err else None
        placed = False
        for form in self.query(FieldForm):
            placed |= form.show_errors(err, key, self.last_edited, self.parse_errors)
        self._update_header(None if placed else err)

    def _update_header(self, error: str | None = None) -> None:
        panel = self.query_one(PresetsPanel)
        if self.doc is None:
            panel.set_header("no preset open: pick one on the left (enter)")
            return
        state = "edited, not saved" if self.doc.dirty else "saved"
        valid = "invalid" if (self.preset_error or self.parse_errors) else "valid"
        panel.set_header(f"{self.doc.file} · {state} · {valid}", error or "")

    def action_save_preset(self) -> None:
        if self.doc is None:
            self.notify("open a preset first (Presets panel)", severity="error")
            return
        if self.parse_errors:
            self.notify(next(iter(self.parse_errors.values())), title="not saved", severity="error")
            return
        try:
            self.study = self.doc.save()
        except OptuiError as exc:
            self.notify(str(exc), title="not saved", severity="error")
            return
        except Exception as exc:
            self.notify(f"{type(exc).__name__}: {exc}", title="not saved", severity="error")
            return
        self.notify(f"saved {self.doc.file}")
        self._update_header()
        self.query_one(PresetsPanel).refresh_files()

    # -- runs -----------------------------------------------------------------------------------
    def action_start(self) -> None:
        if self.query_one(TabbedContent).active == "search":
            self.action_start_search()
        else:
            self.action_start_replicates()

    def _current_study(self) -> presets.Study | None:
        if self.doc is None:
            self.notify("open a preset first (Presets panel, enter on a file)", severity="error")
            return None
        if self.parse_errors:
            self.notify(next(iter(self.parse_errors.values())), title="fix the preset", severity="error")
            return None
        try:
            return self.doc.validate()
        except OptuiError as exc:
            self.notify(str(exc), title="fix the preset", severity="error")
            return None

    def action_start_replicates(self) -> None:
        if self.running:
            self.notify("a run is in progress: one at a time (ctrl+t stops it)", severity="warning")
            return
        study = self._current_study()
        if study is None:
            return
        panel = self.query_one(ReplicatesPanel)
        configs = [c for c in panel.chosen() if c in study.configs]
        if not configs:
            self.notify("choose at least one config (space in the list)", severity="error")
            return
        replicates, problem = panel.replicates_requested()
        if problem:
            self.notify(problem, title="not started", severity="error")
            self.query_one(TabbedContent).active = "replicates"
            self.call_after_refresh(panel.query_one("#rep-count").focus)  # where it is fixed
            return
        self._say_if_unsaved()
        self.running = "replicates"
        self.run_study = study
        self.current_run_id = None
        self.last_run_status = None
        self.cancel_event = threading.Event()
        self.progress = RunProgress()
        panel.start(study.name, self.progress.units)
        self.query_one(StatusLine).set_activity(f"running {study.name}: building and compiling…")
        self.action_show_panel("replicates")
        self._run_replicates(study, configs, replicates, self.cancel_event)

    def action_start_search(self) -> None:
        if self.running:
            self.notify("a run is in progress: one at a time (ctrl+t stops it)", severity="warning")
            return
        study = self._current_study()
        if study is None:
            return
        panel = self.query_one(SearchPanel)
        space = panel.chosen_space()
        if not study.search or space not in study.search:
            self.notify(f"{self.doc.file}: has no [search.*] space to run; add one in Presets",
                        severity="error")
            return
        trials, problem = panel.trials_requested()
        if problem:
            self.notify(problem, title="not started", severity="error")
            return
        self._say_if_unsaved()
        self.running = "search"
        self.run_study = study
        self.current_run_id = None
        self.last_run_status = None
        self.cancel_event = threading.Event()
        panel.show_trials([], "live", study.search[space].objective)
        self.query_one(StatusLine).set_activity(f"searching {study.name}/{space}: building and compiling…")
        self.action_show_panel("search")
        self._run_search(study, space, trials, self.cancel_event)

    def _say_if_unsaved(self) -> None:
        """A run uses the form as it is now; when that differs from the file, say so."""
        if self.doc is not None and self.doc.dirty:
            self.notify(f"this run uses unsaved edits of {self.doc.file} (ctrl+s saves them)",
                        title="unsaved edits", severity="warning", timeout=8)

    def _start_stored(self, kind: str, what: str) -> threading.Event | None:
        """Prepare the session for a run that continues a stored one; None if one is running."""
        if self.running:
            self.notify("a run is in progress: one at a time (ctrl+t stops it)", severity="warning")
            return None
        self.running, self.run_study, self.current_run_id, self.last_run_status = kind, None, None, None
        self.cancel_event = threading.Event()
        self.progress = RunProgress()
        self.query_one(StatusLine).set_activity(what)
        return self.cancel_event

    def action_resume_run(self, run_id: str | None = None) -> None:
        """Resume run_id, else the newest interrupted or failed run in the store."""
        stopped = [r for r in reversed(self.runs) if r["status"] in (Status.INTERRUPTED, Status.FAILED)
                   and r["kind"] in ("study", "search") and run_id in (None, r["id"])]
        if not stopped:
            info = next((r for r in self.runs if r["id"] == run_id), None)
            self.notify(f"run {self.run_label(run_id)} is {info['status']}: only an interrupted or failed "
                        f"study or search can be resumed" if info else "no interrupted or failed run to resume",
                        severity="warning")
            return
        run = stopped[0]
        cancel = self._start_stored("search" if run["kind"] == "search" else "replicates",
                                    f"resuming {run['study']} ({self.run_label(run['id'])})…")
        if cancel is not None:
            self.action_show_panel("search" if run["kind"] == "search" else "replicates")
            self._resume(run["id"], cancel)

    def _shown_search_run(self) -> str | None:
        run_id = self.query_one(SearchPanel).chosen_run()
        if not run_id:
            self.notify("choose a stored search run in the Search panel first", severity="warning")
        return run_id or None

    def action_confirm_best(self, top: int = 3, replicates: int = 5) -> None:
        """Re-run the shown search's best trials with fresh seed replicates."""
        run_id = self._shown_search_run()
        if run_id is None:
            return
        cancel = self._start_stored("search", f"confirming the best {top} trials with {replicates} replicates…")
        if cancel is not None:
            self.action_show_panel("search")
            self._confirm(run_id, top, replicates, cancel)

    def on_search_panel_confirm(self, message: SearchPanel.Confirm) -> None:
        self.action_confirm_best(message.top, message.replicates)

    def action_write_best(self) -> None:
        """Write the shown search's best config into the open preset file (comments kept)."""
        run_id = self._shown_search_run()
        if run_id is None:
            return
        if self.doc is not None and self.doc.dirty:
            self.notify(f"{self.doc.file} has unsaved edits: save them (ctrl+s) first; writing the best "
                        f"config rewrites the file", title="write best", severity="error")
            return
        study = self._current_study()
        if study is None or self.doc is None:
            return
        self._write_best(run_id, study, self.doc.path)

    async def on_best_written(self, message: BestWritten) -> None:
        self.notify(message.text, title="write best")
        self.query_one(SearchPanel).show_best(message.text)
        if self.doc is not None and self.doc.path == message.path and not self.doc.dirty:
            await self.open_preset(message.path, show=False)  # the form shows the new config

    def on_search_best(self, message: SearchBest) -> None:
        if self.query_one(SearchPanel).chosen_run() == message.run_id:
            self.query_one(SearchPanel).show_best(message.text)

    def action_stop(self) -> None:
        if not self.running or self.cancel_event is None:
            self.notify("nothing is running", severity="warning")
            return
        self.cancel_event.set()
        self.query_one(StatusLine).set_activity("stopping after the current chunk…")

    def on_engine_event(self, message: EngineEvent) -> None:
        e = message.event
        if self.running == "search":
            self._on_search_event(e)
            return
        panel = self.query_one(ReplicatesPanel)
        status = self.query_one(StatusLine)
        study = self.run_study
        specs = {n: c.as_dict() for n, c in study.configs.items()} if study else {}
        self.progress = reduce(self.progress, e, specs)
        panel.show_progress(self.progress)
        if isinstance(e, RunStarted):
            self.current_run_id = e.run_id
            panel.start(e.study, self.progress.units)
            status.set_activity(f"running {e.study} on {e.device} ({e.strategy})")
        elif isinstance(e, UnitStarted):  # its first chunk compiles first: seconds with nothing to show
            status.set_activity(f"compiling {e.unit} ({e.replicates} replicates)…")
        elif isinstance(e, ChunkDone):
            stopping = " (stopping)" if self.cancel_event and self.cancel_event.is_set() else ""
            status.set_activity(f"running: {e.unit} {e.step_end}/{e.total_steps} steps{stopping}")
        elif isinstance(e, RunFinished):
            self.last_run_status = e.status
            when = self.took(e.wall_time_s)
            severity = "information" if e.status == Status.DONE else "warning"
            self.notify(f"run {self.run_label(e.run_id)} {e.status}{when}{self._how_to_resume(e)}",
                        severity=severity, timeout=12 if e.status != Status.DONE else 5)
            self._after_run(e.run_id)
        elif isinstance(e, RunFailed):
            self.last_run_status = Status.FAILED
            status.set_activity("failed")

    def _on_search_event(self, e) -> None:
        panel = self.query_one(SearchPanel)
        status = self.query_one(StatusLine)
        if isinstance(e, RunStarted):
            self.current_run_id = e.run_id
            status.set_activity(f"searching {e.study} on {e.device} ({e.strategy})")
        panel.apply_event(e)  # the trials table follows the live search
        if isinstance(e, UnitStarted):
            status.set_activity(f"compiling {e.unit}…")
        elif isinstance(e, ChunkDone):
            stopping = " (stopping)" if self.cancel_event and self.cancel_event.is_set() else ""
            status.set_activity(f"searching: {e.unit} {e.step_end}/{e.total_steps} steps{stopping}")
        elif isinstance(e, RunFinished):
            self.last_run_status = e.status
            when = self.took(e.wall_time_s)
            self.notify(f"search {self.run_label(e.run_id)} {e.status}{when}{self._how_to_resume(e)}",
                        severity="information" if e.status == "done" else "warning",
                        timeout=12 if e.status != Status.DONE else 5)
            self.refresh_runs()
        elif isinstance(e, RunFailed):
            self.last_run_status = "failed"

    def _how_to_resume(self, e: RunFinished) -> str:
        if e.status not in (Status.INTERRUPTED, Status.FAILED):
            return ""
        preset = self.doc.file if self.doc is not None else "PRESET"
        return (f"\nfinished chunks are kept. Resume: r on it in Runs (5), or\n"
                f"optui run {preset} --headless --resume {e.run_id}")

    def _after_run(self, run_id: str) -> None:
        self._run_cache.pop(run_id, None)
        self.refresh_runs()
        self.query_one(ComparePanel).select_run(run_id)
        self._describe_export()

    def on_run_done(self, message: RunDone) -> None:
        was = self.running
        self.running = None
        if was == "search" and self.current_run_id:  # the finished search, with its best config
            self.refresh_runs()
            self._show_stored_search(self.current_run_id)
        self.query_one(StatusLine).set_activity(
            f"idle (last run: {self.last_run_status})" if self.last_run_status else "idle")
        if self.current_run_id and self.last_run_status in (None, "failed"):
            self._after_run(self.current_run_id)
        if self._quit_after_run:
            self.exit(return_code=INTERRUPTED if self.stop_signals else 0)

    def on_job_failed(self, message: JobFailed) -> None:
        self.notify(message.error, title=message.title, severity="error", timeout=10)

    def on_device_probed(self, message: DeviceProbed) -> None:
        self.query_one(StatusLine).set_device(device_label(message.backend, message.device))

    # -- store, compare, export -----------------------------------------------------------------
    def run_label(self, run_id: str) -> str:
        """How a run is named on screen."""
        return run_id

    def took(self, seconds: float) -> str:
        """How long a run took, as a notice says it."""
        return f" in {seconds:.1f} s"

    def run_times(self, info: dict) -> tuple[str, str]:
        """A run's wall time and start, as the Runs table shows them."""
        return f"{info['wall_time_s']:.1f}", time.strftime("%m-%d %H:%M", time.localtime(info["created"]))

    def refresh_runs(self) -> None:
        if self.store is None:
            return
        try:
            self.runs = self.store.list_runs()
        except OptuiError as exc:
            self.notify(str(exc), title="run store", severity="error")
            return
        self.query_one(RunsPanel).show_runs(self.runs, self.run_label, self.run_times)
        self.query_one(ComparePanel).set_entries(self.runs, self.run_label)
        self._show_search_runs()

    def load_run(self, run_id: str) -> RunResult | None:
        if run_id not in self._run_cache:
            if self.store is None:
                return None
            try:
                self._run_cache[run_id] = self.store.load_run(run_id)
            except OptuiError as exc:
                self.notify(str(exc), title="run store", severity="error")
                return None
        return self._run_cache[run_id]

    def on_runs_panel_run_action(self, message: RunsPanel.RunAction) -> None:
        action, run_id = message.action, message.run_id
        if action == "open":
            self._open_run(run_id)
        elif action == "resume":
            self.action_resume_run(run_id)

    def on_runs_panel_run_deleted(self, message: RunsPanel.RunDeleted) -> None:
        self._run_cache.pop(message.run_id, None)
        self.refresh_runs()
        self._describe_export()

    def _open_run(self, run_id: str) -> None:
        info = next((r for r in self.runs if r["id"] == run_id), None)
        if info is not None and info["kind"] == "search":
            if self.running != "search":
                self._show_stored_search(run_id)
            self.action_show_panel("search")
            return
        if not self.query_one(ComparePanel).select_run(run_id):
            self.notify(f"run {self.run_label(run_id)} has nothing to compare yet (no finished chunk)",
                        severity="warning")
            return
        self.action_show_panel("compare")

    def _relative(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def _shown(self) -> tuple[RunResult, list[str]] | None:
        """What Compare shows, as one run."""
        selection = [(rid, unit) for rid, unit, _ in self.query_one(ComparePanel).selection()]
        if not selection:
            return None
        loaded = {rid: self.load_run(rid) for rid, _ in selection}
        return combine(selection, loaded)

    def _describe_export(self) -> None:
        compare = self.query_one(ComparePanel)
        selection = compare.selection()
        panel = self.query_one(ExportPanel)
        if not selection:
            panel.describe("Nothing to export: select configs in Compare (4) first.")
            return
        what = ", ".join(label for _, _, label in selection)
        panel.describe(f"What Compare shows: {what}\n{compare.describe()}")

    def action_export(self) -> None:
        shown = self._shown()
        if shown is None:
            self.notify("nothing to export: select configs in Compare (4) first", severity="error")
            return
        run, names = shown
        formats = self.query_one(ExportPanel).formats()
        if not formats:
            self.notify("choose at least one format (PNG, pickle, CSV)", severity="error")
            return
        compare = self.query_one(ComparePanel)
        out_dir = jobs.export_folder(self.root, run.study, run.meta["runs"])
        self.query_one(ExportPanel).show_written(f"writing {', '.join(formats)} to {self._relative(out_dir)}/ …")
        self._export(run, names, compare.metric, compare.band_kind, formats, out_dir)

    def on_export_done(self, message: ExportDone) -> None:
        self.last_export = message.paths
        shown = []
        for p in message.paths:
            try:
                shown.append(str(p.relative_to(self.root)))
            except ValueError:
                shown.append(str(p))
        self.query_one(ExportPanel).show_written("wrote:\n" + "\n".join(shown))
        self.notify(f"wrote {len(message.paths)} files to {Path(shown[0]).parent}/" if shown else "nothing written")

    # -- search ---------------------------------------------------------------------------------
    def _search_note(self) -> str:
        return "ctrl+r runs the chosen space (edit its ranges on the left) · ctrl+t stops"

    def _show_search_runs(self) -> None:
        """Offer the stored search runs; show the chosen (else newest) one unless a search runs."""
        panel = self.query_one(SearchPanel)
        searches = [r for r in reversed(self.runs) if r["kind"] == "search"]
        space = lambda r: r["meta"].get("space_name", "")
        panel.set_stored_runs([(f"{self.run_label(r['id'])} {r['study']}/{space(r)} {r['status']}", r["id"])
                               for r in searches])
        if self.running == "search" or not searches:
            return
        chosen = panel.chosen_run() or searches[0]["id"]
        self._show_stored_search(chosen)

    def _show_stored_search(self, run_id: str) -> None:
        from ..search import rank_trials

        try:
            rows = rank_trials(self.store, run_id)
            info = self.store.run_info(run_id)
        except OptuiError as exc:
            self.notify(str(exc), title="run store", severity="error")
            return
        objective = (info["meta"].get("space") or {}).get("objective", "objective")
        panel = self.query_one(SearchPanel)
        space = (self.study.search or {}).get(info["meta"].get("space_name", "")) if self.study else None
        panel.scales = {k: iv.scale for k, iv in space.intervals.items()} if space is not None else {}
        panel.show_trials(rows, run_id, objective, info["meta"])
        panel.show_choice(run_id)
        panel.show_best("best: …")
        self._find_best(run_id, self.study)

    def on_select_changed(self, event) -> None:
        if event.select.id == "search-run" and isinstance(event.value, str) and self.running != "search":
            self._show_stored_search(event.value)
        elif event.select.id in ("cmp-metric", "cmp-band"):
            self._describe_export()

    # -- navigation, quitting, commands ---------------------------------------------------------
    def action_show_panel(self, panel: str) -> None:
        self.query_one(TabbedContent).active = panel
        self.call_after_refresh(self._focus_panel, panel)

    def _focus_panel(self, panel: str) -> None:
        try:
            self.query_one(FIRST_FOCUS[panel]).focus()
        except Exception:
            pass

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        pane = event.pane.id
        if pane == "presets":
            panel = self.query_one(PresetsPanel)
            if preset_files(self.root) != panel.files:  # files added or removed meanwhile
                panel.refresh_files()
        elif pane == "export":
            self._describe_export()
        elif pane == "runs":
            self.refresh_runs()
        elif pane == "compare":
            self.query_one(ComparePanel).dirty = True
        elif pane == "replicates":
            self.query_one(ReplicatesPanel).dirty = True

    def action_help(self) -> None:
        """The help screen: the keys of the panel shown, the session's, the selected field's help."""
        if isinstance(self.screen, HelpScreen):
            return
        pane = self.query_one(TabbedContent).active
        panel = self.query_one(f"#{pane}-panel")
        name = dict(PANELS)[pane]
        self.push_screen(HelpScreen(name, list(getattr(panel, "KEYS", [])), SESSION_KEYS, self._field_help()))

    def _field_help(self) -> str:
        for form in self.query(FieldForm):
            row = form.focused_row()
            if row is not None:
                from .panels.presets import field_hint

                error = form.error_text(row.label)
                return field_hint(row) + (f"\nNow: {error}" if error else "")
        return ""

    def action_focus_tabs(self) -> None:
        from textual.widgets import Tabs

        self.query_one(Tabs).focus()

    async def action_quit(self) -> None:
        if not self.running:
            if self.doc is not None and self.doc.dirty:
                def leave(yes: bool | None) -> None:
                    if yes:
                        self.exit()

                self.push_screen(QuitScreen(f"{self.doc.file} has unsaved edits. Quit without saving them?",
                                            "Quit (y)"), leave)
                return
            self.exit()
            return

        def answer(yes: bool | None) -> None:
            if yes and self.running and self.cancel_event is not None:
                self._quit_after_run = True
                self.cancel_event.set()  # the worker ends after its chunk; RunDone then exits
                self.query_one(StatusLine).set_activity("stopping after the current chunk, then quitting…")

        self.push_screen(QuitScreen(), answer)

    def stop_on_signal(self) -> None:
        """A stop signal: no questions (there may be no one at the terminal). A run ends after
        its current chunk, recorded as interrupted, then the session quits."""
        if self.running and self.cancel_event is not None:
            self._quit_after_run = True
            self.cancel_event.set()
            self.query_one(StatusLine).set_activity("stop signal: stopping after the current chunk, then quitting…")
        else:
            self.exit(return_code=INTERRUPTED)

    def on_unmount(self) -> None:
        if self.cancel_event is not None:
            self.cancel_event.set()  # never leave a training thread running behind a closed app

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Save preset", "Write the open preset (comments kept)", self.action_save_preset)
        yield SystemCommand("Run replicates", "Start the chosen configs' replicates", self.action_start_replicates)
        yield SystemCommand("Run search", "Start a random search of the chosen space", self.action_start_search)
        yield SystemCommand("Stop run", "Stop after the current chunk; finished chunks are kept", self.action_stop)
        yield SystemCommand("Export what Compare shows", "PNG, pickle, CSV into exports/<study>/", self.action_export)
        yield SystemCommand("Refresh runs", "Re-read the run store", self.refresh_runs)
        yield SystemCommand("Resume run", "Finish the newest interrupted or failed run", self.action_resume_run)
        yield SystemCommand("Confirm best trials", "Re-run the shown search's best 3 trials with 5 replicates",
                            self.action_confirm_best)
        yield SystemCommand("Write best config", "Add the shown search's best config to the open preset",
                            self.action_write_best)
        for pid, name in PANELS:
            yield SystemCommand(f"Show {name}", f"Go to the {name} panel", lambda p=pid: self.action_show_panel(p))


def run_app(preset: str | None) -> None:
    """Open the session on the current folder (presets/, runs/, exports/).

    SIGINT, SIGTERM or SIGHUP (an SSH drop) stop a run after its current chunk and quit; a second
    one quits at once, losing at most the chunk in flight. Either way the exit code is 130.
    """
    app = OptuiApp(preset=preset)
    asyncio.run(_session(app))
    if app.stop_signals:
        raise SystemExit(INTERRUPTED)


async def _session(app: OptuiApp) -> None:
    loop = asyncio.get_running_loop()
    previous = {s: signal.signal(s, partial(_on_stop_signal, app, loop)) for s in STOP_SIGNALS}
    try:
        await app.run_async()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if app.stop_signals > 1:  # the terminal is restored; do not wait for the chunk in flight
        os._exit(INTERRUPTED)


def _on_stop_signal(app: OptuiApp, loop: asyncio.AbstractEventLoop, signum: int, frame) -> None:
    # Python runs this on the main thread between bytecodes: the loop does the work.
    if signum == signal.SIGHUP and detach_if_hung_up():  # an SSH drop: writes to it would fail
        # The SIGCONT that comes with a hangup would make Textual restart its terminal mode on
        # the dead terminal, with a second input thread that can outlive the session.
        signal.signal(signal.SIGCONT, signal.SIG_DFL)
    app.stop_signals += 1
    if app.stop_signals == 1:
        loop.call_soon_threadsafe(app.stop_on_signal)
    else:
        loop.call_soon_threadsafe(partial(app.exit, return_code=INTERRUPTED))
