"""The notebook API: optui.open_store(...).runs(), run.configs, run.histories(...) as numpy,
run.to_frame() as a tidy pandas DataFrame, and optui.run_study(...) returning its Run."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest

import optui
from optui.errors import OptuiError
from optui.optional import MissingDependency

from support.common import ROOT, tiny_preset_text
from support.stores import make_store


@pytest.fixture
def filled(tmp_path):
    store, study_id, search_id = make_store(tmp_path / "runs")
    return tmp_path / "runs", store, study_id, search_id


def test_runs_and_their_configs(filled):
    root, _, study_id, search_id = filled
    with optui.open_store(root) as store:
        runs = store.runs()
        assert [r.id for r in runs] == [study_id, search_id]  # oldest first
        assert [r.kind for r in store.runs(kind="search")] == ["search"]
        run = store.run(study_id[:-2])  # a unique prefix
        assert run.id == study_id and run.study == "demo" and run.status == "done"
        assert run.configs == ["sgd", "adam"]
        assert run.metrics("adam") == ["minibatch_loss", "train_loss", "test_loss"]
        assert run.spec("adam")["batch_size"] == 8
        assert store.latest().id == study_id and store.latest(kind=None).id == search_id
        with pytest.raises(OptuiError, match="no study run of study 'nope'"):
            store.latest("nope")


def test_histories_are_the_store_arrays(filled):
    root, store, study_id, _ = filled
    stored = store.load_run(study_id).units["adam"]
    run = optui.open_store(root).run(study_id)
    loss = run.histories("adam", "test_loss")
    assert isinstance(loss, np.ndarray) and loss.dtype == np.float64 and loss.shape == (3, 4)
    np.testing.assert_array_equal(loss, stored.eval["test_loss"])
    assert np.isnan(loss[1, -1]) and not np.isnan(loss[0]).any()  # replicate 1 diverged
    np.testing.assert_array_equal(run.steps("adam", "test_loss"), [0, 4, 8, 12])
    np.testing.assert_array_equal(run.examples("adam", "test_loss"), [0, 32, 64, 96])
    mb = run.histories("adam", "minibatch_loss")
    np.testing.assert_array_equal(mb, stored.minibatch_loss.astype(np.float64))
    np.testing.assert_array_equal(run.steps("adam", "minibatch_loss"), np.arange(1, 13))
    np.testing.assert_array_equal(run.diverged("adam"), [False, True, False])
    loss[:] = 0  # a copy: the run's own arrays are untouched
    assert not (run.histories("adam", "test_loss") == 0).all()
    with pytest.raises(KeyError, match="recorded no test_accuracy; recorded: minibatch_loss"):
        run.histories("adam", "test_accuracy")
    with pytest.raises(KeyError, match="no config 'rmsprop'"):
        run.histories("rmsprop")
    assert run.summary()["configs"]["adam"]["diverged"] == 1


def test_to_frame_is_tidy_and_equals_the_store(filled):
    pd = pytest.importorskip("pandas")
    root, store, study_id, _ = filled
    run = optui.open_store(root).run(study_id)
    df = run.to_frame()
    assert list(df.columns) == ["run", "config", "replicate", "step", "examples", "metric", "value"]
    # rows: per config, 3 replicates x (12 minibatch steps + 2 x 4 eval points)
    assert len(df) == 2 * 3 * (12 + 2 * 4)
    stored = store.load_run(study_id)
    for (config, metric, replicate), group in df.groupby(["config", "metric", "replicate"]):
        unit = stored.units[config]
        want = unit.minibatch_loss[replicate] if metric == "minibatch_loss" else unit.eval[metric][replicate]
        np.testing.assert_array_equal(group["value"].to_numpy(), want.astype(np.float64))
        batch = unit.spec["batch_size"]
        assert (group["examples"].to_numpy() == group["step"].to_numpy() * batch).all()
    test = run.to_frame(metrics=["test_loss"], configs=["sgd"])
    assert set(test["metric"]) == {"test_loss"} and set(test["config"]) == {"sgd"} and len(test) == 12
    mean_curve = df[df.metric == "test_loss"].groupby(["config", "step"])["value"].mean()
    assert mean_curve.loc[("sgd", 12)] == pytest.approx(stored.units["sgd"].eval["test_loss"][:, -1].mean())


def test_to_frame_without_pandas_names_the_install(filled, monkeypatch):
    root, _, study_id, _ = filled
    run = optui.open_store(root).run(study_id)
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(MissingDependency, match=r"pip install 'optui\[notebook\]'"):
        run.to_frame()
    with pytest.raises(ImportError):  # what a notebook user would catch
        run.to_frame()


def test_import_optui_stays_light():
    code = "import sys, optui; print('numpy' in sys.modules, 'optui.notebook' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_run_study_returns_the_run(tmp_path):
    preset = tmp_path / "one.toml"
    preset.write_text(tiny_preset_text(study="nb", iterations=12, points=3, replicates=2,
                                       configs={"sgd": {"optimizer": "sgd", "learning_rate": 0.5, "batch_size": 8}}))
    events = []
    run = optui.run_study(preset, overrides=["replicates.count=3"], store=tmp_path / "runs",
                          on_event=events.append)
    assert run.status == "done" and run.study == "nb" and run.configs == ["sgd"]
    assert run.histories("sgd", "test_loss").shape == (3, 4)
    assert np.isfinite(run.histories("sgd", "minibatch_loss")).all()
    assert type(events[0]).__name__ == "RunStarted" and type(events[-1]).__name__ == "RunFinished"
    assert optui.open_store(tmp_path / "runs").latest().id == run.id
    cancel = threading.Event()
    cancel.set()  # stopped before its first chunk: kept, as interrupted
    stopped = optui.run_study(preset, store=tmp_path / "runs", cancel=cancel)
    assert stopped.status == "interrupted"
    with pytest.raises(OptuiError, match="configs.sgd.learning_rate"):
        optui.run_study(preset, overrides=["configs.sgd.learning_rate=-1"], store=tmp_path / "runs")
