"""Shared CLI plumbing: user errors become one clear line and an exit code, never a traceback."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import typer

from ..errors import DataError, OptuiError, PresetError, StoreError

STORE_OPTION = typer.Option(Path("runs"), "--store", help="Run store folder.")
EXPORTS_OPTION = typer.Option(Path("exports"), "--exports", help="Exports folder.")


@contextmanager
def user_errors() -> Iterator[None]:
    """Exit 2 for bad input (presets, data, arguments), 1 for other failures."""
    try:
        yield
    except (PresetError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    except (StoreError, OptuiError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
