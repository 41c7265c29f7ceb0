"""The session reaches the service's use cases: resume an interrupted run, confirm a search's
best trials and write its best config into the open preset, as the CLI can."""

from __future__ import annotations

import threading
from pathlib import Path

from optui import service
from optui.engine.events import ChunkDone
from optui.store import Store
from optui.ui.app import OptuiApp
from test_ui_pilot import PRESET, checked, folder, run_async, wait_for  # noqa: F401 (fixture)

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
    return service.run_study(study, Store.open(folder / "runs"), configs=["sgd"], listener=stop_after_first,
                             cancel=cancel)


@run_async
async def test_the_session_resumes_an_interrupted_run(folder: Path):
    run_id = interrupted_study(folder)
    store = Store.open(folder / "runs")
    assert store.run_info(run_id)["status"] == "interrupted"
    app = OptuiApp(preset="presets/tiny.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: checked(app) and app.editor.study is not None, 30, "preset opened")
        app.action_resume_run()
        await wait_for(pilot, lambda: app.runner.running is None and app.runner.last_status is not None, 120, "the resume")
        assert app.runner.last_status == "done"
    run = store.load_run(run_id)
    assert run.status == "done" and run.units["sgd"].minibatch_loss.shape == (2, 60)


@run_async
async def test_the_session_writes_a_searchs_best_config_into_the_preset(folder: Path):
    path = write(folder, 30, 3)
    store = Store.open(folder / "runs")
    run_id = service.run_search(service.load_study(path), store, "sgd")
    best = service.best_config(store, run_id, service.load_study(path).search["sgd"])
    app = OptuiApp(preset="presets/tiny.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: checked(app) and app.editor.study is not None, 30, "preset opened")
        await wait_for(pilot, lambda: app.query_one("SearchPanel").chosen_run() == run_id, 30, "the stored search")
        app.query_one("SearchPanel").action_write_best()  # off the UI thread: wait for the file and the form re-reading it
        await wait_for(pilot, lambda: "[configs.sgd-searched]" in path.read_text(encoding="utf-8"), 60, "the write")
        await wait_for(pilot, lambda: checked(app) and app.editor.study is not None
                       and "sgd-searched" in app.editor.study.configs, 60, "the preset re-read")
    text = path.read_text(encoding="utf-8")
    assert "[configs.sgd-searched]" in text and "# A tiny TwNet study" in text  # comments kept
    written = service.load_study(path).configs["sgd-searched"]
    assert abs(written.hyperparams["learning_rate"] - best.params["learning_rate"]) < 1e-6
