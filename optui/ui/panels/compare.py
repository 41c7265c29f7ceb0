"""Compare: finished configs of any runs overlaid; minibatch, train or test loss; band type."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Select, SelectionList
from textual_plotext import PlotextPlot

from ...stats import BAND_KINDS
from .. import plots
from ..widgets import ToggleList

METRIC_OPTIONS = (("minibatch loss", "minibatch_loss"), ("train loss", "train_loss"),
                  ("test loss", "test_loss"), ("train vs test", "train_test"))
_BAND_NAMES = {"minmax": "min-max", "iqr": "IQR", "ci95": "95% CI"}
BAND_OPTIONS = tuple((_BAND_NAMES[k], k) for k in BAND_KINDS)
COMPARE_STATUSES = ("done", "interrupted")


class ComparePanel(Vertical):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.dirty = False
        self.entries: dict[str, tuple[str, str, str]] = {}  # value -> (run id, unit, label)
        self.loader = None  # callable run_id -> RunResult (the app's cache)
        self.drawn = 0  # series on the plot (the tests poll this)

    def compose(self) -> ComposeResult:
        with Horizontal(id="cmp-top"):
            yield ToggleList(id="cmp-units", compact=True)
            with Vertical(id="cmp-options"):
                yield Select(METRIC_OPTIONS, value="minibatch_loss", allow_blank=False, id="cmp-metric",
                             compact=True)
                yield Select(BAND_OPTIONS, value="minmax", allow_blank=False, id="cmp-band", compact=True)
        yield PlotextPlot(id="cmp-plot")

    def on_mount(self) -> None:
        self.set_interval(0.25, self._replot)
        self.dirty = True

    @property
    def metric(self) -> str:
        return str(self.query_one("#cmp-metric", Select).value)

    @property
    def band_kind(self) -> str:
        return str(self.query_one("#cmp-band", Select).value)

    def describe(self) -> str:
        """The metric and band as the user chose them: 'test loss, mean and min-max'."""
        name = dict((v, k) for k, v in METRIC_OPTIONS)[self.metric]
        band = dict((v, k) for k, v in BAND_OPTIONS)[self.band_kind]
        return f"{name}, mean and {band}"

    def set_entries(self, runs: list[dict], run_label) -> None:
        """Every config with data in the store (newest runs first), keeping the selection."""
        sel = self.query_one("#cmp-units", SelectionList)
        selected = set(sel.selected)
        sel.clear_options()
        self.entries = {}
        for info in reversed(runs):
            if info["kind"] != "study" and info["kind"] != "import":
                continue
            for unit, status in info["unit_status"].items():
                if status not in COMPARE_STATUSES:  # pending units have nothing to draw
                    continue
                value = f"{info['id']}\t{unit}"
                mark = "" if status == "done" else f" [{status}]"
                label = f"{info['study']}/{unit}{mark} · {run_label(info['id'])}"
                self.entries[value] = (info["id"], unit, label)
                sel.add_option((Text(label), value, value in selected))  # Text: no markup in names
        self.dirty = True

    def select_run(self, run_id: str) -> bool:
        """Show this run's configs instead of the selection; a run with nothing to draw (stopped
        before its first chunk) leaves the selection as it was. True if the selection changed."""
        values = [value for value, (rid, _, _) in self.entries.items() if rid == run_id]
        if not values:
            return False
        sel = self.query_one("#cmp-units", SelectionList)
        sel.deselect_all()
        for value in values:
            sel.select(value)
        self.dirty = True
        return True

    def selection(self) -> list[tuple[str, str, str]]:
        sel = self.query_one("#cmp-units", SelectionList)
        return [self.entries[v] for v in sel.selected if v in self.entries]

    def on_selection_list_selected_changed(self, event) -> None:
        self.dirty = True

    def on_select_changed(self, event: Select.Changed) -> None:
        self.dirty = True

    def _replot(self) -> None:
        plot = self.query_one("#cmp-plot", PlotextPlot)
        if plot.size != getattr(self, "_drawn_size", None):
            self.dirty = True  # resized: the curves are binned to the width
        if not self.dirty or not self.display or self.loader is None:
            return
        self.dirty = False
        self._drawn_size = plot.size
        width = max(plot.size.width - 12, 10)
        groups = []
        for run_id, unit, label in self.selection():
            run = self.loader(run_id)
            if run is not None and unit in run.units:
                short = label.split(" · ")[0]
                groups.append(plots.unit_series(run.units[unit], self.metric, short, self.band_kind, width))
        plots.draw(plot.plt, groups, self.describe(), self._empty_note(groups), plot.size.height)
        plot.refresh()
        self.drawn = sum(len(g) for g in groups)

    def _empty_note(self, groups: list) -> str:
        if groups:
            return "nothing recorded for this metric"
        if not self.entries:
            return "no finished runs yet: run replicates (2, ctrl+r)"
        return "select configs above (space)"
