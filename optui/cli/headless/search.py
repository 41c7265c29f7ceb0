"""The headless search: a bar of trials and one of the group in training, a line per finished
trial, the ranked trials, the report's tables and the search report."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from . import check_export_folder, open_run, print_resume, stop_on_signals


class SearchPrinter:
    """Renders a search's progress state: a bar of trials, a bar of the group in training, and
    one line per finished trial."""

    def __init__(self, console: Any):
        from ...service.progress import RunProgress
        from ...system.terminal import guard_console

        guard_console(console)  # a closed or full stdout must not stop the search
        self.console = console
        self.state = RunProgress()
        self.progress = None
        self.trials_task = self.group_task = None
        self.current_group: int | None = None

    def _group_of(self, unit: str) -> int | None:
        return next((i for i, (_, _, units) in enumerate(self.state.groups) if unit in units), None)

    def __call__(self, event: Any) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        from ...service.events import ChunkDone, RunFailed, RunFinished, RunStarted, UnitStarted
        from ...service.progress import reduce
        from ...search import TrialScored, TrialsPlanned
        from ...status import Status

        self.state = reduce(self.state, event)
        if isinstance(event, RunStarted):
            if self.progress is not None:
                self.progress.stop()
            verb = "resuming" if event.resumed else "running"
            what = "confirmation re-runs" if event.kind == "confirm" else "search"
            self.console.print(f"[bold]{verb}[/] {event.study} {what} as run [cyan]{event.run_id}[/] on "
                               f"{event.device} ({event.strategy})")
            self.progress = Progress(TextColumn("[bold]{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                                     TimeRemainingColumn(), console=self.console)
            self.progress.start()
            self.trials_task = self.progress.add_task("trials", total=len(event.units), status="")
            self.group_task = self.progress.add_task("group", total=1, status="", visible=False)
            self.current_group = None
        elif isinstance(event, TrialsPlanned):
            # A learning sampler's later rounds add trials: the bar grows, the budget is said once.
            said = self.progress.tasks[self.trials_task].fields.get("planned")
            self.progress.update(self.trials_task, completed=self.state.finished_units,
                                 total=len(self.state.units), planned=True)
            if not said:
                self.console.print(f"budget: {event.budget}")
            sizes = ", ".join(f"{b}x{len(u)}" for _, b, u in event.groups)
            if event.groups:
                self.console.print(f"{sum(len(u) for _, _, u in event.groups)} units to train in "
                                   f"{len(event.groups)} groups (batch size x units): {sizes}")
        elif isinstance(event, UnitStarted):
            group = self._group_of(event.unit)
            if group is not None and group != self.current_group:
                self.current_group = group
                self.progress.reset(self.group_task, total=event.total_steps, completed=event.steps_done,
                                    visible=True, description=f"batch {self.state.groups[group][1]}",
                                    status="steps")
        elif isinstance(event, ChunkDone):
            if self._group_of(event.unit) == self.current_group:
                self.progress.update(self.group_task, completed=event.step_end)
        elif isinstance(event, TrialScored):
            self.progress.update(self.trials_task, completed=self.state.finished_units)
            colour = {Status.DONE: "green", Status.DIVERGED: "red", Status.FAILED: "red"}.get(event.status, "yellow")
            score = "-" if event.objective is None else f"{event.objective:.4f}"
            params = "  ".join(f"{k}={v:.4g}" for k, v in event.params.items() if k != "eps")
            self.progress.console.print(f"  {event.unit:<14} [{colour}]{event.status:<9}[/] {score:>8}  {params}")
        elif isinstance(event, (RunFinished, RunFailed)):
            if self.progress is not None:
                self.progress.stop()


def run_search(preset: str, overrides: list[str], space_name: str | None, trials: int | None,
               write_best: Path | None, resume: str | None, confirm: tuple[int, int] | None,
               store_root: Path, exports_root: Path, export: bool, console: Any, force: bool = False,
               sampler: str | None = None, ray: str | None = None) -> int:
    """The headless search: exit code 0 done, 1 failed, 130 interrupted. ray: a Ray address
    ("" for the default cluster) to train there."""
    from rich.markup import escape

    from ... import service
    from ...errors import OptuiError, PresetError
    from ...export.layout import run_dir
    from ...service.searches import sampler_overrides
    from ...status import Status
    from ...system.signals import INTERRUPTED

    study, workload, store, resume = open_run(
        preset, overrides if resume else [*overrides, *sampler_overrides(preset, space_name, sampler)],
        resume, store_root, force)
    if resume:
        info = service.search_run_info(store, resume)
        stored_space = info["meta"].get("space_name")
        if space_name and space_name != stored_space:
            raise PresetError(f"run {resume} searched space {stored_space!r}, not {space_name!r}")
        names = [stored_space]
        if sampler and sampler != study.search[stored_space].sampler:
            raise PresetError(f"run {resume} searches with sampler {study.search[stored_space].sampler!r}; "
                              f"a resumed search keeps its sampler (drop --sampler {sampler})")
    else:
        names = service.search_spaces(study, space_name)
    if write_best:
        service.check_write_target(write_best)
    if export:
        check_export_folder(exports_root, study)
    workload = workload or service.build_workload(study)
    for name in names:  # every space's batch sizes against the data, before any training
        study.search[name].check_batch_sizes(workload.n_train)
    cancel = threading.Event()
    code = 0
    for name in names:
        printer = SearchPrinter(console)
        runner = service.SearchRunner(study, name, store, printer, cancel)
        runner.ray_address = ray
        started = time.perf_counter()
        with stop_on_signals(cancel, console):
            try:
                run_id = service.run_search(study, store, name, trials=trials, resume=resume, confirm=confirm,
                                            workload=workload, runner=runner)
            except OptuiError:
                if runner.run_id is None:  # refused before the run began: leave nothing behind
                    store.discard_if_unused()
                raise
            except KeyboardInterrupt:
                if printer.progress is not None:
                    printer.progress.stop()
                _print_resume(console, preset, name, runner.run_id)
                return INTERRUPTED
        info = store.run_info(run_id)
        if info["status"] == Status.INTERRUPTED:
            _print_resume(console, preset, name, run_id)
            return INTERRUPTED
        console.print(f"search {name}: {time.perf_counter() - started:.1f} s here "
                      f"({info['wall_time_s']:.1f} s in all); compiled training programs: {runner.compiles}")
        _report(study, runner.space, store, run_id, console,
                run_dir(exports_root, study.name, run_id) if export else None)
        if info["status"] == Status.FAILED:
            console.print(f"[red]some trials failed:[/] {info['error']}\n  re-run them with: "
                          f"optui search {preset} --headless --resume {run_id}")
            code = 1
        best = service.best_config(store, run_id, runner.space)
        if write_best and best is not None:
            cfg_name = service.write_best(write_best, best)
            console.print(escape(f"wrote [configs.{cfg_name}] ({best.source}) to {write_best}"))
        elif write_best:
            console.print(f"[yellow]no trial of {name} finished without diverging: nothing written[/]")
    return code


def _report(study, space, store, run_id, console, out_dir) -> None:
    """Print the ranked trials and the report's table; export the search report."""
    from rich import box
    from rich.table import Table

    from ...export import search_report as sr
    from ...export.search_progress import related_searches
    from ...search import rank_confirmations, rank_trials

    info = store.run_info(run_id)
    ranked = rank_trials(store, run_id)
    confirmations = rank_confirmations(store, run_id)
    # Compact enough for 80 columns: no vertical rules; wall times and examples only in the Markdown.
    counts = ", ".join(f"{n} {status}" for status in ("done", "pruned", "diverged", "failed")
                       if (n := sum(r["status"] == status for r in ranked)))
    t = Table(title=f"{study.name} / {space.name}: {len(ranked)} trials ({counts}), "
                    f"best first by {space.objective} ({sr.direction(space)})",
              box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1), collapse_padding=True)
    for i, col in enumerate(sr.trial_header(space, study)[:-2]):
        t.add_column("objective" if i == 3 else col.replace("Batch Size", "Batch"),
                     justify="left" if i in (1, 2) else "right", no_wrap=True)
    for row in ranked:
        style = {"diverged": "red", "failed": "red"}.get(row["status"])
        t.add_row(*sr.trial_cells(row, space)[:-2], style=style)
    console.print(t)
    if confirmations:
        by_name = {r["name"]: r for r in ranked}
        c = Table(title="confirmation: best trials re-run with fresh seeds (mean over replicates)",
                  box=box.SIMPLE_HEAD, pad_edge=False)
        for i, col in enumerate(sr.confirm_header()):
            c.add_column(col, justify="left" if i in (1, 8) else "right", no_wrap=i == 1)
        for row in confirmations:
            c.add_row(*sr.confirm_cells(row, by_name))
        console.print(c)
    best_trial = ranked[0] if ranked and ranked[0]["objective"] is not None else None
    s1 = Table(title=sr.section1_title(study), box=box.SIMPLE_HEAD)
    for i, col in enumerate(sr.section1_header(space, study)):
        s1.add_column(col, justify="left" if i == 0 else "right")
    for title, cells in sr.section1_rows(study, space, best_trial):
        s1.add_row(title, *cells)
    console.print(s1)
    console.print(f"budget: {info['meta'].get('budget_note')}")
    console.print("\n".join(sr.strategy_lines(space, info["meta"], ranked)), highlight=False)
    if out_dir is not None:
        files = sr.export_search(study, space, info, ranked, confirmations, out_dir,
                                 related=related_searches(store, run_id))
        console.print(f"wrote {len(files)} files to {out_dir}/: " + ", ".join(f.name for f in files))


def _print_resume(console: Any, preset: str, space: str, run_id: str | None) -> None:
    if run_id:
        print_resume(console, "interrupted: finished trials and chunks are kept",
                     f"optui search {preset} --headless --space {space} --resume {run_id}")
