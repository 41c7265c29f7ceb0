"""The headless study: rich progress per config, the summary table and the exports."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ...errors import OptuiError, RunLostError
from ...results.metrics import RunMetrics
from ...service.events import ChunkDone, Event, RunFailed, RunFinished, RunStarted, UnitFinished, UnitStarted
from ...service.progress import RunProgress, UnitProgress, reduce
from ...status import Status
from ...system.signals import INTERRUPTED
from ...system.terminal import guard_console
from . import check_export_folder, open_run, print_resume, stop_on_signals


class ProgressPrinter:
    """Renders a study's progress state: a rich bar per config (steps done, test loss, ETA), or
    plain lines every 10% when the output is a file or pipe (a batch job's log)."""

    def __init__(self, console: Console, watch: str, watch_label: str):
        guard_console(console)  # a closed or full stdout must not stop the run
        self.watch, self.watch_label = watch, watch_label  # the eval shown beside each bar
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description:<18}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("steps"), TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
            TimeRemainingColumn(), console=console, transient=False,
        )
        self.state = RunProgress()
        self.tasks: dict[str, int] = {}
        self.plain = not console.is_terminal
        self.logged: dict[str, int] = {}  # unit -> tenths of the run already logged

    def __call__(self, event: Event) -> None:
        self.state = reduce(self.state, event)
        name = getattr(event, "unit", None)
        unit = self.state.units.get(name) if name else None
        if isinstance(event, RunStarted):
            verb = "resuming" if event.resumed else "running"
            self.console.print(f"[bold]{verb}[/] {event.study} as run [cyan]{event.run_id}[/] on "
                               f"{event.device} ({event.strategy})")
            if not self.plain:
                self.progress.start()
            for u in self.state.units.values():
                self.tasks[u.name] = self.progress.add_task(u.name, total=u.total_steps,
                                                            status=f"{u.replicates} replicates")
        elif isinstance(event, UnitStarted):
            self.progress.reset(self.tasks[unit.name], total=unit.total_steps, completed=unit.steps_done,
                                status=f"{unit.replicates} replicates")
            self.logged[unit.name] = unit.steps_done * 10 // max(unit.total_steps, 1)
        elif isinstance(event, ChunkDone):
            value = unit.last_eval.get(self.watch)
            status = "" if value is None else f"{self.watch_label} {value:.4f}"
            if unit.diverged:
                status += f" [red]{unit.diverged} diverged[/]"
            self.progress.update(self.tasks[unit.name], completed=unit.steps_done, status=status)
            if self.plain:
                self._log_line(unit)
        elif isinstance(event, UnitFinished) and event.status != Status.DONE:
            self.progress.update(self.tasks[unit.name], status=f"[yellow]{event.status}[/]")
            if self.plain:
                self.console.print(f"{unit.name:<18} {event.status}", highlight=False)
        elif isinstance(event, (RunFinished, RunFailed)):
            self.progress.stop()

    def _log_line(self, unit: UnitProgress) -> None:
        tenth = unit.steps_done * 10 // max(unit.total_steps, 1)
        if tenth <= self.logged.get(unit.name, 0):
            return
        self.logged[unit.name] = tenth
        done = unit.fraction
        eta = unit.elapsed_s * (1 - done) / done if done else float("nan")
        self.console.print(
            f"{unit.name:<16} {100 * done:3.0f}% {unit.steps_done:>6}/{unit.total_steps} steps"
            + (f"  {self.watch_label} {value:.4f}" if (value := unit.last_eval.get(self.watch)) is not None else "")
            + (f"  {unit.diverged} diverged" if unit.diverged else "")
            + f"  {unit.elapsed_s:.0f} s, ETA {eta:.0f} s", highlight=False, soft_wrap=True)


def summary_table(summary: dict) -> Table:
    """Final values over replicates: the mean of every declared metric, and the spread (min, max;
    median too when there is room) of the default objective. Fits 80 columns."""
    from rich import box

    from ...results.metrics import MINIBATCH

    run_metrics = RunMetrics.of_meta(summary, [k[len("final_"):] for c in summary["configs"].values() for k in c
                                               if k.startswith("final_") and k != f"final_{MINIBATCH}"
                                               and c[k] is not None])
    metrics, objective = run_metrics.metrics, run_metrics.objective
    # An 80-column terminal (an SSH session, a job log): short headers, no outer or vertical rules.
    t = Table(title=f"{summary['study']} ({summary['workload']}) on {summary['device']}: "
                    f"{summary['wall_time_s']:.1f} s; final values, mean over replicates",
              box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    spread = ["median", "min", "max"] if len(metrics) <= 2 else ["min", "max"]
    if objective is None:
        spread = []
    word = (objective.label.split(" ")[0] if objective and objective.split else
            objective.label if objective else "")
    longest = max([len("config"), *(len(n) for n in summary["configs"])])

    def layout(spread: list[str], two_lines: bool) -> tuple[list[str], int]:
        heads = [*(m.label for m in metrics), *(f"{word} {s}" for s in spread)]
        if two_lines:
            heads = [h.replace(" ", "\n", 1) for h in heads]
        cols = ["config", "reps", "div", *heads, "wall s"]
        # Values are at most 7 wide ("0.1234", "100.00%"); counts and times fit their headers.
        width = longest + len(" reps div wall s") + sum(max(max(map(len, h.split("\n"))), 7) + 1 for h in heads)
        return cols, width

    # Single-line headers if they fit, else two-line ones, else fewer spread columns.
    columns, width = layout(spread, False)
    while width > 78:  # a margin: rich pads the edges of some columns
        columns, width = layout(spread, True)
        if width <= 80 or not spread:
            break
        spread = spread[1:] if len(spread) == 3 else []
    for col in columns:
        t.add_column(col, justify="left" if col == "config" else "right", no_wrap=col == "config")
    for name, c in summary["configs"].items():
        means = [m.format((c.get(f"final_{m.name}") or {}).get("mean")) for m in metrics]
        dist = (c.get(f"final_{objective.name}") or {}) if objective else {}
        t.add_row(name, str(c["replicates"]), str(c["diverged"]), *means,
                  *(objective.format(dist.get(s)) for s in spread), f"{c['wall_time_s']:.1f}")
    return t


def run_study(preset: str, overrides: list[str], resume: str | None, store_root: Path,
              exports_root: Path, configs: list[str] | None, replicates: int | None,
              export: bool, console: Console, force: bool = False, ray: str | None = None) -> int:
    """The headless study: returns the process exit code (0 done, 1 failed, 130 interrupted).
    ray: a Ray address ("" for the default cluster) to train there."""
    from ... import service
    from ...export.layout import write_exports
    from ...export.tables import summary as run_summary

    study, workload, store, resume = open_run(preset, overrides, resume, store_root, force)
    if export:
        check_export_folder(exports_root, study)
    cancel = threading.Event()
    watched = RunMetrics.of_preset(study).objective
    printer = ProgressPrinter(console, watched.name if watched else "", watched.label if watched else "")
    runner = service.StudyRunner(study, store, printer, cancel)
    runner.ray_address = ray
    with stop_on_signals(cancel, console):
        try:
            run_id = service.run_study(study, store, configs=configs, replicates=replicates, resume=resume,
                                       runner=runner, workload=workload)
        except KeyboardInterrupt:
            printer.progress.stop()
            _print_resume(console, preset, runner.run_id)
            return INTERRUPTED
        except OptuiError as exc:
            printer.progress.stop()
            if runner.run_id is None:  # refused before the run began: nothing to resume, nothing left
                store.discard_if_unused()
                raise
            print(f"error: {exc}", file=sys.stderr)
            if not isinstance(exc, RunLostError):  # a deleted store or a run taken over: nothing to resume here
                _print_resume(console, preset, runner.run_id, "failed")
            return 1
    run = store.load_run(run_id)
    if run.status != Status.DONE:
        _print_resume(console, preset, run_id)
        return INTERRUPTED
    summary = run_summary(run)
    console.print(summary_table(summary))
    if export:
        return write_exports(run, exports_root, console)
    return 0


def _print_resume(console: Console, preset: str, run_id: str | None, how: str = "interrupted") -> None:
    if run_id:
        print_resume(console, f"{how}: finished chunks are kept",
                     f"optui run {preset} --headless --resume {run_id}")
