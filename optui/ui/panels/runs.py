"""Runs: the history in the store; open a run, resume an interrupted one, delete one (asked
first), and show where a run's exports go."""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from ...status import Status

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
        """enter (open), r (resume), d (delete) or e (export folder) on a run."""

        def __init__(self, action: str, run_id: str) -> None:
            super().__init__()
            self.action = action
            self.run_id = run_id

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.run_ids: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static(NOTE, id="runs-note", classes="note", markup=False)
        yield DataTable(id="runs-table", cursor_type="row")
        yield Static("", id="runs-said", classes="note", markup=False)

    def on_mount(self) -> None:
        # configs before the timings: at 80 columns it is what tells runs apart.
        self.query_one("#runs-table", DataTable).add_columns(
            "run", "study", "kind", "status", "reps", "configs", "wall s", "created")

    def show_runs(self, runs: list[dict], run_label, hide_volatile: bool) -> None:
        table = self.query_one("#runs-table", DataTable)
        row = table.cursor_row
        table.clear()
        self.run_ids = []
        for info in reversed(runs):  # newest first
            created = "-" if hide_volatile else time.strftime("%m-%d %H:%M", time.localtime(info["created"]))
            wall = "-" if hide_volatile else f"{info['wall_time_s']:.1f}"
            units = (f"{len(info['units'])} trials" if info["kind"] == "search"
                     else ",".join(info["units"]))
            table.add_row(run_label(info["id"]), info["study"], info["kind"], info["status"],
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
        if run_id is not None:
            self.post_message(self.RunAction(action, run_id))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if 0 <= event.cursor_row < len(self.run_ids):
            self.post_message(self.RunAction("open", self.run_ids[event.cursor_row]))
