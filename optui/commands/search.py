"""`optui search PRESET --headless`: global random search over a preset's [search.*] spaces."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Optional

import typer

from .common import EXPORTS_OPTION, STORE_OPTION, user_errors

DEFAULT_CONFIRM_REPLICATES = 5


def register(app: typer.Typer) -> None:
    @app.command("search")
    def search(
        preset: Path = typer.Argument(..., help="Study preset (TOML) with [search.NAME] spaces."),
        headless: bool = typer.Option(False, "--headless", help="Run in the terminal without the UI."),
        space: Optional[str] = typer.Option(None, "--space", "-s",
                                            help="Search this space only (default: every space, in turn)."),
        trials: Optional[int] = typer.Option(None, "--trials", "-n", min=1,
                                             help="Trials to run (overrides the space; with --resume, extends)."),
        write_best: Optional[Path] = typer.Option(None, "--write-best", help=(
            "Add the best trial to this preset file as config <space>-searched (comments are kept).")),
        resume: Optional[str] = typer.Option(None, "--resume", help="Finish or extend a search run: RUN_ID."),
        force: bool = typer.Option(False, "--force", help=(
            "With --resume: take the run over from a process whose lease expired. A live run is "
            "never taken.")),
        confirm: Optional[int] = typer.Option(None, "--confirm", min=1,
                                              help="Re-run the K best trials with fresh seed replicates."),
        replicates: Optional[int] = typer.Option(None, "--replicates", "-r", min=1, help=(
            f"Replicates per confirmed trial (with --confirm; default {DEFAULT_CONFIRM_REPLICATES}).")),
        set_: list[str] = typer.Option([], "--set", help="Override a preset key: KEY=VALUE (repeatable)."),
        export: bool = typer.Option(True, "--export/--no-export",
                                    help="Write exports/<study>/<run-id>/search-<space>.md and scatter PNGs."),
        store: Path = STORE_OPTION,
        exports: Path = EXPORTS_OPTION,
    ) -> None:
        """Random search: draw trials from a space, train them grouped, rank them, keep the best."""
        from ..terminal import headless_without_terminal

        if not headless and not headless_without_terminal():
            from .ui import open_ui

            open_ui(str(preset))
            return
        from rich.console import Console

        with user_errors():
            if replicates is not None and confirm is None:
                from ..errors import PresetError

                raise PresetError("--replicates goes with --confirm K (the number of best trials to re-run)")
            code = run_search(str(preset), set_, space, trials, write_best, resume,
                              (confirm, replicates or DEFAULT_CONFIRM_REPLICATES) if confirm else None,
                              store, exports, export, Console(), force=force)
        raise typer.Exit(code)


class SearchPrinter:
    """Engine and search events -> a rich progress display and one line per finished trial."""

    def __init__(self, console: Any):
        from ..terminal import guard_console

        guard_console(console)  # a closed or full stdout must not stop the search
        self.console = console
        self.progress = None
        self.trials_task = self.group_task = None
        self.group_of: dict[str, tuple[int, int]] = {}
        self.current_group: tuple[int, int] | None = None

    def __call__(self, event: Any) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        from ..engine.events import ChunkDone, RunFailed, RunFinished, RunStarted, UnitStarted
        from ..search import TrialScored, TrialsPlanned

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
        elif isinstance(event, TrialsPlanned):
            finished = sum(t["status"] in ("done", "diverged") for t in event.trials)
            self.progress.update(self.trials_task, completed=finished)
            self.console.print(f"budget: {event.budget}")
            sizes = ", ".join(f"{b}x{len(u)}" for _, b, u in event.groups)
            if event.groups:
                self.console.print(f"{sum(len(u) for _, _, u in event.groups)} units to train in "
                                   f"{len(event.groups)} groups (batch size x units): {sizes}")
            for i, (_, batch, units) in enumerate(event.groups):
                for u in units:
                    self.group_of[u] = (i, batch)
        elif isinstance(event, UnitStarted):
            group = self.group_of.get(event.unit)
            if group is not None and group != self.current_group:
                self.current_group = group
                self.progress.reset(self.group_task, total=event.total_steps, completed=event.steps_done,
                                    visible=True, description=f"batch {group[1]}", status="steps")
        elif isinstance(event, ChunkDone):
            if self.group_of.get(event.unit) == self.current_group:
                self.progress.update(self.group_task, completed=event.step_end)
        elif isinstance(event, TrialScored):
            if event.status in ("done", "diverged", "failed"):
                self.progress.advance(self.trials_task)
            colour = {"done": "green", "diverged": "red", "failed": "red"}.get(event.status, "yellow")
            score = "-" if event.objective is None else f"{event.objective:.4f}"
            params = "  ".join(f"{k}={v:.4g}" for k, v in event.params.items() if k != "eps")
            self.progress.console.print(f"  {event.unit:<14} [{colour}]{event.status:<9}[/] {score:>8}  {params}")
        elif isinstance(event, (RunFinished, RunFailed)):
            if self.progress is not None:
                self.progress.stop()


def _check_write_target(path: Path) -> None:
    """Fail before training if the best config could not be written."""
    from .. import presets
    from ..errors import PresetError

    presets.parse_toml(presets.read_text(path), str(path))
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        raise PresetError(f"{path}: not writable (needed for --write-best)")


def run_search(preset: str, overrides: list[str], space_name: str | None, trials: int | None,
               write_best: Path | None, resume: str | None, confirm: tuple[int, int] | None,
               store_root: Path, exports_root: Path, export: bool, console: Any, force: bool = False) -> int:
    """The headless search: exit code 0 done, 1 failed, 130 interrupted."""
    from .. import fingerprint, presets
    from ..engine.runner import build_workload
    from ..errors import OptuiError, PresetError
    from ..export.atomic import ensure_writable_dir
    from ..export.layout import run_dir, study_dir
    from ..headless import INTERRUPTED, stop_on_signals
    from ..search import SearchRunner, search_space_of
    from ..store import Store

    study = None if resume else presets.load(preset, overrides)  # a bad preset creates nothing
    store = Store.open(store_root)
    store.take_over_expired = force
    if resume:
        # PRESET as it is now, with the overrides recorded with the run: refused if it changed.
        resume = store.resolve(resume)
        info = store.run_info(resume)
        if info["kind"] != "search":
            raise OptuiError(f"run {resume} is a {info['kind']} run, not a search; resume it with its own command")
        stored_space = info["meta"].get("space_name")
        if space_name and space_name != stored_space:
            raise PresetError(f"run {resume} searched space {stored_space!r}, not {space_name!r}")
        study = fingerprint.study_for_resume(store, resume, preset, overrides)  # checked by the runner
        names = [stored_space]
    else:
        names = [search_space_of(study, space_name).name] if space_name or len(study.search) <= 1 \
            else list(study.search)
    if write_best:
        _check_write_target(write_best)
    if export:
        ensure_writable_dir(study_dir(exports_root, study.name))  # refuse before training, not after
    workload = build_workload(study)
    for name in names:  # every space's batch sizes against the data, before any training
        study.search[name].check_batch_sizes(workload.n_train)
    cancel = threading.Event()
    code = 0
    for name in names:
        printer = SearchPrinter(console)
        runner = SearchRunner(study, name, store, printer, cancel)
        started = time.perf_counter()
        with stop_on_signals(cancel, console):
            try:
                if resume and confirm and store.run_info(resume)["status"] == "done" and not trials:
                    run_id = runner.confirm(resume, *confirm, workload=workload)
                else:
                    run_id = runner.run(trials=trials, resume=resume, confirm=confirm, workload=workload)
            except KeyboardInterrupt:
                if printer.progress is not None:
                    printer.progress.stop()
                _print_resume(console, preset, name, runner.run_id)
                return INTERRUPTED
        info = store.run_info(run_id)
        if info["status"] == "interrupted":
            _print_resume(console, preset, name, run_id)
            return INTERRUPTED
        console.print(f"search {name}: {time.perf_counter() - started:.1f} s here "
                      f"({info['wall_time_s']:.1f} s in all); compiled training programs: {runner.compiles}")
        best = _report(study, runner.space, store, run_id, console,
                       run_dir(exports_root, study.name, run_id) if export else None)
        if info["status"] == "failed":
            console.print(f"[red]some trials failed:[/] {info['error']}\n  re-run them with: "
                          f"optui search {preset} --headless --resume {run_id}")
            code = 1
        if write_best and best is not None:
            from rich.markup import escape

            from ..export.search_report import write_best_config

            cfg_name = f"{name}-searched"
            write_best_config(write_best, cfg_name, runner.space.optimizer, best["params"], best["note"])
            console.print(escape(f"wrote [configs.{cfg_name}] ({best['source']}) to {write_best}"))
        elif write_best:
            console.print(f"[yellow]no trial of {name} finished without diverging: nothing written[/]")
    return code


def _report(study, space, store, run_id, console, out_dir) -> dict[str, Any] | None:
    """Print the ranked trials and the report's table; export; return the best (with a note)."""
    from rich import box
    from rich.table import Table

    from ..export import search_report as sr
    from ..search import rank_confirmations, rank_trials

    info = store.run_info(run_id)
    ranked = rank_trials(store, run_id)
    confirmations = rank_confirmations(store, run_id)
    # Compact enough for 80 columns: no vertical rules, and wall times only in the Markdown.
    counts = ", ".join(f"{n} {status}" for status in ("done", "diverged", "failed")
                       if (n := sum(r["status"] == status for r in ranked)))
    t = Table(title=f"{study.name} / {space.name}: {len(ranked)} trials ({counts}), "
                    f"best first by {space.objective}",
              box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1), collapse_padding=True)
    for i, col in enumerate(sr.trial_header(space)[:-1]):
        t.add_column("objective" if i == 3 else col.replace("Batch Size", "Batch"),
                     justify="left" if i in (1, 2) else "right", no_wrap=True)
    for row in ranked:
        style = {"diverged": "red", "failed": "red"}.get(row["status"])
        t.add_row(*sr.trial_cells(row, space)[:-1], style=style)
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
    s1 = Table(title="the report's section 1: default and optimal hyperparameters", box=box.SIMPLE_HEAD)
    for i, col in enumerate(sr.section1_header(space)):
        s1.add_column(col, justify="left" if i == 0 else "right")
    for title, cells in sr.section1_rows(study, space, best_trial):
        s1.add_row(title, *cells)
    console.print(s1)
    console.print(f"budget: {info['meta'].get('budget_note')}")
    if out_dir is not None:
        files = sr.export_search(study, space, info, ranked, confirmations, out_dir)
        console.print(f"wrote {len(files)} files to {out_dir}/: " + ", ".join(f.name for f in files))
    confirmed = [c for c in confirmations if c["objective"] is not None]
    if confirmed:
        top = confirmed[0]
        return {"params": top["params"], "source": f"confirmed best: {top['confirm_of']}",
                "note": (f"best of {len(ranked)} trials of search run {run_id} after confirmation: "
                         f"{top['confirm_of']}, {space.objective} mean {top['objective']:.4g} over "
                         f"{top['replicates']} replicates; budget {info['meta'].get('budget')}")}
    if best_trial is not None:
        return {"params": best_trial["params"], "source": f"best trial: {best_trial['name']}",
                "note": (f"best of {len(ranked)} trials of search run {run_id}: {best_trial['name']}, "
                         f"{space.objective} {best_trial['objective']:.4g}; budget {info['meta'].get('budget')}")}
    return None


def _print_resume(console: Any, preset: str, space: str, run_id: str | None) -> None:
    if run_id:
        console.print(f"[yellow]interrupted: finished trials and chunks are kept. Resume with:[/]\n"
                      f"  optui search {preset} --headless --space {space} --resume {run_id}")
