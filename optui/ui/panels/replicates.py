"""Replicates: pick configs and a replicate count, start and stop, progress and live loss bands."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, Label, SelectionList, Static
from textual_plotext import PlotextPlot

from ...optim import registry as optimizers
from ...results import metrics as metric_decls
from .. import plots
from ...service.progress import RunProgress, UnitProgress
from ..widgets import PanelSafeInput, ToggleList

MAX_COUNT = 100_000


def count_problem(name: str, text: str) -> str | None:
    """Why a replicate or trial count field cannot start a run, or None when it can."""
    if not text:
        return f"{name}: empty: write a whole number from 1 to {MAX_COUNT}"
    try:
        value = int(text)
    except ValueError:
        return f"{name}: {text!r} is not a whole number: write one from 1 to {MAX_COUNT}"
    if not 1 <= value <= MAX_COUNT:
        return f"{name}: {value} is out of range: write a whole number from 1 to {MAX_COUNT}"
    return None


class ReplicatesPanel(Vertical):
    BINDINGS = [Binding("m", "cycle_metric", "Metric"), Binding("t", "toggle_table", "Chart/table")]
    KEYS = [("space", "tick or untick the config under the cursor"),
            ("replicates field", "how many seed replicates per config (1-100000)"),
            ("ctrl+r", "run the ticked configs"), ("ctrl+t", "stop after the current chunk"),
            ("m", "live plot: the objective, the minibatch loss, the other metrics (outside a field)"),
            ("t", "at 24 rows or fewer: the progress table instead of the chart, and back")]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.run_metrics = plots.NO_METRICS  # the open preset's workload's (optui.results.metrics.RunMetrics)
        self.metrics = self._cycle()
        self.metric = self.metrics[0]  # the objective
        self.units: dict[str, UnitProgress] = {}
        self.title = ""
        self.dirty = False
        self._progress: RunProgress | None = None
        self._preset_count = ""  # the count last taken from the preset

    def compose(self) -> ComposeResult:
        with Horizontal(id="rep-top"):
            with Vertical(id="rep-choose"):
                yield ToggleList(id="rep-configs", compact=True)
                with Horizontal(id="rep-count-row"):
                    yield Label("replicates ")
                    yield PanelSafeInput("", id="rep-count", type="integer", compact=True)
            yield DataTable(id="rep-progress", cursor_type="none", zebra_stripes=False)
        yield PlotextPlot(id="rep-plot")
        yield Static("", id="rep-legend", markup=False)

    def on_mount(self) -> None:
        self._columns()
        self.set_interval(0.25, self._replot)  # 4 Hz at most, however fast chunks arrive
        self.dirty = True

    def _cycle(self) -> list[str]:
        """What `m` cycles through: the objective, the minibatch loss, then the other metrics."""
        rm = self.run_metrics
        first = [rm.objective_name] if rm.objective_name else []
        return first + [n for n in rm.plottable() if n not in first]

    def _columns(self) -> None:
        table = self.query_one("#rep-progress", DataTable)
        table.clear(columns=True)
        # No % column: steps say it, and at 80 columns the status ("interrupted") needs the room.
        watch = self.run_metrics.objective
        short = "-" if watch is None else watch.label.split(" ")[0] if watch.kind == "loss" else watch.label
        table.add_columns("config", "steps", short, "div", "status")

    def set_metrics(self, run_metrics: metric_decls.RunMetrics) -> None:
        """The workload's metrics: its objective is the progress column and the plot's default."""
        if run_metrics == self.run_metrics:
            return
        self.run_metrics = run_metrics
        self.metrics = self._cycle()
        self.metric = self.metrics[0]  # a new workload: its objective
        self._columns()
        self.refresh_table()
        self.dirty = True

    # -- study and selection ------------------------------------------------------------------
    def set_study(self, study) -> None:
        """Offer the study's configs; keeps the user's choice where the names still exist."""
        if study is not None:
            self.set_metrics(metric_decls.RunMetrics.of_preset(study))
        sel = self.query_one("#rep-configs", SelectionList)
        previous = set(sel.selected)
        had_options = sel.option_count > 0
        sel.clear_options()
        names = list(study.configs) if study else []
        for name in names:
            cfg = study.configs[name]
            chosen = name in previous if had_options and previous else True
            sel.add_option((Text(f"{name} ({optimizers.label(cfg.optimizer)})"), name, chosen))
        if names and sel.highlighted is None:
            sel.highlighted = 0  # the first down/space acts on the first config
        count = self.query_one("#rep-count", Input)
        if study and count.value in ("", self._preset_count):  # the user's own count stays
            self._preset_count = count.value = str(study.replicates_count)

    def chosen(self) -> list[str]:
        return list(self.query_one("#rep-configs", SelectionList).selected)

    def replicate_count(self) -> str:
        return self.query_one("#rep-count", Input).value.strip()

    def replicates_requested(self) -> tuple[int, str | None]:
        """(the count to run, None) or (0, why it cannot run): an empty or bad field blocks it."""
        text = self.replicate_count()
        problem = count_problem("replicates", text)
        self.query_one("#rep-count", Input).set_class(problem is not None, "-invalid")
        return (0, problem) if problem else (int(text), None)

    def request(self, study):
        """The run the panel asks for (the ticked configs, the count), or None with a notice."""
        from ..runner import RunRequest

        configs = [c for c in self.chosen() if c in study.configs]
        if not configs:
            self.app.notify("choose at least one config (space in the list)", severity="error")
            return None
        replicates, problem = self.replicates_requested()
        if problem:
            self.app.notify(problem, title="not started", severity="error")
            self.app.query_one("TabbedContent").active = "replicates"
            self.call_after_refresh(self.query_one("#rep-count").focus)  # where it is fixed
            return None
        return RunRequest("replicates", study=study, configs=tuple(configs), count=replicates)

    # -- live run -------------------------------------------------------------------------------
    def show_progress(self, progress: RunProgress) -> None:
        """The run's latest progress (folded by optui.service.progress.reduce): the table now, the plot
        at its next redraw."""
        self._progress = progress
        self.title = progress.study or self.title
        if progress.units is not self.units:
            self.units = progress.units
            self.dirty = True
            self.refresh_table()

    def on_show(self) -> None:
        self.dirty = True

    def action_toggle_table(self) -> None:
        self.toggle_class("-table")
        self.dirty = True

    def refresh_table(self) -> None:
        table = self.query_one("#rep-progress", DataTable)
        table.clear()
        for u in self.units.values():
            watch = self.run_metrics.objective
            value = watch.format(u.last_value(watch.name)) if watch is not None else "-"
            table.add_row(u.name, f"{u.steps_done}/{u.total_steps}", value, str(u.diverged), u.status)

    def action_cycle_metric(self) -> None:
        self.metric = self.metrics[(self.metrics.index(self.metric) + 1) % len(self.metrics)]
        self.dirty = True

    def _replot(self) -> None:
        plot = self.query_one("#rep-plot", PlotextPlot)
        if plot.size != getattr(self, "_drawn_size", None):
            self.dirty = True  # resized: the curves are binned to the width
        if not self.dirty or not self.display:
            return
        self.dirty = False
        self._drawn_size = plot.size
        width = max(plot.size.width - 10, 10)
        groups = [plots.unit_series(u.as_unit(), self.metric, u.name, "minmax", width, self.run_metrics)
                  for u in self.units.values() if u.has_data]
        name = self.run_metrics.label(self.metric)
        title = f"{self.title}: {name}, mean and min-max" if self.title else name
        plots.draw(plot.plt, groups, title, "start a run (ctrl+r)" if not self.units else "waiting for the first chunk",
                   width, plots.y_label(self.metric, self.run_metrics), rows=max(plot.size.height - 5, 2))
        plot.refresh()
        self.query_one("#rep-legend", Static).update(plots.legend(groups))

    def series_count(self) -> int:
        """How many configs have band data (the tests poll this)."""
        return sum(1 for u in self.units.values() if u.has_data)
