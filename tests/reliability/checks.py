"""Checks shared by the reliability tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from optui.store import DB_NAME


def one_error(result) -> str:
    """The single `error:` line of a refused command: exit 2, no traceback, nothing else on stderr."""
    output = result.stdout + result.stderr
    assert result.exit_code == 2, output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def dump(runs: Path) -> list[str]:
    """The store's whole content as SQL text."""
    conn = sqlite3.connect(runs / DB_NAME)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()
