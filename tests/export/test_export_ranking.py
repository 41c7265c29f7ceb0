"""The ranking export of a study of several configs: order (divergence never best), bands,
time-to-target, the Markdown/CSV tables, the figure, summary.json and the export command."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from optui.export import export_run, ranking
from optui.results import RunResult, UnitResult


def unit(name: str, finals: list[float], acc: list[float], diverged: int = 0) -> UnitResult:
    """Eval at steps 0, 50, 100: losses fall linearly from 2.0 to `finals`; accuracy rises to `acc`."""
    finals_a, acc_a = np.asarray(finals, float), np.asarray(acc, float)
    t = np.array([0.0, 0.5, 1.0])
    loss = 2.0 + (finals_a[:, None] - 2.0) * t
    accuracy = 0.1 + (acc_a[:, None] - 0.1) * t
    div = np.full(len(finals), -1)
    if diverged:
        div[:diverged] = 60
        loss[:diverged, 2:] = np.nan
        accuracy[:diverged, 2:] = np.nan
    mb = np.ones((len(finals), 100), np.float32)
    return UnitResult(name=name, spec={"optimizer": name.split("-")[0], "learning_rate": 0.1},
                      minibatch_loss=mb, eval_steps=np.array([0, 50, 100]),
                      eval={"train_loss": loss, "test_loss": loss, "test_accuracy": accuracy},
                      diverged_at=div, total_steps=100, wall_time_s=2.0)


def zoo_run(units: list[UnitResult]) -> RunResult:
    return RunResult(run_id="r9", study="zoo", workload="mnist", kind="study", status="done", device="cpu",
                     created=0.0, wall_time_s=9.0, preset_text="", units={u.name: u for u in units})


@pytest.fixture
def run():
    return zoo_run([
        unit("sgd", [0.9, 1.0, 1.1], [0.70, 0.72, 0.74]),
        unit("adam", [0.30, 0.32, 0.34], [0.90, 0.91, 0.92]),
        unit("lion-fast", [0.10, 0.12, 0.14], [0.95, 0.96, 0.97], diverged=1),  # best mean, but diverged once
        unit("prodigy", [0.5, 0.5, 0.5], [0.85, 0.85, 0.85]),
    ])


def test_configs_rank_by_final_test_loss_with_divergence_last(run):
    ranked = ranking.rank(run)
    assert [r.name for r in ranked.rows] == ["adam", "prodigy", "sgd", "lion-fast"]
    adam = ranked.rows[0]
    assert adam.objective.dist["mean"] == pytest.approx(0.32) and adam.objective.dist["min"] == pytest.approx(0.30)
    assert adam.objective.dist["ci95"][0] <= 0.32 <= adam.objective.dist["ci95"][1]
    assert adam.other.dist["mean"] == pytest.approx(0.91)
    lion = ranked.rows[-1]
    assert lion.diverged == 1 and lion.objective.dist["n"] == 2  # bands over the healthy replicates only


def test_time_to_target_defaults_to_the_median_and_can_be_given(run):
    ranked = ranking.rank(run)
    # Final means: 0.32, 0.5, 1.0, 0.13 -> median 0.41; accuracies 0.91, 0.85, 0.72, 0.965 -> 0.88.
    assert ranked.objective_target == pytest.approx(0.41) and ranked.other_target == pytest.approx(0.88)
    by = {r.name: r for r in ranked.rows}
    assert (by["adam"].objective.target_percent, by["adam"].objective.target_step) == (100.0, 100)
    assert by["sgd"].objective.target_percent is None and by["prodigy"].objective.target_percent is None
    given = ranking.rank(run, {"test_loss": 1.2, "test_accuracy": 0.5})
    by = {r.name: r for r in given.rows}
    assert by["adam"].objective.target_percent == 50.0 and by["sgd"].objective.target_percent == 100.0
    assert by["adam"].other.target_percent == 50.0 and not given.targets_chosen


def test_export_writes_the_ranking_table_figure_and_summary(tmp_path, run):
    files = {p.name for p in export_run(run, tmp_path, {"png", "csv", "json"})}
    assert {"ranking.png", "ranking.md", "ranking.csv", "summary.json"} <= files
    md = (tmp_path / "ranking.md").read_text()
    assert "| 1 | adam | adam | 0.32 [" in md and "test loss <= 0.41" in md and "test acc >= 88%" in md
    rows = list(csv.DictReader((tmp_path / "ranking.csv").open()))
    assert [r["config"] for r in rows] == ["adam", "prodigy", "sgd", "lion-fast"]
    assert float(rows[0]["test_accuracy_mean"]) == pytest.approx(0.91)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["ranking"]["configs"][0]["config"] == "adam"
    assert (tmp_path / "ranking.png").stat().st_size > 10_000


def test_two_configs_are_compared_not_ranked(tmp_path):
    two = zoo_run([unit("sgd", [1.0], [0.7]), unit("adam", [0.3], [0.9])])
    files = {p.name for p in export_run(two, tmp_path, {"png", "csv"})}
    assert not any(f.startswith("ranking") for f in files)


def test_a_workload_without_accuracy_ranks_by_loss_alone(tmp_path):
    units = [unit(n, [v], [0.5]) for n, v in (("a", 0.3), ("b", 0.2), ("c", 0.4))]
    for u in units:
        del u.eval["test_accuracy"]
    ranked = ranking.rank(zoo_run(units))
    assert [r.name for r in ranked.rows] == ["b", "a", "c"] and not ranked.has_other
    assert "accuracy" not in " ".join(ranking.header(ranked))
    export_run(zoo_run(units), tmp_path, {"png"})
    assert (tmp_path / "ranking.png").exists()


def test_export_command_rejects_a_bad_target(tmp_path):
    from optui.cli import app

    result = CliRunner().invoke(app, ["export", "--store", str(tmp_path / "runs"), "--target", "test_loss=abc"])
    assert result.exit_code == 2 and "expected METRIC=NUMBER" in result.output
