"""Compare: finished configs of any runs overlaid (minibatch, train or test loss, band type), the
preset's [[compare]] views, and a final-values table: mean, median, band, time-to-target and each
config paired against the first selected one (optui.export.comparison, as `optui compare`)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Select, SelectionList, Static
from textual_plotext import PlotextPlot

from ...results import metrics as metric_decls
from ...errors import OptuiError
from ...results.stats import BAND_KINDS
from .. import plots
from ..widgets import PanelSafeInput, ToggleList

# Runs that declare no metrics (older runs, imports) record TwNet's and MNIST's names.


def metric_label(metric: str) -> str:
    """A metric's label for file titles: "test loss", "minibatch loss", "train vs test"."""
    return plots.NO_METRICS.label(metric)
_BAND_NAMES = {"minmax": "min-max", "iqr": "IQR", "ci95": "95% CI"}
BAND_OPTIONS = tuple((_BAND_NAMES[k], k) for k in BAND_KINDS)
COMPARE_STATUSES = ("done", "interrupted")
DEFAULT_TARGET_MARGIN = 1.05


@dataclass(frozen=True)
class Shown:
    """What Compare shows, for the Export panel: (run id, unit, label) pairs, the metric and band,
    how they read, and the title of the preset's view when one is shown unchanged."""

    selection: tuple[tuple[str, str, str], ...]
    metric: str
    band: str
    description: str
    metric_label: str
    title: str = ""


def _g(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def table_rows(table: DataTable, c) -> None:
    """A comparison (optui.export.comparison) as the final-values table: its columns say which
    way the metric improves (% to<target for a loss, % to>target for an R^2 or an accuracy)."""
    band = _BAND_NAMES.get(c.band, c.band)
    columns = ["config", "n", "mean", "median", band]
    better = ">" if c.higher_is_better else "<"
    if c.target is not None:
        columns.append(f"% to{better}{c.target:.3g}")
    if len(c.entries) > 1:
        columns += [f"P({better}{c.baseline.label.split('/')[-1][:12]})", "wilcoxon p"]
    table.add_columns(*columns)
    for e in c.entries:
        lo_hi = "-" if e.band is None else f"{e.band[0]:.3g}-{e.band[1]:.3g}"
        row = [e.label if len(c.run_ids) > 1 else e.unit.name, str(e.stats["n"]), _g(e.stats["mean"]),
               _g(e.stats["median"]), lo_hi]
        if c.target is not None:
            row.append("-" if e.time_to_target is None else f"{e.time_to_target:.0f}%")
        if len(c.entries) > 1:
            p = e.paired
            if e is c.baseline:
                row += ["base", ""]
            elif p is None:
                row += ["unpaired", ""]
            else:
                row += [f"{p['p_a_below_b']:.2f}", _g(p["wilcoxon_p"])]
        table.add_row(*row)


class ComparePanel(Vertical):
    BINDINGS = [Binding("v", "next_view", "Next view", show=False),
                Binding("t", "toggle_table", "Chart/table", show=False)]
    KEYS = [("space", "tick or untick a config (the first ticked one is the baseline of the table)"),
            ("v", "next of the preset's [[compare]] views (or choose one in 'view')"),
            ("metric / band", "what the plot and the table show"),
            ("target", "loss for time-to-target (empty: 5% above where the worst config ends)"),
            ("table", "final value per replicate: n, mean, median, band, % of run to the target, "
                      "P(below the first) with Wilcoxon p, paired by replicate"),
            ("t", "at 24 rows or fewer: the table instead of the chart, and back"),
            ("ctrl+o", "export what is shown (Export panel)")]

    class Shown(Message):
        """The selection, metric or band changed: what an export would write."""

        def __init__(self, shown: Shown) -> None:
            super().__init__()
            self.shown = shown

    def __init__(self, runs, **kwargs) -> None:
        super().__init__(**kwargs)
        self.runs = runs  # the runs model: the store's runs, loaded on demand
        self.dirty = False
        self.entries: dict[str, tuple[str, str, str]] = {}  # value -> (run id, unit, label)
        self.view_shown: int | None = None  # the preset's view shown as it is (its title names exports)
        self._user_metric = False  # the user chose a metric: a new run keeps it
        self.drawn = 0  # series on the plot (the tests poll this)
        self.run_metrics = plots.NO_METRICS  # the listed runs' metrics (the newest's objective)
        self.views: list = []  # the preset's [[compare]] entries
        self.comparison = None  # what the table shows (optui.export.comparison.Comparison)
        self.table_note = ""

    def compose(self) -> ComposeResult:
        with Horizontal(id="cmp-top"):
            yield ToggleList(id="cmp-units", compact=True)
            with Vertical(id="cmp-options"):
                yield Select(plots.NO_METRICS.plot_choices(), value="minibatch_loss", allow_blank=False, id="cmp-metric",
                             compact=True)
                yield Select(BAND_OPTIONS, value="minmax", allow_blank=False, id="cmp-band", compact=True)
                yield Select([], prompt="view", id="cmp-view", compact=True)
                yield PanelSafeInput("", placeholder="target", id="cmp-target", compact=True)
        yield PlotextPlot(id="cmp-plot")
        yield Static("", id="cmp-legend", markup=False)
        yield DataTable(id="cmp-table", cursor_type="none", zebra_stripes=False)

    def on_mount(self) -> None:
        self.set_interval(0.25, self._replot)
        self.dirty = True
        self.set_entries()

    def on_show(self) -> None:
        self.dirty = True

    def action_toggle_table(self) -> None:
        self.toggle_class("-table")
        self.dirty = True

    @property
    def metric(self) -> str:
        return str(self.query_one("#cmp-metric", Select).value)

    @property
    def band_kind(self) -> str:
        return str(self.query_one("#cmp-band", Select).value)

    def describe(self) -> str:
        """The metric and band as the user chose them: 'test loss, mean and min-max'."""
        name = self.run_metrics.label(self.metric)
        band = dict((v, k) for k, v in BAND_OPTIONS)[self.band_kind]
        return f"{name}, mean and {band}"

    def _set_metrics(self, runs: list[dict]) -> None:
        """Offer the minibatch loss and every metric the listed runs' workloads declare; until the
        user picks one, show the objective of the newest run's workload."""
        declared: dict[str, metric_decls.Metric] = {}
        newest = None
        for info in reversed(runs):  # newest first
            rm = metric_decls.RunMetrics.of_meta(info.get("meta") or {}, (), info.get("workload"))
            newest = newest or (rm if rm.objective is not None else None)
            for m in rm:
                declared.setdefault(m.name, m)
        self.run_metrics = metric_decls.RunMetrics.build(
            declared.values(), newest.objective_name if newest else None,
            [m.name for m in newest.train_test] if newest and newest.train_test else None)
        objective = self.run_metrics.objective
        select = self.query_one("#cmp-metric", Select)
        current = select.value
        options = self.run_metrics.plot_choices()
        values = [v for _, v in options]
        with self.prevent(Select.Changed):
            select.set_options(options)
            if self._user_metric and current in values:
                select.value = current
            else:
                select.value = objective.name if objective is not None and objective.name in values else values[0]

    def set_entries(self) -> None:
        """Every config with data in the store (newest runs first), keeping the selection."""
        runs, run_label = self.runs.runs, self.runs.label
        self._set_metrics([info for info in runs if info["kind"] in ("study", "import")])
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
        return self._select(values)

    def _select(self, values: list[str]) -> bool:
        if not values:
            return False
        sel = self.query_one("#cmp-units", SelectionList)
        with self.prevent(SelectionList.SelectedChanged):
            sel.deselect_all()
            for value in values:
                sel.select(value)
        self.view_shown = None
        self._changed()
        return True

    def _changed(self) -> None:
        self.dirty = True
        selection = tuple(self.selection())
        title = ""
        if self.view_shown is not None and self.view_shown < len(self.views):
            view = self.views[self.view_shown]
            if [u for _, u, _ in selection] == list(view.configs) and self.metric == view.metric:
                title = view.title
        self.post_message(self.Shown(Shown(selection, self.metric, self.band_kind, self.describe(),
                                           self.run_metrics.label(self.metric), title)))

    def selection(self) -> list[tuple[str, str, str]]:
        sel = self.query_one("#cmp-units", SelectionList)
        return [self.entries[v] for v in sel.selected if v in self.entries]

    # -- the preset's [[compare]] views -------------------------------------------------------
    def set_views(self, study) -> None:
        self.views = list(study.compare) if study is not None else []
        select = self.query_one("#cmp-view", Select)
        with self.prevent(Select.Changed):
            select.set_options([(v.title or " vs ".join(v.configs), i) for i, v in enumerate(self.views)])

    def show_view(self, index: int) -> bool:
        """Tick the view's configs from the newest run that has most of them; its metric too."""
        if not 0 <= index < len(self.views):
            return False
        view = self.views[index]
        by_run: dict[str, list[str]] = {}
        for value, (rid, unit, _) in self.entries.items():  # newest runs first
            if unit in view.configs:
                by_run.setdefault(rid, []).append(value)
        if not by_run:
            self.table_note = f"view {view.title!r}: no finished run has {', '.join(view.configs)}"
            self.dirty = True
            return False
        values = max(by_run.values(), key=len)  # max keeps the first (newest) of equals
        order = {name: i for i, name in enumerate(view.configs)}
        values.sort(key=lambda v: order[self.entries[v][1]])
        select = self.query_one("#cmp-metric", Select)
        choices = list(self.run_metrics.plottable())
        if view.metric in choices:  # any metric the runs' workload declares
            with self.prevent(Select.Changed):
                select.value = view.metric
        self.table_note = ""
        changed = self._select(values)
        self.view_shown = index
        self._changed()
        return changed

    def action_next_view(self) -> None:
        if not self.views:
            self.app.notify("the preset has no [[compare]] views", severity="warning")
            return
        select = self.query_one("#cmp-view", Select)
        current = select.value if isinstance(select.value, int) else -1
        select.value = (current + 1) % len(self.views)

    def on_selection_list_selected_changed(self, event) -> None:
        self._changed()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.select.id == "cmp-view" and isinstance(event.value, int):
            self.show_view(event.value)
            return
        if event.select.id == "cmp-metric":
            self._user_metric = True
        self._changed()

    def on_input_changed(self, event) -> None:
        if event.input.id == "cmp-target":
            event.stop()
            self.dirty = True

    # -- drawing --------------------------------------------------------------------------------
    def _replot(self) -> None:
        plot = self.query_one("#cmp-plot", PlotextPlot)
        if plot.size != getattr(self, "_drawn_size", None):
            self.dirty = True  # resized: the curves are binned to the width
        if not self.dirty or not self.display:
            return
        self.dirty = False
        self._drawn_size = plot.size
        width = max(plot.size.width - 10, 10)
        groups, targets = [], []
        for run_id, unit, label in self.selection():
            run = self.runs.load(run_id)
            if run is not None and unit in run.units:
                short = label.split(" · ")[0]
                groups.append(plots.unit_series(run.units[unit], self.metric, short, self.band_kind, width,
                                                metric_decls.RunMetrics.of_run(run)))
                targets.append((run, unit))
        plots.draw(plot.plt, groups, self.describe(), self._empty_note(groups), width,
                   plots.y_label(self.metric, self.run_metrics), rows=max(plot.size.height - 5, 2))
        plot.refresh()
        self.query_one("#cmp-legend", Static).update(plots.legend(groups))
        self.drawn = sum(len(g) for g in groups)
        self._fill_table(targets)

    def _target(self) -> tuple[float | None, str]:
        text = self.query_one("#cmp-target", PanelSafeInput).value.strip()
        if not text:
            return None, ""
        try:
            value = float(text)
        except ValueError:
            return None, f"target {text!r} is not a number: time-to-target left out"
        if value <= 0 and plots.is_log(self.metric, self.run_metrics):  # a loss on a log axis
            return None, "target must be above 0: time-to-target left out"
        return value, ""

    def _fill_table(self, targets: list) -> None:
        """The final-values table of what the plot shows (the test metric for train vs test)."""
        from ...export.comparison import compare

        table = self.query_one("#cmp-table", DataTable)
        table.clear(columns=True)
        self.comparison = None
        if not targets:
            self.set_class(True, "-no-table")
            return
        metric = self.metric
        if metric == metric_decls.TRAIN_TEST:  # the pair's test metric, as the workload declares it
            pair = metric_decls.RunMetrics.of_run(targets[0][0]).train_test or self.run_metrics.train_test
            metric = pair[1].name if pair else metric
        target, note = self._target()
        try:
            if target is None and not note:  # a level every config reaches: 5% short of where the worst ends
                first = compare(targets, metric, self.band_kind)
                means = [e.stats["mean"] for e in first.entries if e.stats["mean"] is not None]
                if means:
                    worst = min(means) / DEFAULT_TARGET_MARGIN if first.higher_is_better else \
                        max(means) * DEFAULT_TARGET_MARGIN
                    target = float(f"{worst:.3g}")
            self.comparison = compare(targets, metric, self.band_kind, target)
        except OptuiError as exc:
            self.set_class(False, "-no-table")
            table.add_column(str(exc))
            return
        table_rows(table, self.comparison)
        self.set_class(False, "-no-table")

    def _empty_note(self, groups: list) -> str:
        if self.table_note:
            return self.table_note
        if groups:
            return "nothing recorded for this metric"
        if not self.entries:
            return "no finished runs yet: run replicates (2, ctrl+r)"
        return "select configs above (space)"
