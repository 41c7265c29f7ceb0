"""`optui ui [PRESET]` (and `optui` alone): the interactive session."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer


def open_ui(preset: str | None) -> None:
    from ..terminal import interactive

    if not interactive():  # Textual would draw into a file or a pipe and wait for keys for ever
        print("error: the interactive session needs a terminal (stdin and stdout); for a batch job "
              "use `optui run PRESET --headless` or `optui search PRESET --headless`", file=sys.stderr)
        raise typer.Exit(2)
    from ..ui.app import run_app  # the only place the CLI imports the UI

    run_app(preset)


def register(app: typer.Typer) -> None:
    @app.command("ui")
    def ui(preset: Optional[Path] = typer.Argument(None, help="Preset to open first.")) -> None:
        """Open the interactive session on the current folder (presets/, runs/, exports/)."""
        open_ui(str(preset) if preset else None)
