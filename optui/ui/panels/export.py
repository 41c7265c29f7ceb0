"""Export: PNG, pickle and CSV of what Compare shows, into exports/<study>/<run id>/."""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Checkbox, Static

from .. import jobs
from ..shown import combine
from .compare import Shown


class ExportPanel(Vertical):
    KEYS = [("space", "tick or untick a format"), ("enter / ctrl+o", "export what Compare shows"),
            ("", "files go to exports/<study>/<run id>/; a figure of a preset's view takes its title")]

    class Done(Message):
        def __init__(self, paths: list[Path]) -> None:
            super().__init__()
            self.paths = paths

    def __init__(self, root: Path, runs, **kwargs) -> None:
        super().__init__(**kwargs)
        self.root = root
        self.runs = runs  # the runs model: loads what Compare shows
        self.shown: Shown | None = None
        self.written: list[Path] = []

    def compose(self) -> ComposeResult:
        yield Static("Nothing to export: select configs in Compare (4) first.", id="exp-what")
        with Horizontal(id="exp-formats"):
            yield Checkbox("PNG", True, id="exp-png", compact=True)
            yield Checkbox("pickle", True, id="exp-pickle", compact=True)
            yield Checkbox("CSV", True, id="exp-csv", compact=True)
            yield Button("Export (ctrl+o)", id="exp-go", compact=True)
        yield Static("nothing exported yet", id="exp-written")

    def formats(self) -> list[str]:
        ids = {"png": "#exp-png", "pickle": "#exp-pickle", "csv": "#exp-csv"}
        return [f for f, sel in ids.items() if self.query_one(sel, Checkbox).value]

    def show(self, shown: Shown) -> None:
        """What Compare shows now: the next export writes it."""
        self.shown = shown
        if not shown.selection:
            text = "Nothing to export: select configs in Compare (4) first."
        else:
            what = ", ".join(label for _, _, label in shown.selection)
            titled = f"\nfigure title: {shown.title}" if shown.title else ""
            text = f"What Compare shows: {what}\n{shown.description}{titled}"
        self.query_one("#exp-what", Static).update(text)

    def _relative(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def export(self) -> None:
        shown = self.shown
        if shown is None or not shown.selection:
            self.app.notify("nothing to export: select configs in Compare (4) first", severity="error")
            return
        loaded = {rid: self.runs.load(rid) for rid, _, _ in shown.selection}
        combined = combine([(rid, unit) for rid, unit, _ in shown.selection], loaded)
        if combined is None:
            self.app.notify("nothing to export: the selected runs could not be read", severity="error")
            return
        formats = self.formats()
        if not formats:
            self.app.notify("choose at least one format (PNG, pickle, CSV)", severity="error")
            return
        run, names = combined
        out_dir = jobs.export_folder(self.root, run.study, run.meta["runs"])
        self.query_one("#exp-written", Static).update(f"writing {', '.join(formats)} to {self._relative(out_dir)}/ …")
        self._export(run, names, shown, formats, out_dir)

    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def _export(self, run, names: list[str], shown: Shown, formats: list[str], out_dir: Path) -> None:
        with jobs.reported(self.post_message, "export"):
            self.post_message(self.Done(jobs.export_shown(run, names, shown.metric, shown.metric_label, shown.band,
                                                          formats, out_dir, shown.title)))

    def on_export_panel_done(self, message: Done) -> None:
        message.stop()
        self.written = message.paths
        shown = [self._relative(p) for p in message.paths]
        self.query_one("#exp-written", Static).update("wrote:\n" + "\n".join(shown))
        self.app.notify(f"wrote {len(shown)} files to {Path(shown[0]).parent}/" if shown else "nothing written")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "exp-go":
            event.stop()
            self.export()
