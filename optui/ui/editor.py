"""The preset editor: the open document, its validation (one generation per edit, checked in a
worker), its saved and dirty state, saving, reverting a field, and watching the file on disk.

It owns the document; the field forms (Presets, Search) show it and report edits. A change of
the file on disk is offered as a reload, or as a merge of the session's edits onto it; a save
never overwrites a file that changed since it was read, and every save ends in a notice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from textual import work
from textual.message import Message
from textual.widget import Widget

from ..study import presets
from ..errors import OptuiError
from . import jobs
from .messages import PresetChecked
from .presetdoc import ChangedOnDisk, PresetDocument, error_key
from .screens import ChoiceScreen
from .widgets import FieldForm

WATCH_S = 1.0  # how often the open file is compared with what was read


class PresetEditor(Widget):
    DEFAULT_CSS = "PresetEditor { display: none; }"

    class Header(Message):
        """What the Presets panel's header says: file, saved state, validity, and an error."""

        def __init__(self, text: str, error: str = "") -> None:
            super().__init__()
            self.text = text
            self.error = error

    class StudyChanged(Message):
        """The document validated to a new study (or the same one after a save)."""

        def __init__(self, study: presets.Study, path: Path) -> None:
            super().__init__()
            self.study = study
            self.path = path

    def __init__(self, root: Path, **kwargs) -> None:
        super().__init__(**kwargs)
        self.root = root
        self.doc: PresetDocument | None = None
        self.study: presets.Study | None = None
        self.preset_error: str | None = None
        self.parse_errors: dict[str, str] = {}
        self.edit_generation = 0
        self.checked_generation = -1
        self.last_edited: str | None = None
        self.fields: dict = {}
        self._fields_cache: dict[str, dict] = {}  # workload -> its field specs
        self._offered: str | None = None  # the disk text last offered for reload or merge

    def on_mount(self) -> None:
        self.set_interval(WATCH_S, self._watch)

    @property
    def dirty(self) -> bool:
        """Edits the file does not hold (text that is no value counts: it is not in the document)."""
        return self.doc is not None and (self.doc.dirty or bool(self.parse_errors))

    @property
    def checked(self) -> bool:
        return self.doc is not None and self.checked_generation == self.edit_generation

    def forms(self) -> list[FieldForm]:
        return list(self.app.query(FieldForm))

    # -- opening and validating ---------------------------------------------------------------
    async def open(self, path: Path) -> bool:
        """Read path into the forms; False (and a notice) when it cannot be read."""
        if self.dirty and self.doc is not None and self.doc.path != path:
            self.notify(f"unsaved edits to {self.doc.file} were left behind", severity="warning")
        full = path if path.is_absolute() else self.root / path
        try:
            display = str(full.relative_to(self.root))  # messages name presets/x.toml, as the CLI does
        except ValueError:
            display = str(full)
        try:
            doc = PresetDocument.read(full, display)
        except OptuiError as exc:
            self.notify(str(exc), title="preset", severity="error")
            return False
        await self._show(doc)
        return True

    async def _show(self, doc: PresetDocument) -> None:
        self.doc, self.parse_errors, self.study, self.preset_error = doc, {}, None, None
        self._offered = None
        self.fields = self._fields_cache.get(str(doc.plain().get("workload")), {})
        if self.fields:
            await self._show_rows()
        else:  # the first preset of a workload: the form is built once its field specs are known
            self.post_message(self.Header(f"{doc.file}: reading the workload's settings…"))
        self._request_check()

    async def _show_rows(self) -> None:
        rows = self.doc.rows(self.fields) if self.doc else []
        for form in self.forms():
            await form.show(self.doc, rows)
        self._header()

    def _request_check(self) -> None:
        if self.doc is None:
            return
        self.edit_generation += 1
        self._check(self.edit_generation, self.doc.text(), self.doc.file, self.doc.plain().get("workload"))

    @work(thread=True, exclusive=True, group="check", exit_on_error=False)
    def _check(self, generation: int, text: str, file: str, workload: object) -> None:
        study, error, fields = jobs.check_preset(text, file, workload)
        self.post_message(PresetChecked(generation, study, error, fields))

    async def on_preset_checked(self, message: PresetChecked) -> None:
        message.stop()
        if message.generation != self.edit_generation or self.doc is None:
            return  # an older edit's result
        self.study, self.preset_error = message.study, message.error
        if message.fields:
            self._fields_cache[str(self.doc.plain().get("workload"))] = message.fields
        form = self.app.query_one("#preset-form", FieldForm)
        new_rows = [r.label for r in self.doc.rows(message.fields)]
        if message.fields != self.fields or new_rows != [r.label for r in form.rows] or form.doc is not self.doc:
            self.fields = message.fields
            await self._show_rows()  # a new document, or the field set changed (another optimizer)
        self.checked_generation = message.generation  # last: tests and callers wait on it
        self._show_errors()
        if self.study is not None:
            self.post_message(self.StudyChanged(self.study, self.doc.path))

    def edited(self, message: FieldForm.Edited) -> None:
        """A form changed a field of the document."""
        label = message.row.label
        self.last_edited = label
        if message.parse_error:
            self.parse_errors[label] = message.parse_error
        else:
            self.parse_errors.pop(label, None)
        for form in self.forms():
            if form is not message.form:
                form.sync_values()
        self._request_check()
        self._show_errors()

    def _show_errors(self) -> None:
        if self.doc is None:
            return
        err = self.preset_error if self.checked else None
        key = error_key(err, self.doc.file) if err else None
        placed = False
        for form in self.forms():
            placed |= form.show_errors(err, key, self.last_edited, self.parse_errors)
        self._header(None if placed else err)

    def _header(self, error: str | None = None) -> None:
        if self.doc is None:
            self.post_message(self.Header("no preset open: pick one on the left (enter)"))
            return
        state = "edited, not saved" if self.dirty else "saved"
        valid = "invalid" if (self.preset_error or self.parse_errors) else "valid"
        self.post_message(self.Header(f"{self.doc.file} · {state} · {valid}", error or ""))

    # -- saving and reverting -----------------------------------------------------------------
    def save(self) -> bool:
        """Write the document; every outcome is a notice. True when the file holds the edits."""
        if self.doc is None:
            self.notify("open a preset first (Presets panel)", severity="error")
            return False
        if self.parse_errors:
            self.notify(next(iter(self.parse_errors.values())), title="not saved", severity="error")
            return False
        if not self.doc.dirty and self.doc.changed_on_disk() is None:
            self.notify(f"nothing to save: {self.doc.file} already holds these values", title="saved")
            return True
        try:
            self.study = self.doc.save()
        except ChangedOnDisk as exc:
            self.notify(str(exc), title="not saved", severity="error", timeout=10)
            self._offer(self.doc.changed_on_disk())
            return False
        except Exception as exc:  # OptuiError says what; anything else still must be seen
            text = str(exc) if isinstance(exc, OptuiError) else f"{type(exc).__name__}: {exc}"
            self.notify(text, title="not saved", severity="error", timeout=10)
            return False
        self.notify(f"saved {self.doc.file}", title="saved")
        self._header()
        self.post_message(self.StudyChanged(self.study, self.doc.path))
        return True

    def study_to_run(self, run: Callable[[presets.Study], None]) -> None:
        """Call run with the study to run: the form's when it is saved; with unsaved edits, ask
        first: the preset as saved, the edits saved and run, or back (nothing runs)."""
        if not self.dirty:
            study = self.current_study()
            if study is not None:
                run(study)
            return

        def answer(choice: str | None) -> None:
            study = None
            if choice == "s":
                study = self.saved_study()
            elif choice == "w" and self.save():
                study = self.study
            if study is not None:
                run(study)

        self.app.push_screen(ChoiceScreen(
            f"{self.doc.file} has unsaved edits. Run the preset as saved (s), save the edits and run "
            f"them (w), or go back (escape)?",
            [("s", "Run saved (s)"), ("w", "Save and run (w)"), ("escape", "Back (esc)")]), answer)

    def saved_study(self) -> presets.Study | None:
        """The study as the file holds it (a run that leaves the edits out); None with a notice."""
        if self.doc is None:
            return None
        try:
            return presets.loads(self.doc.saved_text, self.doc.file)
        except OptuiError as exc:
            self.notify(str(exc), title="the saved preset is invalid", severity="error")
            return None

    def current_study(self) -> presets.Study | None:
        """The study the form shows now, validated; None with a notice saying why not."""
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

    # -- the file on disk ---------------------------------------------------------------------
    def _watch(self) -> None:
        if self.doc is None or self.app.screen is not self.screen:
            return  # a dialog is open: offer later
        text = self.doc.changed_on_disk()
        if text is not None and text != self._offered:
            self._offer(text)

    def _offer(self, text: str | None) -> None:
        if text is None or self.doc is None:
            return
        self._offered = text
        name = self.doc.file
        if self.dirty:
            question = (f"{name} changed on disk. Merge your edits onto it (m), reload it and drop "
                        f"your edits (r), or keep editing (escape: a save will ask again)?")
            choices = [("m", "Merge (m)"), ("r", "Reload (r)"), ("escape", "Keep (esc)")]
        else:
            question = f"{name} changed on disk. Reload it (r), or keep what is shown (escape)?"
            choices = [("r", "Reload (r)"), ("escape", "Keep (esc)")]
        self.app.push_screen(ChoiceScreen(question, choices), self._answer)

    async def _answer(self, choice: str | None) -> None:
        if self.doc is None or choice not in ("m", "r"):
            return
        text = self.doc.changed_on_disk()
        if text is None:
            return
        if choice == "r":
            await self._show(PresetDocument(self.doc.path, text, self.doc.file))
            self.notify(f"reloaded {self.doc.file}")
            return
        merged, problems = self.doc.merged_onto(text)
        await self._show(merged)
        self.notify(f"merged your {len(merged.edits)} edits onto {merged.file} as it is on disk; not saved yet"
                    + ("\n" + "\n".join(problems) if problems else ""), title="merged",
                    severity="warning" if problems else "information")
