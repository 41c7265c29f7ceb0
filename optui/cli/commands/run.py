"""`optui run PRESET --headless`: a whole study as a batch job."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import EXPORTS_OPTION, STORE_OPTION, session_instead, user_errors
from .ray_option import address, ray_option
from .ray_option import check as check_ray_option


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        preset: Path = typer.Argument(..., help="Study preset (TOML), e.g. presets/twnet.toml."),
        headless: bool = typer.Option(False, "--headless", help="Run in the terminal without the UI."),
        set_: list[str] = typer.Option([], "--set", help="Override a preset key: KEY=VALUE (repeatable)."),
        resume: Optional[str] = typer.Option(None, "--resume", help="Finish an interrupted run: RUN_ID."),
        force: bool = typer.Option(False, "--force", help=(
            "With --resume: take the run over from a process whose lease expired (hung, stopped, "
            "or gone with its machine). A live run is never taken.")),
        config: list[str] = typer.Option([], "--config", "-c", help="Run only these configs (repeatable)."),
        replicates: Optional[int] = typer.Option(None, "--replicates", "-r", min=1,
                                                 help="Override replicates.count."),
        export: bool = typer.Option(True, "--export/--no-export", help="Write exports/<study>/ at the end."),
        store: Path = STORE_OPTION,
        exports: Path = EXPORTS_OPTION,
        ray: Optional[str] = ray_option(),
    ) -> None:
        """Run a study's configs as seed replicates, record them, and export the results."""
        from ...system.terminal import headless_without_terminal

        with user_errors():
            check_ray_option(ray, headless or headless_without_terminal())
        if session_instead(headless, preset):
            return
        from rich.console import Console

        from ..headless.study import run_study

        with user_errors():
            code = run_study(str(preset), set_, resume, store, exports, config or None, replicates,
                             export, Console(), force=force, ray=address(ray))
        raise typer.Exit(code)
