"""Export: PNG, pickle and CSV of what Compare shows, into exports/<study>/."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Checkbox, Static


class ExportPanel(Vertical):
    KEYS = [("space", "tick or untick a format"), ("enter / ctrl+o", "export what Compare shows"),
            ("", "files go to exports/<study>/, named with the run id; nothing is overwritten")]

    def compose(self) -> ComposeResult:
        yield Static("", id="exp-what")
        with Horizontal(id="exp-formats"):
            yield Checkbox("PNG", True, id="exp-png", compact=True)
            yield Checkbox("pickle", True, id="exp-pickle", compact=True)
            yield Checkbox("CSV", True, id="exp-csv", compact=True)
            yield Button("Export (ctrl+o)", id="exp-go", compact=True)
        yield Static("nothing exported yet", id="exp-written")

    def formats(self) -> list[str]:
        ids = {"png": "#exp-png", "pickle": "#exp-pickle", "csv": "#exp-csv"}
        return [f for f, sel in ids.items() if self.query_one(sel, Checkbox).value]

    def describe(self, text: str) -> None:
        self.query_one("#exp-what", Static).update(text)

    def show_written(self, text: str) -> None:
        self.query_one("#exp-written", Static).update(text)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "exp-go":
            event.stop()
            self.app.action_export()
