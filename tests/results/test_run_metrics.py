"""RunMetrics: the one object that says what a run measured, which way is better and what its
objective is, built from the workload's declarations, recorded with the run and read back
without the workload."""

from __future__ import annotations

import numpy as np
import pytest

from optui.results.metrics import MINIBATCH, TRAIN_TEST, RunMetrics, UnknownMetric
from optui.store import Store
from optui.study.presets import load as load_preset

from support import regression_workload as reg


def fake_run(store: Store, meta: dict, workload: str = "regression", names=("test_mse", "test_r2", "train_mse")):
    """A finished 2-config run whose eval records `names`, with `meta` as its metadata."""
    run_id = store.create_run("reg", workload, "study", "", "p.toml", {"device": "cpu:test", **meta})
    for unit, level in (("a", 0.2), ("b", 0.1)):
        store.add_unit(run_id, unit, {"optimizer": "sgd", "learning_rate": 0.1, "batch_size": 8}, 2, 10, 2)
        for i, (start, end) in enumerate([(0, 0), (0, 10)]):
            ev = {n: np.full(2, level + 0.01 * i) for n in names}
            store.write_chunk(run_id, unit, i - 1, start, np.zeros((2, end - start), np.float32), end, ev,
                              np.full(2, -1))
        store.finish_unit(run_id, unit, "done", 1.0)
    store.finish_run(run_id, "done", 2.0)
    return store.load_run(run_id)


def test_from_the_workload_declarations():
    m = RunMetrics.of_spec(reg.workload())
    assert m.objective.name == "test_mse" and m.direction() == "lower is better"
    assert m.names == ("test_mse", "test_r2", "train_mse")
    assert m.higher_is_better("test_r2") and m.direction("test_r2") == "higher is better"
    assert m.label("test_r2") == "test R^2" and m.get("test_r2").kind == "other"
    assert [x.name for x in m.train_test] == ["train_mse", "test_mse"]
    assert m.plottable() == (MINIBATCH, "test_mse", "test_r2", "train_mse", TRAIN_TEST)
    assert m.label(MINIBATCH) == "minibatch loss" and not m.higher_is_better(MINIBATCH)


def test_of_a_preset(tmp_path):
    study = load_preset(reg.write_preset(tmp_path))
    assert RunMetrics.of_preset(study) == RunMetrics.of_spec(reg.workload())


def test_recorded_with_the_run_and_read_back_without_the_workload(tmp_path):
    recorded = RunMetrics.of_spec(reg.workload())
    run = fake_run(Store.open(tmp_path / "runs"), recorded.as_meta(), workload="not-installed-anywhere")
    assert RunMetrics.of_run(run) == recorded


def test_old_runs_without_declarations_fall_back_to_their_names(tmp_path):
    run = fake_run(Store.open(tmp_path / "runs"), {})
    m = RunMetrics.of_run(run)
    # train before test, losses first; the objective is the test loss
    assert m.names == ("train_mse", "test_mse", "test_r2")
    assert m.objective.name == "test_mse" and m.direction() == "lower is better"
    assert [x.name for x in m.train_test] == ["train_mse", "test_mse"]
    assert not m.higher_is_better("test_r2")  # a guess from a name: only accuracies go up


def test_old_runs_of_an_installed_workload_take_its_declarations(tmp_path):
    run = fake_run(Store.open(tmp_path / "runs"), {}, workload="twnet", names=("test_loss",))
    m = RunMetrics.of_run(run)
    assert m.names == ("test_loss",) and m.objective.name == "test_loss"


def test_unknown_names_are_refused_naming_the_allowed_ones():
    m = RunMetrics.of_spec(reg.workload())
    with pytest.raises(UnknownMetric, match="test_msee.*test_mse, test_r2, train_mse"):
        m.check("test_msee")
    assert m.check(MINIBATCH, allow_minibatch=True).name == MINIBATCH
