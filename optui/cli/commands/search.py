"""`optui search PRESET --headless`: global random search over a preset's [search.*] spaces."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import EXPORTS_OPTION, STORE_OPTION, session_instead, user_errors
from .ray_option import address, ray_option
from .ray_option import check as check_ray_option

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
        sampler: Optional[str] = typer.Option(None, "--sampler", help=(
            "random | qmc | tpe | cmaes: how trials are chosen (overrides the spaces' sampler; "
            "qmc, tpe and cmaes are Optuna's: pip install 'optui[search]').")),
        set_: list[str] = typer.Option([], "--set", help="Override a preset key: KEY=VALUE (repeatable)."),
        export: bool = typer.Option(True, "--export/--no-export",
                                    help="Write exports/<study>/<run-id>/search-<space>.md and scatter PNGs."),
        store: Path = STORE_OPTION,
        exports: Path = EXPORTS_OPTION,
        ray: Optional[str] = ray_option(),
    ) -> None:
        """Search: draw trials from a space (random, or a learning sampler in rounds), train them
        grouped, stop the weak early with a pruner if the space sets one, rank them, keep the best."""
        from ...system.terminal import headless_without_terminal

        with user_errors():
            check_ray_option(ray, headless or headless_without_terminal())
        if session_instead(headless, preset):
            return
        from rich.console import Console

        from ..headless.search import run_search

        with user_errors():
            if replicates is not None and confirm is None:
                from ...errors import PresetError

                raise PresetError("--replicates goes with --confirm K (the number of best trials to re-run)")
            code = run_search(str(preset), set_, space, trials, write_best, resume,
                              (confirm, replicates or DEFAULT_CONFIRM_REPLICATES) if confirm else None,
                              store, exports, export, Console(), force=force, sampler=sampler,
                              ray=address(ray))
        raise typer.Exit(code)
