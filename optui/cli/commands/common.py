"""Shared CLI plumbing: user errors become one clear line and an exit code, never a traceback."""

from __future__ import annotations

import sqlite3
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import typer

from ...errors import DataError, OptuiError, PresetError, StoreError, UsageError

STORE_OPTION = typer.Option(Path("runs"), "--store", help="Run store folder.")
EXPORTS_OPTION = typer.Option(Path("exports"), "--exports", help="Exports folder.")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    # Warnings here are for the user (skipped data, ...): one line, without Python's source line.
    print(f"warning: {message}", file=sys.stderr)


@contextmanager
def user_errors() -> Iterator[None]:
    """Exit 2 for bad input (presets, data, arguments), 1 for other failures."""
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            yield
        except (PresetError, DataError, UsageError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(2) from None
        except (StoreError, OptuiError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(1) from None
        except sqlite3.DatabaseError as exc:  # a damaged page the store's own checks did not meet
            print(f"error: the run store could not be read ({exc}); it may be damaged: `optui runs` "
                  f"lists what is still readable", file=sys.stderr)
            raise typer.Exit(1) from None


def session_instead(headless: bool, preset: Path) -> bool:
    """Open the interactive session on the preset unless the run is headless (asked for, or no
    terminal to show it on); True when the session ran and the command is done."""
    from ...system.terminal import headless_without_terminal

    if headless or headless_without_terminal():
        return False
    from .ui import open_ui

    open_ui(str(preset))
    return True
