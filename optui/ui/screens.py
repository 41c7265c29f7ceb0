"""The quit and delete confirmations, the help screen and the palette's field finder."""

from __future__ import annotations

from functools import partial

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.command import Hit, Hits, Provider
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class QuitScreen(ModalScreen[bool]):
    """Asked when quitting during a run (stop it, keeping finished chunks) or with unsaved edits."""

    BINDINGS = [Binding("y", "answer(True)", "Stop and quit"), Binding("n,escape", "answer(False)", "Back")]

    def __init__(self, question: str = "A run is in progress. Stop it after the current chunk "
                 "(finished chunks are kept) and quit?", yes: str = "Stop and quit (y)") -> None:
        super().__init__()
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Grid(id="quit-dialog"):
            yield Label(self.question, id="quit-question", markup=False)
            yield Button(self.yes, variant="error", id="quit-yes")
            yield Button("Back (n)", variant="primary", id="quit-no")

    def on_mount(self) -> None:
        # enter on arrival must not act: a stray enter goes back, never deletes or quits
        self.query_one("#quit-no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "quit-yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


def ask(app, question: str, yes: str, then) -> None:
    """A yes/no question before an action that changes something (focus on Back): `then()` on yes."""
    app.push_screen(QuitScreen(question, yes), lambda answer: then() if answer else None)


class ChoiceScreen(ModalScreen[str | None]):
    """A question with a few answers, each with its own key; escape is always "back" (None unless
    escape is itself one of the answers)."""

    BINDINGS = [Binding("escape", "answer('escape')", "Back")]

    def __init__(self, question: str, choices: list[tuple[str, str]]) -> None:
        super().__init__()
        self.question = question
        self.choices = choices  # (key, button label)

    def compose(self) -> ComposeResult:
        with Grid(id="choice-dialog"):
            yield Label(self.question, id="choice-question", markup=False)
            with Horizontal(id="choice-buttons"):
                for i, (key, label) in enumerate(self.choices):
                    yield Button(label, id=f"choice-{i}", variant="primary" if i == 0 else "default", compact=True)

    def on_mount(self) -> None:
        # enter on arrival must not act: the focus starts on "back" when there is one
        keys = [k for k, _ in self.choices]
        self.query_one(f"#choice-{keys.index('escape') if 'escape' in keys else 0}", Button).focus()

    def on_key(self, event) -> None:
        keys = [k for k, _ in self.choices]
        if event.key in keys and event.key != "escape":
            event.stop()
            self.dismiss(event.key)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(self.choices[int(event.button.id.split("-")[1])][0])

    def action_answer(self, key: str) -> None:
        self.dismiss(key if key in [k for k, _ in self.choices] else None)


class HelpScreen(ModalScreen[None]):
    """Every key of the panel shown and of the session, and the selected field's help."""

    BINDINGS = [Binding("escape,q,f1,question_mark", "app.pop_screen", "Close")]

    def __init__(self, panel: str, panel_keys: list[tuple[str, str]], session_keys: list[tuple[str, str]],
                 field: str = "") -> None:
        super().__init__()
        self.panel = panel
        self.panel_keys = panel_keys
        self.session_keys = session_keys
        self.field = field

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-dialog"):
            yield Static(help_text(self.panel, self.panel_keys, self.session_keys, self.field), id="help-text")
            yield Label("escape closes this help", classes="note")


def help_text(panel: str, panel_keys: list[tuple[str, str]], session_keys: list[tuple[str, str]],
              field: str = "") -> Table:
    """The help screen's content: the selected field's help, the panel's keys, the session's."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True, max_width=20)
    table.add_column(ratio=1)
    if field:
        table.add_row(Text("Field", style="bold underline"), "")
        table.add_row("", Text(field))
        table.add_row("", "")
    for title, keys in ((f"{panel} panel", panel_keys), ("Everywhere", session_keys)):
        table.add_row(Text(title, style="bold underline"), "")
        for key, what in keys:
            table.add_row(Text(key), Text(what))
        table.add_row("", "")
    return table


class FieldCommands(Provider):
    """The palette finds any field of the open preset: 'adam learning' jumps to it."""

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        app = self.app
        for row in app.preset_form.rows:
            text = "Edit " + row.label.replace(".", " ")  # spaces, so 'adam learn' matches
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), partial(app.edit_field, row.label),
                          help=self._now(row) + (f" · {row.help}" if row.help else ""))

    def _now(self, row) -> str:
        """The value as the field shows it now (rows keep the text they were built with)."""
        try:
            text = self.app.preset_form.input_for(row.label).value
        except Exception:
            text = row.text
        return f"now: {text or row.placeholder or 'unset'}"
