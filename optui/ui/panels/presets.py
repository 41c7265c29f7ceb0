"""Presets: the preset files of ./presets and an editor for every field of the open one."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Label, ListItem, ListView, Static

from ..widgets import FieldForm


def preset_files(root: Path) -> list[Path]:
    folder = root / "presets"
    return sorted(folder.glob("*.toml")) if folder.is_dir() else []


def field_hint(row) -> str:
    """One line about a field: its key, what it means and its default."""
    parts = [row.label]
    if row.help:
        parts.append(row.help)
    if row.placeholder:
        parts.append(row.placeholder)
    elif row.required:
        parts.append("required")
    return " · ".join(parts)


class PresetsPanel(Vertical):
    KEYS = [("enter", "open the preset under the cursor (list on the left)"),
            ("up / down", "previous / next field"),
            ("pageup / pagedown", "a page of fields, also while a field has focus"),
            ("ctrl+s", "save the preset (comments kept; invalid text is never written; a file changed "
                       "on disk meanwhile is never overwritten: reload or merge)"),
            ("ctrl+z", "in a field: put back the value the file holds"),
            ("ctrl+p", "palette: type part of a field's name to jump to it"),
            ("an empty field", "its default; a required field shows an error on itself")]

    class Open(Message):
        def __init__(self, path: Path) -> None:
            super().__init__()
            self.path = path

    def __init__(self, root: Path, **kwargs) -> None:
        super().__init__(**kwargs)
        self.root = root
        self.files: list[Path] = []
        self._pointed: Path | None = None  # the file opened at start: the list's cursor goes there

    def compose(self) -> ComposeResult:
        with Horizontal():
            with Vertical(id="preset-side"):
                yield Label("presets/", classes="heading")
                yield ListView(id="preset-list")
            with Vertical(id="preset-main"):
                yield Static("no preset open: pick one on the left (enter)", id="preset-header", markup=False)
                yield Static("", id="preset-error", classes="field-error", markup=False)
                yield FieldForm(id="preset-form", empty_note="no preset open")
                yield Static("", id="preset-hint", classes="note", markup=False)

    def on_mount(self) -> None:
        self.refresh_files()

    def refresh_files(self) -> None:
        self.files = preset_files(self.root)
        lst = self.query_one("#preset-list", ListView)
        lst.clear()
        if not self.files:
            lst.append(ListItem(Label("(none in ./presets)")))
        for p in self.files:
            lst.append(ListItem(Label(p.name, markup=False)))
        if self.files:
            full = [p.resolve() for p in self.files]
            at = full.index(self._pointed) if self._pointed in full else 0
            self.call_after_refresh(setattr, lst, "index", at)  # enter opens at once

    def point_at(self, path: Path) -> None:
        """Put the list's cursor on this file (the one opened from the command line)."""
        self._pointed = (path if path.is_absolute() else self.root / path).resolve()
        if self.is_mounted:
            self.refresh_files()

    def on_list_view_selected(self, event: ListView.Selected) -> None:
        event.stop()
        index = event.index  # the row enter was pressed on, not where the cursor went since
        if index is not None and 0 <= index < len(self.files):
            self.post_message(self.Open(self.files[index]))

    def on_field_form_field_focused(self, message) -> None:
        self.query_one("#preset-hint", Static).update(field_hint(message.row))

    def set_header(self, text: str, error: str = "") -> None:
        self.query_one("#preset-header", Static).update(text)
        err = self.query_one("#preset-error", Static)
        err.update(error)
        err.display = bool(error)
