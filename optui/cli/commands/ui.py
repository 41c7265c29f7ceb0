"""`optui ui [PRESET]` (and `optui` alone): the interactive session."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Optional

import typer


WEB_DRIVER = "textual.drivers.web_driver:WebDriver"  # what textual-serve sets for the session it starts


def open_ui(preset: str | None) -> None:
    from ...system.terminal import interactive

    if os.environ.get("TEXTUAL_DRIVER") != WEB_DRIVER and not interactive():  # Textual would draw into a file or a pipe and wait for keys for ever
        print("error: the interactive session needs a terminal (stdin and stdout); for a batch job "
              "use `optui run PRESET --headless` or `optui search PRESET --headless`", file=sys.stderr)
        raise typer.Exit(2)
    from ...ui.app import run_app  # the only place the CLI imports the UI

    run_app(preset)


def register(app: typer.Typer) -> None:
    @app.command("ui")
    def ui(preset: Optional[Path] = typer.Argument(None, help="Preset to open first.")) -> None:
        """Open the interactive session on the current folder (presets/, runs/, exports/)."""
        open_ui(str(preset) if preset else None)

    @app.command("serve")
    def serve(preset: Optional[Path] = typer.Argument(None, help="Preset to open first."),
              host: str = typer.Option("127.0.0.1", help="Address to listen on. The session can run "
                                       "training and write files: bind beyond this machine only "
                                       "behind your own access control."),
              port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on.")) -> None:
        """The interactive session in a browser tab (textual-serve), on the current folder."""
        serve_ui(str(preset) if preset else None, host, port)


def serve_ui(preset: str | None, host: str, port: int) -> None:
    """Serve `optui ui` over HTTP: each browser tab gets its own session process."""
    from ...optional import MissingDependency, require

    try:
        server_module = require("textual_serve.server", "`optui serve`")
    except MissingDependency as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(2)
    if preset is not None and not Path(preset).is_file():
        print(f"error: {preset}: no such preset file", file=sys.stderr)
        raise typer.Exit(2)
    command = shlex.join([sys.executable, "-m", "optui.cli", "ui", *([preset] if preset else [])])
    try:
        server_module.Server(command, host=host, port=port, title="optui").serve()
    except OSError as exc:  # the port is taken, or the address is not this machine's
        print(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port",
              file=sys.stderr)
        raise typer.Exit(2)
