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

    from optui.study import presets
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

    from optui.engine import core

    paced = core.TARGET_CALL_SECONDS
    core.TARGET_CALL_SECONDS = 0.0  # one eval block per device call, so the stop lands part-way
    try:
        run_id = StudyRunner(study, store, listener, cancel).run(configs=configs)
        assert store.run_info(run_id)["status"] == "interrupted"
    finally:
        core.TARGET_CALL_SECONDS = paced
        store.close()
    return run_id


def recorded_run(runs: Path, study: str = "tiny", configs: tuple[str, ...] = ("sgd", "adam"),
                 finish: str | None = "done", steps: int = 8) -> str:
    """A run written straight into the store at runs/ (no training): each config's two replicates
    with made-up losses, finished as `finish` (None: left as a killed process leaves it)."""
    import numpy as np

    from optui.store import Store
    from support.common import TINY_CONFIGS, tiny_preset_text

    store = Store.open(runs)
    try:
        text = tiny_preset_text(study=study, configs={c: TINY_CONFIGS[c] for c in configs})
        run_id = store.create_run(study, "twnet", "study", text, None, {"device": "cpu"})
        for i, name in enumerate(configs):
            store.add_unit(run_id, name, dict(TINY_CONFIGS[name]), 2, steps, 1)
            losses = np.linspace(1.0, 0.5, steps, dtype=np.float32)[None].repeat(2, 0) + i
            store.write_chunk(run_id, name, -1, 0, np.zeros((2, 0)), 0, {"test_loss": np.ones(2)}, np.full(2, -1))
            store.write_chunk(run_id, name, 0, 0, losses, steps, {"test_loss": losses[:, -1]}, np.full(2, -1))
            if finish == "done":
                store.finish_unit(run_id, name, "done", 0.5)
        if finish is not None:
            store.finish_run(run_id, finish, 1.0)
    finally:
        store.close()
    return run_id
