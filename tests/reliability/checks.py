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


def interrupted_run(preset: Path, runs: Path, chunks: int = 2, overrides: list[str] | None = None,
                    configs: list[str] | None = None) -> str:
    """Run the study in preset in-process and stop it after `chunks` chunks, as a first Ctrl-C
    does; returns the id of the interrupted run in the store at runs/."""
    import threading

    from optui import presets
    from optui.engine.events import ChunkDone
    from optui.service import StudyRunner
    from optui.store import Store

    study = presets.load(preset, overrides or [])
    store = Store.open(runs)
    cancel = threading.Event()
    seen = []

    def listener(event) -> None:
        if isinstance(event, ChunkDone):
            seen.append(event)
            if len(seen) >= chunks:
                cancel.set()

    try:
        run_id = StudyRunner(study, store, listener, cancel).run(configs=configs)
        assert store.run_info(run_id)["status"] == "interrupted"
    finally:
        store.close()
    return run_id
