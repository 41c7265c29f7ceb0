"""Runs: the history in the store; enter opens a run in Compare."""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static


class RunsPanel(Vertical):
    class OpenRun(Message):
        def __init__(self, run_id: str) -> None:
            super().__init__()
            self.run_id = run_id

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.run_ids: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static("enter: open in Compare", classes="note")
        yield DataTable(id="runs-table", cursor_type="row")

    def on_mount(self) -> None:
        self.query_one("#runs-table", DataTable).add_columns(
            "run", "study", "kind", "status", "reps", "wall s", "created", "configs")

    def show_runs(self, runs: list[dict], run_label, hide_volatile: bool) -> None:
        table = self.query_one("#runs-table", DataTable)
        table.clear()
        self.run_ids = []
        for info in reversed(runs):  # newest first
            created = "-" if hide_volatile else time.strftime("%m-%d %H:%M", time.localtime(info["created"]))
            wall = "-" if hide_volatile else f"{info['wall_time_s']:.1f}"
            units = (f"{len(info['units'])} trials" if info["kind"] == "search"
                     else ",".join(info["units"]))
            table.add_row(run_label(info["id"]), info["study"], info["kind"], info["status"],
                          f"{info['replicates_done']}/{info['replicates_total']}", wall, created, units)
            self.run_ids.append(info["id"])

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if 0 <= event.cursor_row < len(self.run_ids):
            self.post_message(self.OpenRun(self.run_ids[event.cursor_row]))
