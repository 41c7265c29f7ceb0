"""Drive a study from the command line: rich progress, signals, summary table and exports."""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from . import stop_signals
from .engine.events import ChunkDone, Event, RunFailed, RunFinished, RunStarted, UnitFinished, UnitStarted
from .errors import OptuiError, RunLostError
from .terminal import guard_console

STOP_SIGNALS = stop_signals.STOP_SIGNALS
INTERRUPTED = stop_signals.INTERRUPTED  # the exit code of a run stopped by a stop signal: it can be resumed


@contextmanager
def stop_on_signals(cancel: threading.Event, console: Console) -> Iterator[None]:
    """First SIGINT/SIGTERM/SIGHUP: stop after the current chunk. A second: exit at once, even
    while the device is busy with a long chunk (see optui.stop_signals).

    Exiting at once still loses at most the chunk in flight: every finished chunk is committed.
    """
    with stop_signals.watch(cancel, console.print):
        yield


class ProgressPrinter:
    """Turns engine events into a rich progress display: per config, steps done and ETA."""

    def __init__(self, console: Console):
        guard_console(console)  # a closed or full stdout must not stop the run
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description:<18}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("steps"), TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
            TimeRemainingColumn(), console=console, transient=False,
        )
        self.tasks: dict[str, int] = {}
        self.started = time.perf_counter()
        # Output to a file or pipe (a batch job's log): plain lines every 10% instead of a live bar.
        self.plain = not console.is_terminal
        self.logged: dict[str, int] = {}

    def __call__(self, event: Event) -> None:
        if self.plain:
            self._log_line(event)
        p = self.progress
        if isinstance(event, RunStarted):
            verb = "resuming" if event.resumed else "running"
            self.console.print(f"[bold]{verb}[/] {event.study} as run [cyan]{event.run_id}[/] on "
                               f"{event.device} ({event.strategy})")
            if not self.plain:
                p.start()
            for name, (steps, reps) in event.units.items():
                self.tasks[name] = p.add_task(name, total=steps, status=f"{reps} replicates")
        elif isinstance(event, UnitStarted):
            p.reset(self.tasks[event.unit], total=event.total_steps, completed=event.steps_done,
                    status=f"{event.replicates} replicates")
        elif isinstance(event, ChunkDone):
            diverged = int((event.diverged_at >= 0).sum()) if event.diverged_at is not None else 0
            test = event.eval.get("test_loss")
            status = f"test {float(_nanmean(test)):.4f}" if test is not None else ""
            if diverged:
                status += f" [red]{diverged} diverged[/]"
            p.update(self.tasks[event.unit], completed=event.step_end, status=status)
        elif isinstance(event, UnitFinished):
            if event.status != "done":
                p.update(self.tasks[event.unit], status=f"[yellow]{event.status}[/]")
        elif isinstance(event, (RunFinished, RunFailed)):
            p.stop()


    def _log_line(self, event: Event) -> None:
        if isinstance(event, UnitStarted):
            self.logged[event.unit] = event.steps_done * 10 // max(event.total_steps, 1)
        elif isinstance(event, ChunkDone):
            tenth = event.step_end * 10 // max(event.total_steps, 1)
            if tenth <= self.logged.get(event.unit, 0):
                return
            self.logged[event.unit] = tenth
            test = event.eval.get("test_loss")
            done = event.step_end / max(event.total_steps, 1)
            eta = event.elapsed_s * (1 - done) / done if done else float("nan")
            diverged = int((event.diverged_at >= 0).sum()) if event.diverged_at is not None else 0
            self.console.print(
                f"{event.unit:<16} {100 * done:3.0f}% {event.step_end:>6}/{event.total_steps} steps"
                + (f"  test {_nanmean(test):.4f}" if test is not None else "")
                + (f"  {diverged} diverged" if diverged else "")
                + f"  {event.elapsed_s:.0f} s, ETA {eta:.0f} s", highlight=False, soft_wrap=True)
        elif isinstance(event, UnitFinished) and event.status != "done":
            self.console.print(f"{event.unit:<18} {event.status}", highlight=False)


def _nanmean(values) -> float:
    import numpy as np

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def summary_table(summary: dict) -> Table:
    from rich import box

    # Fits 80 columns (an SSH terminal, a job log): short headers, no outer or vertical rules.
    t = Table(title=f"{summary['study']} ({summary['workload']}) on {summary['device']}: "
                    f"{summary['wall_time_s']:.1f} s; final losses over replicates",
              box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    # Workloads with an accuracy (MNIST) show the mean final test accuracy in place of the median
    # test loss (still in summary.json), so the table keeps to 80 columns.
    accuracy = any(c.get("final_test_accuracy") for c in summary["configs"].values())
    middle = ("test min", "test max", "test acc") if accuracy else ("test median", "test min", "test max")
    for col in ("config", "reps", "div", "train mean", "test mean", *middle, "wall s"):
        t.add_column(col, justify="left" if col == "config" else "right", no_wrap=col == "config")
    for name, c in summary["configs"].items():
        tr, te = c.get("final_train_loss") or {}, c.get("final_test_loss") or {}
        fmt = lambda v: "-" if v is None else f"{v:.4f}"
        acc = (c.get("final_test_accuracy") or {}).get("mean")
        cells = ((fmt(te.get("min")), fmt(te.get("max")), "-" if acc is None else f"{100 * acc:.2f}%")
                 if accuracy else (fmt(te.get("median")), fmt(te.get("min")), fmt(te.get("max"))))
        t.add_row(name, str(c["replicates"]), str(c["diverged"]), fmt(tr.get("mean")), fmt(te.get("mean")),
                  *cells, f"{c['wall_time_s']:.1f}")
    return t


def run_study(preset: str, overrides: list[str], resume: str | None, store_root: Path,
              exports_root: Path, configs: list[str] | None, replicates: int | None,
              export: bool, console: Console, force: bool = False) -> int:
    """The headless study: returns the process exit code (0 done, 1 failed, 130 interrupted)."""
    from . import fingerprint, presets
    from .engine.runner import StudyRunner
    from .export.atomic import ensure_writable_dir
    from .export.layout import study_dir, write_exports
    from .export.tables import summary as run_summary
    from .store import Store

    study = None if resume else presets.load(preset, overrides)  # a bad preset creates nothing
    store = Store.open(store_root)
    store.take_over_expired = force
    if resume:
        # PRESET as it is now, with the overrides recorded with the run: refused if it changed.
        resume = store.resolve(resume)
        study = fingerprint.study_for_resume(store, resume, preset, overrides)  # checked by the runner
    if export:
        ensure_writable_dir(study_dir(exports_root, study.name))  # refuse before training, not after
    cancel = threading.Event()
    printer = ProgressPrinter(console)
    runner = StudyRunner(study, store, printer, cancel)
    with stop_on_signals(cancel, console):
        try:
            run_id = runner.run(resume=resume, configs=configs, replicates=replicates)
        except KeyboardInterrupt:
            printer.progress.stop()
            _print_resume(console, preset, runner.run_id)
            return INTERRUPTED
        except OptuiError as exc:
            printer.progress.stop()
            if runner.run_id is None:  # refused before the run began: nothing to resume
                raise
            print(f"error: {exc}", file=sys.stderr)
            if not isinstance(exc, RunLostError):  # a deleted store or a run taken over: nothing to resume here
                _print_resume(console, preset, runner.run_id, "failed")
            return 1
    run = store.load_run(run_id)
    if run.status != "done":
        _print_resume(console, preset, run_id)
        return INTERRUPTED
    summary = run_summary(run)
    console.print(summary_table(summary))
    if export:
        return write_exports(run, exports_root, console)
    return 0


def _print_resume(console: Console, preset: str, run_id: str | None, how: str = "interrupted") -> None:
    if run_id:
        console.print(f"[yellow]{how}: finished chunks are kept. Resume with:[/]\n"
                      f"  optui run {preset} --headless --resume {run_id}")
