"""`optui ui [PRESET]` (and `optui` alone): the interactive session."""

from __future__ import annotations

import os
import re
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
                                       "training and write files: beyond this machine (0.0.0.0) anyone "
                                       "with the token can; prefer an SSH tunnel."),
              port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
              token: Optional[str] = typer.Option(None, envvar="OPTUI_TOKEN", show_default="random",
                                                  help="The access token in the URL to open (at least 8 "
                                                  "letters, digits or -._~)."),
              max_sessions: int = typer.Option(3, "--max-sessions", min=1, max=64,
                                               help="Sessions (browser tabs, one process each) at once.")) -> None:
        """The interactive session in a browser tab (textual-serve), on the current folder; the
        URL to open, with its access token, is printed once the port is bound."""
        serve_ui(str(preset) if preset else None, host, port, token, max_sessions)


TOKEN_CHARACTERS = re.compile(r"[A-Za-z0-9._~-]{8,}")


def serve_ui(preset: str | None, host: str, port: int, token: str | None = None, max_sessions: int = 3) -> None:
    """Serve `optui ui` over HTTP: each browser tab gets its own session process."""
    from ...optional import MissingDependency, require

    try:
        require("textual_serve.server", "`optui serve`")
    except MissingDependency as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(2)
    if preset is not None and not Path(preset).is_file():
        print(f"error: {preset}: no such preset file", file=sys.stderr)
        raise typer.Exit(2)
    if token is not None and not TOKEN_CHARACTERS.fullmatch(token):
        print("error: --token (or OPTUI_TOKEN) must be at least 8 characters, each a letter, a digit or "
              "one of - . _ ~", file=sys.stderr)
        raise typer.Exit(2)
    from ...serve import serve
    from ...serve.access import new_token

    argv = [sys.executable, "-m", "optui.cli", "ui", *([preset] if preset else [])]
    try:
        serve(argv, host=host, port=port, token=token or new_token(), max_sessions=max_sessions)
    except OSError as exc:  # the port is taken, or the address is not this machine's
        print(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port",
              file=sys.stderr)
        raise typer.Exit(2)
