"""Drive a study from the command line: rich progress, signals, summary table and exports."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .engine.events import ChunkDone, Event, RunFailed, RunFinished, RunStarted, UnitFinished, UnitStarted
from .errors import OptuiError
from .terminal import detach_if_hung_up

STOP_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s)
INTERRUPTED = 130  # the exit code of a run stopped by any of STOP_SIGNALS: it can be resumed


@contextmanager
def stop_on_signals(cancel: threading.Event, console: Console) -> Iterator[None]:
    """First SIGINT/SIGTERM/SIGHUP: stop after the current chunk. A second: exit at once.

    Exiting at once still loses at most the chunk in flight: every finished chunk is committed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if signum == getattr(signal, "SIGHUP", None):
            detach_if_hung_up()  # an SSH drop: printing to the lost terminal would fail the run
        if cancel.is_set():
            console.print("[red]second stop signal: exiting now[/]")
            os._exit(INTERRUPTED)
        cancel.set()
        console.print(f"[yellow]{signal.Signals(signum).name}: stopping after the current chunk "
                      f"(send it again to exit at once)[/]")

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class ProgressPrinter:
    """Turns engine events into a rich progress display: per config, steps done and ETA."""

    def __init__(self, console: Console, watch: str = "test_loss", watch_label: str = "test"):
        self.console = console
        # The eval metric shown while a config trains: the workload's default objective.
        self.watch, self.watch_label = watch, watch_label
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
            test = event.eval.get(self.watch)
            status = f"{self.watch_label} {float(_nanmean(test)):.4f}" if test is not None else ""
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
            test = event.eval.get(self.watch)
            done = event.step_end / max(event.total_steps, 1)
            eta = event.elapsed_s * (1 - done) / done if done else float("nan")
            diverged = int((event.diverged_at >= 0).sum()) if event.diverged_at is not None else 0
            self.console.print(
                f"{event.unit:<16} {100 * done:3.0f}% {event.step_end:>6}/{event.total_steps} steps"
                + (f"  {self.watch_label} {_nanmean(test):.4f}" if test is not None else "")
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
    """Final values over replicates: the mean of every declared metric, and the spread (min, max;
    median too when there is room) of the default objective. Fits 80 columns."""
    from rich import box

    from .metrics import from_meta, objective_of

    metrics = from_meta({"metrics": summary.get("metrics")},
                        [k[len("final_"):] for c in summary["configs"].values() for k in c
                         if k.startswith("final_") and k != "final_minibatch_loss" and c[k] is not None])
    objective = objective_of({"objective": summary.get("objective")}, metrics)
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
              export: bool, console: Console) -> int:
    """The headless study: returns the process exit code (0 done, 1 failed, 130 interrupted)."""
    from . import presets
    from .engine.runner import StudyRunner
    from .export import export_run
    from .export.atomic import ensure_writable_dir
    from .export.tables import summary as run_summary
    from .store import Store

    from .engine.runner import build_workload

    # A new run opens the store only once its preset and workload have passed every check.
    store = Store.open(store_root) if resume else None
    if resume:
        # Resume exactly what was started: the preset text and overrides recorded with the run.
        resume = store.resolve(resume)
        info = store.run_info(resume)
        study = presets.loads(store.preset_text(resume), info["preset_path"] or preset,
                              info["meta"].get("overrides", []))
    else:
        study = presets.load(preset, overrides)
    out_dir = exports_root / study.name
    if export:
        ensure_writable_dir(out_dir)  # refuse before training, not after
    workload = build_workload(study)
    store = store or Store.open(store_root)
    cancel = threading.Event()
    watched = study.spec.metric(study.spec.objective)
    printer = ProgressPrinter(console, watched.name, watched.label)
    runner = StudyRunner(study, store, printer, cancel)
    with stop_on_signals(cancel, console):
        try:
            run_id = runner.run(resume=resume, configs=configs, replicates=replicates, workload=workload)
        except KeyboardInterrupt:
            printer.progress.stop()
            _print_resume(console, preset, runner.run_id)
            return INTERRUPTED
        except OptuiError as exc:
            printer.progress.stop()
            if runner.run_id is None:  # refused before the run began: nothing to resume
                raise
            print(f"error: {exc}", file=sys.stderr)
            _print_resume(console, preset, runner.run_id, "failed")
            return 1
    run = store.load_run(run_id)
    if run.status != "done":
        _print_resume(console, preset, run_id)
        return INTERRUPTED
    summary = run_summary(run)
    console.print(summary_table(summary))
    if export:
        files = export_run(run, out_dir)
        console.print(f"wrote {len(files)} files to {out_dir}/ (summary.json, figures, histories)")
    return 0


def _print_resume(console: Console, preset: str, run_id: str | None, how: str = "interrupted") -> None:
    if run_id:
        console.print(f"[yellow]{how}: finished chunks are kept. Resume with:[/]\n"
                      f"  optui run {preset} --headless --resume {run_id}")
