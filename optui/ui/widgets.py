"""Widgets shared by the panels: the field form (preset editor) and the status line."""

from __future__ import annotations

import re
from typing import Callable

from rich.segment import Segment
from textual import events
from textual.strip import Strip
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Label, SelectionList, Static

from .presetdoc import FieldRow, PresetDocument, _literal, label_of, row_for_error


def _dom_id(prefix: str, label: str) -> str:
    return prefix + re.sub(r"[^A-Za-z0-9_-]", "_", label)


# Escape then a digit, arriving together (tmux, a fast SSH link), reads as Alt+digit, which
# Textual names by the character a Mac keyboard's Option+digit types: panel keys, never text.
ALT_DIGIT_KEYS = ("inverted_exclamation_mark", "trade_mark_sign", "pound_sign", "cent_sign", "infinity",
                  "section_sign")
PANEL_KEYS = frozenset(ALT_DIGIT_KEYS) | {f"alt+{i}" for i in range(1, 10)}


class PanelSafeInput(Input):
    """An Input that leaves the panel keys (Alt+digit, however it arrives) to the app."""

    def check_consume_key(self, key: str, character: str | None) -> bool:
        return key not in PANEL_KEYS and super().check_consume_key(key, character)


class FieldInput(PanelSafeInput):
    """An Input that applies its editing keys (backspace, arrows, ctrl+u...) where it applies the
    characters typed: in the order they came. Textual runs them only once the key has bubbled up
    to the app, so in a burst of keys (a busy machine, a slow SSH link) "0.5<backspace>1" became
    "0.51", and a backspace typed before a down arrow hit the next field."""

    async def _on_key(self, event: events.Key) -> None:
        if event.is_printable:
            return  # Input's own handler inserts it
        for binding in self._bindings.key_to_bindings.get(event.key, ()):
            if not binding.priority:
                event.stop()
                event.prevent_default()
                await self.run_action(binding.action)
                return


class FieldForm(VerticalScroll):
    """One row per preset field: the key, an input, and the field's error right under the input."""

    # Priority: the app runs them as the key arrives, before it hands the keys typed next to the
    # focused input; otherwise a fast "down 5" types the 5 into the field being left.
    BINDINGS = [Binding("down", "field(1)", "Next field", show=False, priority=True),
                Binding("up", "field(-1)", "Previous field", show=False, priority=True),
                # A page of fields, also while one has focus (a long error can push rows off-screen).
                Binding("pagedown", "page(1)", "Page down", show=False, priority=True),
                Binding("pageup", "page(-1)", "Page up", show=False, priority=True),
                Binding("ctrl+z", "revert", "Revert field", show=False)]


    class FieldFocused(Message):
        """A field got the focus: its row (key, help, default) for the hint line."""

        def __init__(self, form: "FieldForm", row: FieldRow) -> None:
            super().__init__()
            self.form = form
            self.row = row

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
        self._items: dict[tuple, Widget] = {}  # heading, row or note key -> its widget, in order
        self._syncing = False
        self._id_prefix = f"{self.id or 'form'}-"

    async def show(self, doc: PresetDocument | None, rows: list[FieldRow]) -> None:
        """Show these rows, keeping the widgets of rows already shown (and so the focus and the
        cursor): a field set that changes while the user types (another optimizer or workload)
        mounts and removes only the rows that come and go. A full rebuild takes seconds."""
        focused = self.focused_label()
        new_doc = doc is not self.doc
        self.doc = doc
        self.rows = [r for r in rows if not self.prefix or r.label.startswith(self.prefix)]
        plan = self._plan()
        wanted = [key for key, _ in plan]
        kept = [key for key in self._items if key in set(wanted)]
        if kept != [key for key in wanted if key in self._items]:
            kept = []  # the order changed: build everything again
        stale = [w for key, w in self._items.items() if key not in kept]
        if stale:
            await self.remove_children(stale)  # awaited: a rebuild must not race the previous one
        items = {key: self._items[key] for key in kept}
        anchor, pending = None, []
        for key, make in plan:
            if key in items:
                await self._mount_after(anchor, pending)
                anchor, pending = items[key], []
            else:
                items[key] = make()
                pending.append(items[key])
        await self._mount_after(anchor, pending)
        self._items = {key: items[key] for key in wanted}
        self._by_input = {_dom_id(self._id_prefix + "in-", r.label): r for r in self.rows}
        self._refresh_kept(kept, new_doc)
        if focused and self.focused_label() != focused:
            self.focus_label(focused)

    def _plan(self) -> list[tuple[tuple, Callable[[], Widget]]]:
        """(key, widget factory) for each heading, row or note, in order."""
        plan: list[tuple[tuple, Callable[[], Widget]]] = []
        section: tuple = ()
        for row in self.rows:
            if row.key[:-1] != section:  # a heading per table keeps the keys short at 80 columns
                section = row.key[:-1]
                text = f"[{label_of(section)}]" if section else "[top level]"
                key = ("section", section)
                plan.append((key if key not in dict(plan) else key + (len(plan),),
                             lambda text=text: Label(text, classes="field-section", markup=False)))
            plan.append((("row", row.label), lambda row=row: self._row_widget(row)))
        if not plan:
            plan.append((("note",), lambda: Static(self.empty_note, classes="note")))
        return plan

    def _row_widget(self, row: FieldRow) -> Widget:
        # No select-on-focus: a key typed on arrival must not replace the whole value.
        inp = FieldInput(row.text, placeholder=row.placeholder, id=_dom_id(self._id_prefix + "in-", row.label),
                         compact=True, tooltip=row.help or None, select_on_focus=False)
        inp.cursor_blink = getattr(self.app, "cursor_blink", True)
        return Horizontal(
            Label(str(row.key[-1]), classes="field-key", markup=False),
            Vertical(inp, Static("", id=_dom_id(self._id_prefix + "err-", row.label),
                                 classes="field-error", markup=False)),
            classes="field-row")

    async def _mount_after(self, anchor: Widget | None, widgets: list[Widget]) -> None:
        if widgets:
            if anchor is not None:
                await self.mount_all(widgets, after=anchor)
            elif self.children:
                await self.mount_all(widgets, before=0)
            else:
                await self.mount_all(widgets)

    def _refresh_kept(self, kept: list[tuple], new_doc: bool) -> None:
        """Kept rows take the new defaults and help; for another document its values too, and
        the old errors go. (For the same document the inputs are ahead of it: keys typed since
        the rows were read are still on their way to it.)"""
        rows = {r.label: r for r in self.rows}
        for key in kept:
            if key[0] != "row":
                continue
            row = rows[key[1]]
            inp = self.input_for(row.label)
            inp.placeholder = row.placeholder
            inp.tooltip = row.help or None
            if new_doc:
                inp.value = row.text
                self._set_error(row.label, "")

    def action_field(self, step: int) -> None:
        """Up and down move between fields (Input itself has no use for them)."""
        label = self.focused_label()
        labels = [r.label for r in self.rows]
        if label in labels:
            i = min(max(labels.index(label) + step, 0), len(labels) - 1)
            self.focus_label(labels[i])
        elif labels:
            self.focus_label(labels[0])

    def action_revert(self) -> None:
        """ctrl+z: the focused field goes back to the value the file holds (an edit like any other)."""
        row = self.focused_row()
        if row is not None and self.doc is not None:
            self.input_for(row.label).value = self.doc.saved_value(row.key)

    def action_page(self, step: int) -> None:
        """Move the focus by about a screen of fields; the form scrolls with it."""
        rows = max(self.size.height // 2, 1)  # a row is a key and its (usually hidden) error
        self.action_field(step * rows)

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        row = self._by_input.get(event.widget.id or "")
        if row is not None:
            self.post_message(self.FieldFocused(self, row))

    def focused_help(self) -> str:
        """The focused field's help and its error now, for the help screen ("" without focus)."""
        row = self.focused_row()
        if row is None:
            return ""
        parts = [row.label] + ([row.help] if row.help else []) + (
            [row.placeholder] if row.placeholder else ["required"] if row.required else [])
        error = self.error_text(row.label)
        return " · ".join(parts) + (f"\nNow: {error}" if error else "")

    def focused_row(self) -> FieldRow | None:
        label = self.focused_label()
        return next((r for r in self.rows if r.label == label), None)

    def focused_label(self) -> str | None:
        focused = self.app.focused if self.is_mounted else None
        row = self._by_input.get(focused.id) if isinstance(focused, Input) and focused.id else None
        return row.label if row else None

    def focus_label(self, label: str) -> bool:
        try:
            inp = self.query_one("#" + _dom_id(self._id_prefix + "in-", label), Input)
            # At once, not on the next tick as Input.focus() does: keys typed right after an
            # arrow (typeahead, key repeat) must land in the new field, not the one left.
            inp.screen.set_focus(inp)
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
            if error and ((target and row.label == target.label) or (target is None and row.label == edited)):
                placed = True  # its own error (an empty field) explains the validation error too
                text = text or error
            self._set_error(row.label, text)
        return placed

    def _set_error(self, label: str, text: str) -> None:
        try:
            err = self.query_one("#" + _dom_id(self._id_prefix + "err-", label), Static)
        except Exception:
            return
        err.update(text)
        err.display = bool(text)
        err.parent.parent.set_class(bool(text), "invalid")

    def on_input_changed(self, event: Input.Changed) -> None:
        row = self._by_input.get(event.input.id or "")
        if row is None or self.doc is None or self._syncing:
            return
        event.stop()
        if event.value == self._current_text(row):
            return
        parse_error = self.doc.set_field(row.key, event.value, row.is_str, row.required)
        self.post_message(self.Edited(self, row, parse_error))

    def on_input_blurred(self, event: Input.Blurred) -> None:
        event.input.cursor_position = 0  # a long value left behind shows its start, not its tail

    def _current_text(self, row: FieldRow) -> str:
        value = self.doc.get(row.key) if self.doc else None
        return "" if value is None else _literal(value)


class ToggleList(SelectionList[str]):
    """Space toggles the highlighted entry at once. SelectionList toggles a message later, at the
    row highlighted by then: a quick "down space down down space" toggled the last row twice."""

    def action_select(self) -> None:
        if self.highlighted is not None:
            self.toggle(self.get_option_at_index(self.highlighted))

    def render_line(self, y: int) -> Strip:
        """An unticked box is empty, not an X in another colour: ticks must read without colour."""
        line = super().render_line(y)
        try:
            option = self.get_option_at_index(self.scroll_offset.y + y)
        except Exception:
            return line
        segments = list(line)
        if len(segments) > 1 and segments[1].text == "X" and option.value not in self._selected:
            segments[1] = Segment(" ", segments[1].style, segments[1].control)
            return Strip(segments, line.cell_length)
        return line


def device_label(backend: str, device: str) -> str:
    """'cpu', 'cpu:cpu x1' -> 'JAX on CPU'; 'gpu', 'gpu:NVIDIA H200 x2' -> 'JAX on GPU (NVIDIA H200) x2'."""
    platform, _, rest = device.partition(":")
    kind, _, count = rest.rpartition(" x")
    label = f"JAX on {backend.upper()}"
    if kind and kind.lower() != platform.lower():
        label += f" ({kind})"
    if count and count != "1":
        label += f" x{count}"
    return label


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
