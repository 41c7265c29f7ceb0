"""The Search panel's run controls: the space to run, its sampler and pruner (the preset's until
changed here), and the trial count. They own their values; `SpaceChosen` says when the space
changes (the panel then shows that space's searches)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Input, Label, Select

from ...study.search_space import PRUNERS, SAMPLERS
from ..widgets import PanelSafeInput
from .replicates import count_problem

NONE = ""  # the value of a list's "nothing to choose" entry (a Select is never blank)


def chosen(select: Select) -> str | None:
    value = select.value
    return value if isinstance(value, str) and value != NONE else None


class SearchControls(Horizontal):
    class SpaceChosen(Message):
        def __init__(self, space: str | None) -> None:
            super().__init__()
            self.space = space

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.study = None
        self._preset_trials = ""  # the trial count last taken from the preset

    def compose(self) -> ComposeResult:
        yield Select([("(no space)", NONE)], value=NONE, allow_blank=False, id="search-space", compact=True)
        yield Select([(s, s) for s in SAMPLERS], value="random", allow_blank=False, id="search-sampler",
                     compact=True, tooltip="sampler")
        yield Select([(f"prune:{p}", p) for p in PRUNERS], value="none", allow_blank=False,
                     id="search-pruner", compact=True, tooltip="pruner")
        yield Label(" trials ")
        yield PanelSafeInput("", id="search-count", type="integer", compact=True)

    def set_study(self, study) -> None:
        """The open preset's spaces (the chosen one kept), its sampler, pruner and trials."""
        self.study = study
        spaces = list(study.search) if study is not None and study.search else []
        select = self.query_one("#search-space", Select)
        current = chosen(select)
        with self.prevent(Select.Changed):
            select.set_options([(s, s) for s in spaces] or [("(no space)", NONE)])
            select.value = current if current in spaces else (spaces[0] if spaces else NONE)
        self._take_presets()
        if spaces:
            count = self.query_one("#search-count", Input)
            if count.value in ("", self._preset_trials):  # the user's own count stays
                self._preset_trials = count.value = str(study.search[select.value].trials)

    def show_space(self, space: str) -> None:
        """Choose this space when the preset has it (a stored search of it is shown)."""
        spaces = list(self.study.search) if self.study is not None and self.study.search else []
        if space in spaces and space != self.space:
            with self.prevent(Select.Changed):
                self.query_one("#search-space", Select).value = space
            self._take_presets()

    def _take_presets(self) -> None:
        space = self.space
        sp = self.study.search[space] if self.study is not None and space else None
        if sp is not None:
            with self.prevent(Select.Changed):
                self.query_one("#search-sampler", Select).value = sp.sampler
                self.query_one("#search-pruner", Select).value = sp.pruner

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "search-space":
            event.stop()
            self._take_presets()
            self.post_message(self.SpaceChosen(self.space))

    @property
    def space(self) -> str | None:
        return chosen(self.query_one("#search-space", Select))

    @property
    def strategy(self) -> tuple[str, str]:
        return (chosen(self.query_one("#search-sampler", Select)) or "random",
                chosen(self.query_one("#search-pruner", Select)) or "none")

    def trial_count(self) -> str:
        return self.query_one("#search-count", Input).value.strip()

    def trials_requested(self) -> tuple[int, str | None]:
        """(the trial count, None) or (0, why it cannot run)."""
        text = self.trial_count()
        problem = count_problem("trials", text)
        self.query_one("#search-count", Input).set_class(problem is not None, "-invalid")
        return (0, problem) if problem else (int(text), None)

    def describe(self) -> str:
        """What ctrl+r would run, as the palette says it."""
        if self.space is None:
            return "Open a preset with a [search.*] space first"
        sampler, pruner = self.strategy
        pruned = "" if pruner == "none" else f", {pruner} pruning"
        return f"Start a {sampler} search of space {self.space!r}: {self.trial_count() or '?'} trials{pruned}"
