"""Helpers for driving the session with Textual's Pilot: a tiny study preset, waiting for a
condition, running an async test, and a study interrupted after its first chunk."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from pathlib import Path

from optui import service
from optui.engine.events import ChunkDone
from optui.store import Store
from optui.ui.app import OptuiApp

PRESET = """\
# A tiny TwNet study for the session tests.
study = "tiny"
workload = "twnet"

[data]
users = 30    # a small network
vocab = 200

[budget]
iterations = {iterations}

[eval]
points = {points}

[replicates]
count = 2
seed = 0

[configs.sgd]
optimizer = "sgd"
learning_rate = 0.5
batch_size = 16

[configs.adam]
optimizer = "adam"
learning_rate = 0.01  # Adam's default step
batch_size = 16

[configs.momentum]
optimizer = "momentum"
learning_rate = 0.1
batch_size = 16

[[compare]]
title = "SGD vs Adam"
configs = ["sgd", "adam"]
metric = "test_loss"
"""


def run_async(test):
    """Run an async test on a fresh event loop (no asyncio plugin needed)."""

    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return wrapper


async def wait_for(pilot, condition, timeout: float = 90.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await pilot.pause(0.05)


def checked(app: OptuiApp) -> bool:
    return app.editor.doc is not None and app.editor.checked_generation == app.editor.edit_generation


SEARCH = """
[search.sgd]
optimizer = "sgd"
trials = 2
learning_rate = { low = 0.1, high = 1.0 }
batch_size = 16
"""


def write(folder: Path, iterations: int, points: int) -> Path:
    path = folder / "presets" / "tiny.toml"
    path.write_text(PRESET.format(iterations=iterations, points=points) + SEARCH, encoding="utf-8")
    return path


def interrupted_study(folder: Path) -> str:
    """A study stopped after its first chunk, as ctrl+t or a kill would leave it."""
    study = service.load_study(write(folder, 60, 6))
    cancel = threading.Event()
    stop_after_first = lambda e: cancel.set() if isinstance(e, ChunkDone) and e.chunk_index >= 0 else None
    from optui.engine import core

    paced, core.TARGET_CALL_SECONDS = core.TARGET_CALL_SECONDS, 0.0  # one eval block per call: it stops part-way
    try:
        return service.run_study(study, Store.open(folder / "runs"), configs=["sgd"], listener=stop_after_first,
                                 cancel=cancel)
    finally:
        core.TARGET_CALL_SECONDS = paced
