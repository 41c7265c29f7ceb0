"""Readers of results go through the workload's metric declarations: the summary (and its 80-column
table), `optui runs show`, `optui compare` (which way is better), statistics and figures; runs
recorded without declarations get them inferred from their names."""

from __future__ import annotations

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from optui.results import metrics
from optui.cli import app
from optui.export import export_run
from optui.export.tables import summary
from optui.cli.headless.study import summary_table
from optui.results.metrics import Metric
from optui.results.stats import paired_comparison, time_to_target
from optui.store import Store

DECLARED = [
    Metric("train_loss", "loss", label="train loss", split="train"),
    Metric("test_loss", "loss", label="test loss", split="test"),
    Metric("train_accuracy", "accuracy", label="train acc", split="train"),
    Metric("test_accuracy", "accuracy", label="test acc", split="test"),
]


def test_declarations_are_checked():
    assert Metric("test_accuracy", "accuracy").higher_is_better and Metric("x").goal == "min"
    assert Metric("f1", "other", higher_is_better=True).goal == "max"
    for bad in [dict(name="Test Loss"), dict(name="minibatch_loss"), dict(name="x", kind="score"),
                dict(name="x", split="valid")]:
        with pytest.raises(ValueError):
            Metric(**bad)


def test_inferred_for_runs_without_declarations():
    got = metrics.from_meta({}, ["test_accuracy", "test_loss", "minibatch_loss", "train_loss"])
    assert [m.name for m in got] == ["train_loss", "test_loss", "test_accuracy"]
    assert got[2].kind == "accuracy" and got[2].goal == "max" and got[0].split == "train"
    stored = metrics.from_meta({"metrics": [m.as_dict() for m in DECLARED[:2]]}, ["extra_score"])
    assert [m.name for m in stored] == ["train_loss", "test_loss", "extra_score"]
    assert metrics.objective_of({"objective": "test_accuracy"}, DECLARED).name == "test_accuracy"
    assert metrics.objective_of({}, DECLARED).name == "test_loss"


def test_direction_aware_statistics():
    a, b = np.array([0.9, 0.8, 0.7]), np.array([0.8, 0.8, 0.9])
    assert paired_comparison(a, b)["p_a_below_b"] == pytest.approx(0.5)
    assert paired_comparison(a, b, higher_is_better=True)["p_a_below_b"] == pytest.approx(0.5)
    assert paired_comparison(a, b, higher_is_better=True)["p_a_below_b"] != \
        paired_comparison(np.array([0.9, 0.9, 0.9]), b, higher_is_better=False)["p_a_below_b"]
    accuracy = np.array([[0.1, 0.5, 0.95, 0.97], [0.1, 0.6, 0.92, 0.99]])
    x = np.array([0.0, 25.0, 50.0, 100.0])
    assert time_to_target(x, accuracy, 0.9, higher_is_better=True) == 50.0
    assert time_to_target(x, accuracy, 0.9) == 0.0  # as a loss: below 0.9 from the start


@pytest.fixture
def accuracy_run(tmp_path):
    """A finished run of a workload that declares losses and accuracies, objective test_accuracy."""
    store = Store.open(tmp_path / "runs")
    meta = {"device": "cpu:test", "metrics": [m.as_dict() for m in DECLARED], "objective": "test_accuracy"}
    run_id = store.create_run("acc-study", "digits", "study", 'workload = "digits"\n', "p.toml", meta)
    rng = np.random.default_rng(0)
    for unit, level in (("slow", 0.80), ("fast-learner-config", 0.95)):
        store.add_unit(run_id, unit, {"optimizer": "sgd", "learning_rate": 0.1, "batch_size": 8}, 4, 20, 2)
        for i, (start, end) in enumerate([(0, 0), (0, 10), (10, 20)]):
            frac = end / 20
            ev = {"train_loss": np.full(4, 2.0 - frac), "test_loss": np.full(4, 2.1 - frac),
                  "train_accuracy": np.full(4, 0.1 + frac * (level - 0.05)),
                  "test_accuracy": 0.1 + frac * (level - 0.1) + rng.normal(0, 0.005, 4)}
            store.write_chunk(run_id, unit, i - 1, start, rng.random((4, end - start), dtype=np.float32), end,
                              ev, np.full(4, -1))
        store.finish_unit(run_id, unit, "done", 1.0)
    store.finish_run(run_id, "done", 2.0)
    return store, run_id


def test_summary_lists_declarations_and_the_table_fits_80_columns(accuracy_run):
    store, run_id = accuracy_run
    data = summary(store.load_run(run_id))
    assert data["objective"] == "test_accuracy" and [m["name"] for m in data["metrics"]][-1] == "test_accuracy"
    assert data["configs"]["slow"]["final_test_accuracy"]["mean"] == pytest.approx(0.8, abs=0.01)
    console = Console(width=80, record=True)
    console.print(summary_table(data))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text  # no cell cut short
    row = next(line for line in text.splitlines() if line.startswith("fast-learner-config"))
    assert "95.2" in row  # the test accuracy's mean, as a percentage
    assert "acc" in text


def test_runs_show_and_compare_read_the_declarations(accuracy_run):
    store, run_id = accuracy_run
    root = store.path.parent if store.path.is_file() else store.path
    shown = CliRunner().invoke(app, ["runs", "show", run_id, "--store", str(root)], env={"COLUMNS": "80"})
    assert shown.exit_code == 0, shown.output
    assert "acc" in shown.output and "%" in shown.output
    result = CliRunner().invoke(app, ["compare", f"{run_id}:fast-learner-config", f"{run_id}:slow",
                                      "--target", "0.6", "--store", str(root)], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    # The default metric is the workload's objective; better is higher for an accuracy.
    assert "final test acc (higher is better)" in result.output
    assert "P(above fast-learner-config)" in result.output  # slow paired against the first
    assert "% of run to > 0.6" in result.output
    loss = CliRunner().invoke(app, ["compare", f"{run_id}:fast-learner-config", f"{run_id}:slow",
                                    "--metric", "test_loss", "--store", str(root)], env={"COLUMNS": "120"})
    assert "P(below fast-learner-config)" in loss.output


def test_figures_put_accuracies_on_a_linear_axis(accuracy_run, tmp_path):
    from optui.export.figures import compare_figure, config_figure
    from optui.study.presets import Compare

    store, run_id = accuracy_run
    run = store.load_run(run_id)
    fig = compare_figure(run, Compare("acc", ("slow", "fast-learner-config"), "test_accuracy"))
    ax = fig.axes[0]
    assert ax.get_yscale() == "linear" and ax.get_ylabel() == "test acc (higher is better)"
    fig = compare_figure(run, Compare("loss", ("slow",), "train_test"))
    assert fig.axes[0].get_yscale() == "log" and len(fig.axes[0].get_lines()) == 2
    fig = config_figure(run, "slow")
    assert [a.get_yscale() for a in fig.axes] == ["log", "linear"]  # losses above, accuracies below
    assert {t.get_text() for t in fig.axes[1].get_legend().get_texts()} == {"train acc", "test acc"}
    files = export_run(run, tmp_path / "out", ["png", "json"])
    assert len(files) == 4  # one comparison (the default pair), one figure per config, the summary
