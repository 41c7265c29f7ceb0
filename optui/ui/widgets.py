"""Widgets shared by the panels: the field form (preset editor) and the status line."""

from __future__ import annotations

import re

from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, Static

from .presetdoc import FieldRow, PresetDocument, _literal, label_of, row_for_error


def _dom_id(prefix: str, label: str) -> str:
    return prefix + re.sub(r"[^A-Za-z0-9_-]", "_", label)


class FieldForm(VerticalScroll):
    """One row per preset field: the key, an input, and the field's error right under the input."""

    BINDINGS = [Binding("down", "field(1)", "Next field", show=False),
                Binding("up", "field(-1)", "Previous field", show=False)]

    class Edited(Message):
        """The user changed a field; the document already holds the new value."""

        def __init__(self, form: "FieldForm", row: FieldRow, parse_error: str | None) -> None:
            super().__init__()
            self.form = form
            self.row = row
            self.parse_error = parse_error

    def __init__(self, prefix: str = "", empty_note: str = "no fields", **kwargs) -> None:
        super().__init__(**kwargs)
        self.prefix = prefix  # only rows whose key starts with this (e.g. "search")
        self.empty_note = empty_note
        self.doc: PresetDocument | None = None
        self.rows: list[FieldRow] = []
        self._by_input: dict[str, FieldRow] = {}
        self._syncing = False
        self._id_prefix = f"{self.id or 'form'}-"

    async def show(self, doc: PresetDocument | None, rows: list[FieldRow]) -> None:
        """Rebuild the rows (a new document, or a field set that changed); keeps the focused key."""
        focused = self.focused_label()
        self.doc = doc
        self.rows = [r for r in rows if not self.prefix or r.label.startswith(self.prefix)]
        self._by_input = {}
        await self.remove_children()  # awaited: a rebuild must not race the previous one
        widgets = []
        section: tuple = ()
        for row in self.rows:
            if row.key[:-1] != section:  # a heading per table keeps the keys short at 80 columns
                section = row.key[:-1]
                widgets.append(Label(f"[{label_of(section)}]" if section else "[top level]",
                                     classes="field-section", markup=False))
            input_id = _dom_id(self._id_prefix + "in-", row.label)
            self._by_input[input_id] = row
            inp = Input(row.text, placeholder=row.placeholder, id=input_id, compact=True,
                        tooltip=row.help or None)
            inp.cursor_blink = getattr(self.app, "cursor_blink", True)
            widgets.append(Horizontal(
                Label(str(row.key[-1]), classes="field-key", markup=False),
                Vertical(inp, Static("", id=_dom_id(self._id_prefix + "err-", row.label),
                                     classes="field-error", markup=False)),
                classes="field-row"))
        if not widgets:
            widgets.append(Static(self.empty_note, classes="note"))
        await self.mount_all(widgets)
        if focused:
            self.focus_label(focused)

    def action_field(self, step: int) -> None:
        """Up and down move between fields (Input itself has no use for them)."""
        label = self.focused_label()
        labels = [r.label for r in self.rows]
        if label in labels:
            i = min(max(labels.index(label) + step, 0), len(labels) - 1)
            self.focus_label(labels[i])
        elif labels:
            self.focus_label(labels[0])

    def focused_label(self) -> str | None:
        focused = self.app.focused if self.is_mounted else None
        row = self._by_input.get(focused.id) if isinstance(focused, Input) and focused.id else None
        return row.label if row else None

    def focus_label(self, label: str) -> bool:
        try:
            inp = self.query_one("#" + _dom_id(self._id_prefix + "in-", label), Input)
            inp.focus()
            self.scroll_to_widget(inp.parent.parent, animate=False)
            return True
        except Exception:
            return False

    def input_for(self, label: str) -> Input:
        return self.query_one("#" + _dom_id(self._id_prefix + "in-", label), Input)

    def error_text(self, label: str) -> str:
        try:
            return str(self.query_one("#" + _dom_id(self._id_prefix + "err-", label), Static).content)
        except Exception:
            return ""

    def sync_values(self) -> None:
        """Show the document's current values (after an edit in another form on the same doc)."""
        if self.doc is None:
            return
        self._syncing = True
        try:
            for input_id, row in self._by_input.items():
                value = self.doc.get(row.key)
                text = "" if value is None else (value if isinstance(value, str) else None)
                inp = self.query_one("#" + input_id, Input)
                if text is None:
                    text = _literal(value)
                if inp.value != text and not inp.has_focus:
                    inp.value = text
        finally:
            self.call_after_refresh(self._end_sync)

    def _end_sync(self) -> None:
        self._syncing = False

    def show_errors(self, error: str | None, error_key: str | None, edited: str | None,
                    parse_errors: dict[str, str]) -> bool:
        """Put the validation error beside its field (or the edited one). True if a row shows it."""
        target = row_for_error(self.rows, error_key) if error else None
        if error and self.doc is not None and error.startswith(self.doc.file + ": "):
            error = error[len(self.doc.file) + 2:]  # beside the field the file name is noise
        placed = False
        for row in self.rows:
            text = parse_errors.get(row.label, "")
            if not text and error and ((target and row.label == target.label)
                                       or (target is None and row.label == edited)):
                text = error
                placed = True
            try:
                err = self.query_one("#" + _dom_id(self._id_prefix + "err-", row.label), Static)
            except Exception:
                continue
            err.update(text)
            err.display = bool(text)
            err.parent.parent.set_class(bool(text), "invalid")
        return placed

    def on_input_changed(self, event: Input.Changed) -> None:
        row = self._by_input.get(event.input.id or "")
        if row is None or self.doc is None or self._syncing:
            return
        event.stop()
        if event.value == self._current_text(row):
            return
        parse_error = self.doc.set_field(row.key, event.value, row.is_str)
        self.post_message(self.Edited(self, row, parse_error))

    def _current_text(self, row: FieldRow) -> str:
        value = self.doc.get(row.key) if self.doc else None
        return "" if value is None else _literal(value)


class StatusLine(Static):
    """The JAX backend and devices, and what is running."""

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.device = "jax: starting…"
        self.activity = "idle"

    def on_mount(self) -> None:
        self._render_line()

    def set_device(self, text: str) -> None:
        self.device = text
        self._render_line()

    def set_activity(self, text: str) -> None:
        self.activity = text
        self._render_line()

    def _render_line(self) -> None:
        self.update(f" {self.device} │ {self.activity}")
