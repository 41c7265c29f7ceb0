"""The interactive session with a plug-in workload (the digits example, registered through an
entry point) at 80x24: the form lists its declared settings, a run shows its bands, the progress
table and the metric cycle follow its declared metrics, and Compare offers its accuracies."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from optui.store import Store
from optui.ui.app import OptuiApp
from optui.workloads import registry

from support.common import ROOT
from support.plugin_sources import write_dist_info
from support.session import checked, run_async, wait_for

pytest.importorskip("sklearn", reason="the digits example needs scikit-learn (the examples extra)")

PRESET = """\
study = "digits-ui"
workload = "digits"

[model]
hidden = 16   # small: compiles quickly

[budget]
iterations = 30

[eval]
points = 3

[replicates]
count = 2

[configs.sgd]
optimizer = "sgd"
learning_rate = 0.1
batch_size = 32

[configs.adam]
optimizer = "adam"
learning_rate = 0.003
batch_size = 32
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch) -> Path:
    """A project folder with the preset, and the example registered as an installed package."""
    site = tmp_path / "site"
    write_dist_info(site, "optui-digits", {"digits": "optui_digits:workload"}, "0.1.0")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "digits"))
    importlib.invalidate_caches()
    registry.clear_cache()
    project = tmp_path / "project"
    (project / "presets").mkdir(parents=True)
    (project / "presets" / "digits.toml").write_text(PRESET, encoding="utf-8")
    monkeypatch.chdir(project)
    yield project
    registry.clear_cache()


@run_async
async def test_a_plugin_workload_end_to_end(folder: Path):
    app = OptuiApp(preset="presets/digits.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: checked(app) and app.editor.study is not None, 60, "preset opened")
        # The form lists the workload's declared settings, with their defaults.
        form = app.query_one("#preset-form")
        labels = [r.label for r in form.rows]
        assert {"data.test_fraction", "data.split_seed", "model.hidden", "model.dropout",
                "model.bn_momentum", "eval.points"} <= set(labels)
        assert form.input_for("model.hidden").value == "16"
        assert "default 0.2" in form.input_for("model.dropout").placeholder

        await pilot.press("escape", "2")
        replicates = app.query_one("#replicates-panel")
        columns = [str(c.label) for c in replicates.query_one("#rep-progress").columns.values()]
        assert columns == ["config", "steps", "test acc", "div", "status"]  # the default objective
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: replicates.series_count() == 2, 180, "bands of both configs")
        await wait_for(pilot, lambda: app.runner.running is None, 180, "the run to finish")
        assert app.runner.last_status == "done"
        cells = [replicates.query_one("#rep-progress").get_row_at(i) for i in range(2)]
        assert all(str(row[2]).endswith("%") for row in cells), cells  # accuracies as percentages

        # The plot opens on the objective; m cycles to the minibatch loss, then the other metrics.
        assert replicates.metrics[:2] == ["test_accuracy", "minibatch_loss"]
        assert set(replicates.metrics[2:]) >= {"train_loss", "test_loss", "train_accuracy"}
        assert replicates.metric == "test_accuracy"
        replicates.query_one("#rep-plot").focus()
        await pilot.press("m")
        assert replicates.metric == "minibatch_loss"

        (info,) = Store.open(folder / "runs").list_runs()
        assert info["status"] == "done" and info["workload"] == "digits"

        # Compare offers the accuracies and draws them.
        await pilot.press("escape", "4")
        compare = app.query_one("#compare-panel")
        values = [v for _, v in compare.query_one("#cmp-metric")._options]
        assert {"minibatch_loss", "test_accuracy", "train_accuracy", "train_test"} <= set(values)
        compare.query_one("#cmp-metric").value = "test_accuracy"
        await wait_for(pilot, lambda: compare.drawn == 2 and not compare.dirty, 20, "compare plot")
        assert compare.describe() == "test acc, mean and min-max"


@run_async
async def test_a_broken_plugin_is_an_error_beside_the_workload_field(folder: Path):
    from support.plugin_sources import broken

    (folder / "broken_workload.py").write_text(broken("init-nan"), encoding="utf-8")
    (folder / "presets" / "digits.toml").write_text(
        PRESET.replace('workload = "digits"', 'workload = "./broken_workload.py:make"')
              .replace("[model]\nhidden = 16   # small: compiles quickly\n", ""), encoding="utf-8")
    app = OptuiApp(preset="presets/digits.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: checked(app), 60, "preset checked")
        assert app.editor.study is not None  # the reference resolves; building it is what fails
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.runner.running is None and any(
            "NaN" in n.message for n in app._notifications), 60, "the refusal")
        message = next(n.message for n in app._notifications if "NaN" in n.message)
        assert 'workload = "./broken_workload.py:make"' in message and "init(key) gave 2 NaN" in message
    assert Store.open(folder / "runs").list_runs() == []  # nothing stored

    (folder / "presets" / "digits.toml").write_text(PRESET.replace('"digits"', '"./nowhere.py:make"', 1),
                                                  encoding="utf-8")
    app = OptuiApp(preset="presets/digits.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: checked(app), 60, "preset checked")
        assert app.editor.study is None
        assert "no such file; tried" in app.query_one("#preset-form").error_text("workload")
