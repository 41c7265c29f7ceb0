"""The optui session: panels for presets, replicates, search, compare, runs and export.

The App composes the components and routes between them: the preset editor (the open document),
the run controller (one run at a time), the runs model (the store) and the panels, each owning
its state and its actions. The App keeps the bindings, navigation, help, quitting and the palette.
Work runs in thread workers that only post Messages; every widget changes on the UI thread.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from functools import partial
from pathlib import Path
from typing import Iterable

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Input, ListView, TabbedContent, TabPane

from ..service.events import RunFinished
from ..system.signals import INTERRUPTED, STOP_SIGNALS
from ..system.terminal import detach_if_hung_up
from . import notices
from .editor import PresetEditor
from .formats import Formats
from .messages import DeviceProbed, JobFailed
from .panels.compare import ComparePanel
from .panels.export import ExportPanel
from .panels.presets import PresetsPanel, preset_files
from .panels.replicates import ReplicatesPanel
from .panels.runs import RunsPanel
from .panels.search import SearchPanel
from .runner import RunController, RunRequest
from .runs_model import RunsModel
from .screens import FieldCommands, HelpScreen, QuitScreen
from .widgets import ALT_DIGIT_KEYS, FieldForm, StatusLine, device_label

PANELS = (("presets", "Presets"), ("replicates", "Replicates"), ("search", "Search"),
          ("compare", "Compare"), ("runs", "Runs"), ("export", "Export"))
NARROW = 66  # columns: the six tab labels with their usual padding
SHORT = 24  # rows: at this height or less the charts get the space (t shows the tables)
SESSION_KEYS = [("f1 or ?", "this help (? types into a text field; f1 works everywhere)"),
                ("escape, then 1-6", "go to a panel; alt+1-6 goes there from a field"),
                ("ctrl+z", "in a field: put back the value the file holds"),
                ("ctrl+r", "run: the chosen configs (Replicates) or the chosen space (Search); "
                           "with unsaved edits it asks first"),
                ("ctrl+t", "stop the run after its current chunk (finished chunks are kept)"),
                ("ctrl+s", "save the open preset (never over a change made on disk meanwhile)"),
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

    def __init__(self, preset: str | None = None, root: Path | None = None, probe_device: bool = True,
                 formats: Formats | None = None) -> None:
        super().__init__()
        self.root = Path(root) if root else Path.cwd()
        self.initial_preset = preset
        self.probe_device = probe_device
        self.formats = formats or Formats()
        self.cursor_blink = True
        self.stop_signals = 0  # SIGINT/SIGTERM/SIGHUP received (run_app installs the handlers)
        self._quit_after_run = False
        self.editor = PresetEditor(self.root, id="editor")
        self.runs_model = RunsModel(self.root / "runs", self.formats, id="runs-model")
        self.runner = RunController(self.root, self.runs_model, id="runner")

    # -- layout -------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield self.editor
        yield self.runs_model
        yield self.runner
        with TabbedContent(id="panels", initial="presets"):
            with TabPane(f"1 {PANELS[0][1]}", id="presets"):
                yield PresetsPanel(self.root, id="presets-panel")
            with TabPane(f"2 {PANELS[1][1]}", id="replicates"):
                yield ReplicatesPanel(id="replicates-panel")
            with TabPane(f"3 {PANELS[2][1]}", id="search"):
                yield SearchPanel(self.root, self.runs_model, id="search-panel")
            with TabPane(f"4 {PANELS[3][1]}", id="compare"):
                yield ComparePanel(self.runs_model, id="compare-panel")
            with TabPane(f"5 {PANELS[4][1]}", id="runs"):
                yield RunsPanel(self.runs_model, id="runs-panel")
            with TabPane(f"6 {PANELS[5][1]}", id="export"):
                yield ExportPanel(self.root, self.runs_model, id="export-panel")
        yield StatusLine(id="status")
        yield Footer()

    async def on_mount(self) -> None:
        if not self.cursor_blink:
            for inp in self.query(Input):
                inp.cursor_blink = False
        self.preset_form = self.query_one("#preset-form", FieldForm)  # the palette runs on its own screen
        if self.probe_device:
            self._probe_device()
        else:
            self.query_one(StatusLine).set_device("jax: not probed")
        # Focus starts where a stray key changes nothing: the preset list.
        self.query_one("#preset-list", ListView).focus()
        if self.initial_preset:
            self.query_one(PresetsPanel).point_at(Path(self.initial_preset))
            await self.editor.open(Path(self.initial_preset))

    def on_resize(self, event) -> None:
        # Below 66 columns the six tab labels fit only with less padding between them.
        self.set_class(event.size.width < NARROW, "-narrow")
        self.set_class(event.size.width < 100, "-cramped")  # the search table needs the whole width
        self.set_class(event.size.height <= SHORT, "-short")

    @work(thread=True, group="probe", exit_on_error=False)
    def _probe_device(self) -> None:
        try:
            from ..engine.device import describe  # imports jax: seconds, so never on the UI thread

            info = describe()
            self.post_message(DeviceProbed(info["backend"], info["device"]))
        except Exception as exc:  # a broken JAX install should not take the session down
            self.post_message(JobFailed("JAX", f"{type(exc).__name__}: {exc}"))

    def on_job_failed(self, message: JobFailed) -> None:
        self.notify(message.error, title=message.title, severity="error", timeout=10)

    def on_device_probed(self, message: DeviceProbed) -> None:
        self.query_one(StatusLine).set_device(device_label(message.backend, message.device))

    # -- the preset editor ----------------------------------------------------------------------
    async def on_presets_panel_open(self, message: PresetsPanel.Open) -> None:
        await self.editor.open(message.path)

    def on_field_form_edited(self, message: FieldForm.Edited) -> None:
        self.editor.edited(message)

    def on_preset_editor_header(self, message: PresetEditor.Header) -> None:
        self.query_one(PresetsPanel).set_header(message.text, message.error)

    def on_preset_editor_study_changed(self, message: PresetEditor.StudyChanged) -> None:
        if not self.query(ReplicatesPanel):
            return  # the app closes
        self.query_one(ReplicatesPanel).set_study(message.study)
        self.query_one(SearchPanel).set_study(message.study, message.path, self.runner.running == "search")
        self.query_one(ComparePanel).set_views(message.study)

    def edit_field(self, label: str) -> None:
        """Jump to a field of the open preset (the palette's field finder)."""
        self.query_one(TabbedContent).active = "presets"
        self.call_after_refresh(self.preset_form.focus_label, label)

    def action_save_preset(self) -> None:
        if self.editor.save():
            self.query_one(PresetsPanel).refresh_files()

    # -- runs -----------------------------------------------------------------------------------
    def action_start(self) -> None:
        self.start("search" if self.query_one(TabbedContent).active == "search" else "replicates")

    def start(self, kind: str) -> None:
        """Run the chosen configs or space (the editor asks which version when edits are unsaved)."""
        if self.runner.running:
            self.notify("a run is in progress: one at a time (ctrl+t stops it)", severity="warning")
            return
        self.editor.study_to_run(partial(self._launch, kind))

    def _launch(self, kind: str, study) -> None:
        panel = self.query_one(ReplicatesPanel if kind == "replicates" else SearchPanel)
        request = panel.request(study)
        if request is not None:
            self._begin(request)

    def _begin(self, request: RunRequest) -> None:
        problem = self.runner.begin(request)
        if problem:
            self.notify(problem, severity="warning")

    def on_search_panel_confirm(self, message: SearchPanel.Confirm) -> None:
        self._begin(RunRequest("confirm", run_id=message.run_id, top=message.top, count=message.replicates))

    def action_resume_run(self, run_id: str | None = None) -> None:
        """Resume run_id, else the newest interrupted or failed run in the store."""
        run, why = self.runs_model.resumable(run_id)
        if run is None:
            self.notify(why, severity="warning")
            return
        self._begin(RunRequest("resume", run_id=run["id"], view="search" if run["kind"] == "search" else "replicates"))

    def action_stop(self) -> None:
        if not self.runner.stop():
            self.notify("nothing is running", severity="warning")
            return
        self.query_one(StatusLine).set_activity("stopping after the current chunk…")

    def on_run_controller_began(self, message: RunController.Began) -> None:
        r = message.request
        self.query_one(StatusLine).set_activity(notices.began(r, self.runs_model.label(r.run_id)))
        self._show_progress(r.shown_in)
        self.action_show_panel(r.shown_in)

    def _show_progress(self, panel: str) -> None:
        if panel == "replicates":
            self.query_one(ReplicatesPanel).show_progress(self.runner.progress)
        else:
            self.query_one(SearchPanel).show_progress(self.runner.progress)

    def on_run_controller_progressed(self, message: RunController.Progressed) -> None:
        e, search = message.event, message.request.shown_in == "search"
        self._show_progress(message.request.shown_in)
        said = notices.activity(e, search, self.runner.stopping)
        if said:
            self.query_one(StatusLine).set_activity(said)
        if isinstance(e, RunFinished):
            text, severity, timeout = notices.finished(e, search, self.runs_model.label(e.run_id),
                                                       self.formats.took(e.wall_time_s),
                                                       self.editor.doc.file if self.editor.doc is not None else "PRESET")
            self.notify(text, severity=severity, timeout=timeout)

    def on_run_controller_ended(self, message: RunController.Ended) -> None:
        self.query_one(StatusLine).set_activity(f"idle (last run: {message.status})" if message.status else "idle")
        if message.run_id:
            self.runs_model.refresh_runs(forget=message.run_id)
            if message.request.shown_in == "search":
                self.query_one(SearchPanel).show_run(message.run_id)
            else:  # its configs as they are now in the store (the Changed message comes later)
                self.query_one(ComparePanel).set_entries()
                self.query_one(ComparePanel).select_run(message.run_id)
        if self._quit_after_run:
            self.exit(return_code=INTERRUPTED if self.stop_signals else 0)

    # -- the store, compare, export -------------------------------------------------------------
    def on_runs_model_changed(self, message: RunsModel.Changed) -> None:
        if not self.query(RunsPanel):
            return  # the app closes
        self.query_one(RunsPanel).show_runs()
        self.query_one(ComparePanel).set_entries()
        self.query_one(SearchPanel).runs_changed(self.runner.running == "search")

    def on_compare_panel_shown(self, message: ComparePanel.Shown) -> None:
        for panel in self.query(ExportPanel):  # none while the app closes
            panel.show(message.shown)

    def on_runs_panel_run_action(self, message: RunsPanel.RunAction) -> None:
        if message.action == "resume":
            self.action_resume_run(message.run_id)
        elif message.action == "deleted":
            self.runs_model.refresh_runs(forget=message.run_id)
        else:
            self._open_run(message.run_id)

    def _open_run(self, run_id: str) -> None:
        info = self.runs_model.info(run_id)
        if info is not None and info["kind"] == "search":
            if self.runner.running != "search":
                self.query_one(SearchPanel).show_run(run_id)
            self.action_show_panel("search")
            return
        if not self.query_one(ComparePanel).select_run(run_id):
            self.notify(f"run {self.runs_model.label(run_id)} has nothing to compare yet (no finished chunk)",
                        severity="warning")
            return
        self.action_show_panel("compare")

    def action_export(self) -> None:
        self.query_one(ExportPanel).export()

    async def on_search_panel_best_written(self, message: SearchPanel.BestWritten) -> None:
        if self.editor.doc is not None and self.editor.doc.path == message.path and not self.editor.dirty:
            await self.editor.open(message.path)  # the form shows the new config

    # -- navigation, help, quitting, commands ---------------------------------------------------
    def action_show_panel(self, panel: str) -> None:
        self.query_one(TabbedContent).active = panel
        self.call_after_refresh(self._focus_panel, panel)

    def _focus_panel(self, panel: str) -> None:
        try:
            self.query_one(FIRST_FOCUS[panel]).focus()
        except Exception:
            pass

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "presets":
            panel = self.query_one(PresetsPanel)
            if preset_files(self.root) != panel.files:  # files added or removed meanwhile
                panel.refresh_files()

    def action_help(self) -> None:
        """The help screen: the keys of the panel shown, the session's, the selected field's help."""
        if isinstance(self.screen, HelpScreen):
            return
        pane = self.query_one(TabbedContent).active
        panel = self.query_one(f"#{pane}-panel")
        self.push_screen(HelpScreen(dict(PANELS)[pane], list(getattr(panel, "KEYS", [])), SESSION_KEYS,
                                    self._field_help()))

    def _field_help(self) -> str:
        return next((text for form in self.query(FieldForm) if (text := form.focused_help())), "")

    def action_focus_tabs(self) -> None:
        from textual.widgets import Tabs

        self.query_one(Tabs).focus()

    async def action_quit(self) -> None:
        if not self.runner.running:
            if self.editor.dirty:
                def leave(yes: bool | None) -> None:
                    if yes:
                        self.exit()

                self.push_screen(QuitScreen(f"{self.editor.doc.file} has unsaved edits. Quit without saving them?",
                                            "Quit (y)"), leave)
                return
            self.exit()
            return

        def answer(yes: bool | None) -> None:
            if yes and self.runner.stop():
                self._quit_after_run = True  # the worker ends after its chunk; Ended then exits
                self.query_one(StatusLine).set_activity("stopping after the current chunk, then quitting…")

        self.push_screen(QuitScreen(), answer)

    def stop_on_signal(self) -> None:
        """A stop signal: no questions (there may be no one at the terminal). A run ends after
        its current chunk, recorded as interrupted, then the session quits."""
        if self.runner.stop():
            self._quit_after_run = True
            self.query_one(StatusLine).set_activity("stop signal: stopping after the current chunk, then quitting…")
        else:
            self.exit(return_code=INTERRUPTED)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield from session_commands(self)

def session_commands(app: OptuiApp) -> Iterable[SystemCommand]:
    """The palette's actions; "Run search" says which sampler, pruner and trials would run."""
    yield SystemCommand("Save preset", "Write the open preset (comments kept)", app.action_save_preset)
    yield SystemCommand("Run replicates", "Start the chosen configs' replicates", partial(app.start, "replicates"))
    yield SystemCommand("Run search", app.query_one(SearchPanel).describe_run(), partial(app.start, "search"))
    yield SystemCommand("Stop run", "Stop after the current chunk; finished chunks are kept", app.action_stop)
    yield SystemCommand("Export what Compare shows", "PNG, pickle, CSV into exports/<study>/", app.action_export)
    yield SystemCommand("Refresh runs", "Re-read the run store", app.runs_model.refresh_runs)
    yield SystemCommand("Resume run", "Finish the newest interrupted or failed run", app.action_resume_run)
    yield SystemCommand("Confirm best trials", "Re-run the shown search's best trials with fresh replicates",
                        app.query_one(SearchPanel).action_confirm)
    yield SystemCommand("Write best config", "Add the shown search's best config to the open preset",
                        app.query_one(SearchPanel).action_write_best)
    for pid, name in PANELS:
        yield SystemCommand(f"Show {name}", f"Go to the {name} panel", lambda p=pid: app.action_show_panel(p))


def run_app(preset: str | None) -> None:
    """Open the session on the current folder (presets/, runs/, exports/).

    SIGINT, SIGTERM or SIGHUP (an SSH drop) stop a run after its current chunk and quit; a second
    one quits at once, losing at most the chunk in flight. Either way the exit code is 130.
    """
    app = OptuiApp(preset=preset)
    asyncio.run(_session(app))
    # The terminal is back and the store is closed: leave now. The interpreter's own teardown
    # (JAX's backends, idle worker threads) takes seconds with nothing left to keep.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(INTERRUPTED if app.stop_signals else (app.return_code or 0))


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
