"""The session reaches the service's use cases: resume an interrupted run, confirm a search's
best trials and write its best config into the open preset, as the CLI can."""

from __future__ import annotations

from pathlib import Path

from support.session import checked, interrupted_study, run_async, wait_for, write
from optui import service
from optui.store import Store
from optui.ui.app import OptuiApp


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
        app.query_one("SearchPanel").action_write_best()  # it asks first; then off the UI thread
        await wait_for(pilot, lambda: type(app.screen).__name__ == "QuitScreen", 30, "the question")
        await pilot.press("y")
        await wait_for(pilot, lambda: "[configs.sgd-searched]" in path.read_text(encoding="utf-8"), 60, "the write")
        await wait_for(pilot, lambda: checked(app) and app.editor.study is not None
                       and "sgd-searched" in app.editor.study.configs, 60, "the preset re-read")
    text = path.read_text(encoding="utf-8")
    assert "[configs.sgd-searched]" in text and "# A tiny TwNet study" in text  # comments kept
    written = service.load_study(path).configs["sgd-searched"]
    assert abs(written.hyperparams["learning_rate"] - best.params["learning_rate"]) < 1e-6
