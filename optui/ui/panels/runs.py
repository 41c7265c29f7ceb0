"""Runs: the history in the store; open a run, resume an interrupted one, delete one (asked
first), and show where a run's exports go."""

from __future__ import annotations


from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from ...errors import OptuiError
from ...status import Status
from ..jobs import export_folder
from ..screens import ask

RESUMABLE = (Status.INTERRUPTED, Status.FAILED)
NOTE = "enter open · r resume · d delete · e export folder · ? help"


class RunsPanel(Vertical):
    BINDINGS = [Binding("r", "act('resume')", "Resume", show=False),
                Binding("d,delete", "act('delete')", "Delete", show=False),
                Binding("e", "act('export')", "Export folder", show=False)]
    KEYS = [("enter", "open the run: a study in Compare, a search in Search"),
            ("r", "resume the run (interrupted or failed): finished chunks are kept"),
            ("d / delete", "delete the run from the store (asks first)"),
            ("e", "show the run's export folder (and copy its path)"),
            ("up / down", "move between runs, newest first")]

    class RunAction(Message):
        """enter (open), r (resume) on a run, or it was deleted: the session does what follows."""

        def __init__(self, action: str, run_id: str) -> None:
            super().__init__()
            self.action = action
            self.run_id = run_id

    def __init__(self, runs, **kwargs) -> None:
        super().__init__(**kwargs)
        self.runs = runs  # the runs model
        self.run_ids: list[str] = []
        self.infos: dict[str, dict] = {}

    def run_label(self, run_id: str) -> str:
        return self.runs.label(run_id)

    def compose(self) -> ComposeResult:
        yield Static(NOTE, id="runs-note", classes="note", markup=False)
        yield DataTable(id="runs-table", cursor_type="row")
        yield Static("", id="runs-said", classes="note", markup=False)

    def on_mount(self) -> None:
        # configs before the timings: at 80 columns it is what tells runs apart.
        self.query_one("#runs-table", DataTable).add_columns(
            "run", "study", "kind", "status", "reps", "configs", "wall s", "created")

    def show_runs(self) -> None:
        """The store's runs, newest first (the runs model's formats say how ids and times read)."""
        table = self.query_one("#runs-table", DataTable)
        row = table.cursor_row
        table.clear()
        self.run_ids = []
        runs = self.runs.runs
        self.infos = {info["id"]: info for info in runs}
        for info in reversed(runs):  # newest first
            wall, created = self.runs.formats.run_times(info)
            units = (f"{len(info['units'])} trials" if info["kind"] == "search"
                     else ",".join(info["units"]))
            table.add_row(self.run_label(info["id"]), info["study"], info["kind"], info["status"],
                          f"{info['replicates_done']}/{info['replicates_total']}", units, wall, created)
            self.run_ids.append(info["id"])
        if self.run_ids:
            table.move_cursor(row=min(row, len(self.run_ids) - 1))

    def say(self, text: str) -> None:
        self.query_one("#runs-said", Static).update(text)

    def highlighted(self) -> str | None:
        row = self.query_one("#runs-table", DataTable).cursor_row
        return self.run_ids[row] if 0 <= row < len(self.run_ids) else None

    def action_act(self, action: str) -> None:
        run_id = self.highlighted()
        if run_id is None:
            return
        if action == "delete":
            self.ask_delete(run_id)
        elif action == "export":
            self.say_export_folder(run_id)
        else:
            self.post_message(self.RunAction(action, run_id))

    def _describe(self, run_id: str) -> str:
        info = self.infos.get(run_id, {})
        return (f"run {self.run_label(run_id)} ({info.get('study', '?')}, {info.get('kind', '?')}, "
                f"{info.get('status', '?')})")

    def ask_delete(self, run_id: str) -> None:
        """Delete a run from the store after asking; never the run this session is running."""
        app = self.app
        if app.runner.running and run_id == app.runner.run_id:
            app.notify("this run is in progress: stop it first (ctrl+t)", severity="error")
            return
        what = self._describe(run_id)

        ask(app, f"Delete {what} and everything recorded for it? Its exports are kept.", "Delete (y)",
            lambda: self._delete(run_id, what))

    def _delete(self, run_id: str, what: str) -> None:
        from ...store.removal import delete_run

        try:
            delete_run(self.runs.store, run_id)
        except OptuiError as exc:
            self.app.notify(str(exc), title="not deleted", severity="error")
            return
        self.say(f"deleted {what}")
        self.post_message(self.RunAction("deleted", run_id))

    def say_export_folder(self, run_id: str) -> None:
        """Where the run's exports go, whether they exist yet; the path goes to the clipboard too."""
        info = self.infos.get(run_id)
        if info is None:
            return
        root = self.app.root
        folder = export_folder(root, info["study"], [run_id])
        state = "exists" if folder.is_dir() else "not written yet: select it in Compare, then ctrl+o"
        shown = folder.relative_to(root) if folder.is_relative_to(root) else folder
        self.say(f"exports of {self.run_label(run_id)}: {shown}/ ({state})")
        try:
            self.app.copy_to_clipboard(str(folder))
        except Exception:
            pass  # a terminal without clipboard support: the path is on screen

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if 0 <= event.cursor_row < len(self.run_ids):
            self.post_message(self.RunAction("open", self.run_ids[event.cursor_row]))
