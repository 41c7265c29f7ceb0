"""A workload of one's own whose objective is not a loss called test_loss (the regression workload:
objective test_mse, lower is better; test_r2, higher is better; train_mse) gets every view after
training right: the CLI, the export, the notebook API. One test per defect it once showed."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

from support import regression_workload as reg
from support.common import ROOT, Cli, cli_env


@pytest.fixture(scope="module")
def done(tmp_path_factory, jax_cache_dir):
    """One 3-config study and one 3-trial search of the regression workload, run by the CLI."""
    folder = tmp_path_factory.mktemp("own-metrics")
    cli = Cli(folder, cli_env(jax_cache_dir))
    preset = reg.write_preset(folder, iterations=40, points=4)
    ran = cli("run", preset, "--headless", timeout=600)
    assert ran.returncode == 0, ran.stderr + ran.stdout
    searched = cli("search", preset, "--headless", "--space", "adam", timeout=600)
    assert searched.returncode == 0, searched.stderr + searched.stdout
    from optui.store import Store

    store = Store.open(folder / "runs", create=False)
    study_id = store.latest_run(kind="study")
    search_id = store.latest_run(kind="search")
    return cli, folder, preset, ran, study_id, search_id, store.load_run(study_id)


def final_means(run, metric: str) -> dict[str, float]:
    return {name: float(np.nanmean(u.eval[metric][:, -1])) for name, u in run.units.items()}


def test_headless_summary_shows_the_declared_labels(done):
    _, _, _, ran, *_ = done
    assert "test MSE" in ran.stdout and "test R^2" in ran.stdout and "train MSE" in ran.stdout


def test_defect_1_export_ranks_the_configs_by_the_objective(done):
    cli, folder, _, _, study_id, _, run = done
    result = cli("export", study_id, "--format", "csv")
    assert result.returncode == 0, result.stderr
    assert "ranked by final test MSE (lower is better)" in result.stdout
    md = next(folder.glob(f"exports/*/{study_id}/ranking.md")).read_text()
    assert "configs ranked by final test MSE (lower is better)" in md and "test MSE <= " in md
    assert "test R^2 >= " in md  # the other metric's target is reached from below
    means = final_means(run, "test_mse")
    order = [line.split("|")[2].strip() for line in md.splitlines() if re.match(r"\| \d+ \|", line)]
    assert order == sorted(means, key=means.get)


def test_defect_2_compare_views_on_declared_metrics_are_drawn(done, tmp_path):
    from optui.export import comparisons_for
    from optui.export.figures import compare_figure

    cli, folder, _, _, study_id, _, run = done
    views = comparisons_for(run)
    assert [c.metric for c in views] == ["test_mse", "test_r2", "train_test"]
    ax = compare_figure(run, views[1]).axes[0]
    assert ax.get_ylabel() == "test R^2 (higher is better)" and ax.get_yscale() == "linear"
    ax = compare_figure(run, views[2]).axes[0]
    assert len(ax.get_lines()) == 2 and "train MSE (solid) and test MSE (dashed)" in ax.get_ylabel()
    result = cli("export", study_id, "--format", "png", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in tmp_path.glob(f"*/{study_id}/compare-*.png"))
    assert names == ["compare-01-test-mse-sgd-vs-adam.png", "compare-02-test-r-2-of-every-config.png",
                     "compare-03-adam-train-vs-test.png"]


def test_defect_2_a_view_that_cannot_be_drawn_is_said(done, tmp_path):
    import warnings

    from optui.export import ComparisonWarning, comparisons_for

    run = done[-1]
    broken = run.preset_text.replace('metric = "test_r2"', 'metric = "test_rmse"')
    odd = type(run)(**{**run.__dict__, "preset_text": broken})
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        views = comparisons_for(odd)
    assert [c.metric for c in views] == ["test_mse", "train_test"]
    assert any(issubclass(w.category, ComparisonWarning) and "compare[1].metric" in str(w.message)
               and "test_rmse" in str(w.message) for w in said)


def test_defect_3_final_values_and_runs_show_report_the_objective(done, tmp_path):
    cli, _, _, _, study_id, _, _ = done
    result = cli("export", study_id, "--format", "markdown,latex", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    md = next(tmp_path.glob(f"*/{study_id}/final-values.md")).read_text()
    tex = next(tmp_path.glob(f"*/{study_id}/final-values.tex")).read_text()
    assert "final test MSE (lower is better)" in md and "train" not in md.split("\n")[0]
    assert "final test MSE (lower is better)" in tex
    for fmt in ("markdown", "latex"):
        shown = cli("runs", "show", study_id, "--format", fmt)
        assert shown.returncode == 0, shown.stderr
        assert "final test MSE (lower is better)" in shown.stdout and "final train" not in shown.stdout
    table = cli("runs", "show", study_id)
    assert "objective: test MSE (lower is better)" in table.stdout


def test_defect_4_search_captions_follow_the_direction(done, tmp_path):
    cli, _, _, _, _, search_id, _ = done
    for fmt, name in (("latex", "final\\_test\\_r2"), ("markdown", "final_test_r2")):
        shown = cli("runs", "show", search_id, "--format", fmt)
        assert shown.returncode == 0, shown.stderr
        assert f"best first by {name} (higher is better)" in shown.stdout
        assert "lower is better" not in shown.stdout
    result = cli("export", search_id, "--format", "latex,markdown", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    tex = next(tmp_path.glob(f"*/{search_id}/search-adam.tex")).read_text()
    assert "final\\_test\\_r2 (higher is better)" in tex


def test_defect_5_an_unknown_target_is_refused(done):
    cli, _, _, _, study_id, _, _ = done
    result = cli("export", study_id, "--target", "test_msee=0.5")
    assert result.returncode == 2
    assert "test_msee" in result.stderr and "test_mse, test_r2, train_mse" in result.stderr
    result = cli("compare", f"{study_id}:sgd", f"{study_id}:adam", "--metric", "test_msee")
    assert result.returncode == 2 and "test_mse, test_r2, train_mse" in result.stderr


def test_defect_5_a_known_target_is_reached_in_the_metric_direction(done, tmp_path):
    import json

    cli, _, _, _, study_id, _, run = done
    r2 = final_means(run, "test_r2")
    low, mid, _ = sorted(r2.values())
    target = (low + mid) / 2  # above the worst config's whole curve, below the others' ends
    result = cli("export", study_id, "--format", "json", "--target", f"test_r2={target}", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(next(tmp_path.glob(f"*/{study_id}/summary.json")).read_text())
    reached = {name: c["time_to_target"]["test_r2"]["percent"] for name, c in summary["configs"].items()}
    worst = min(r2, key=r2.get)
    assert reached[worst] is None, reached  # read as "lower is better" it would be reached at 0%
    for name in set(r2) - {worst}:  # reached from below, after training started
        assert reached[name] is not None and reached[name] > 0, reached
    assert summary["objective"] == "test_mse" and summary["train_test"] == ["train_mse", "test_mse"]


def test_defect_9_notebook_histories_default_to_the_objective(done):
    import optui

    _, folder, _, _, study_id, _, run = done
    nb = optui.open_store(folder / "runs").run(study_id)
    assert nb.objective == "test_mse" and nb.run_metrics.direction("test_r2") == "higher is better"
    np.testing.assert_array_equal(nb.histories("adam"), run.units["adam"].eval["test_mse"])
    assert nb.steps("adam").tolist() == run.units["adam"].eval_steps.tolist()


def test_defect_10_compare_target_is_direction_aware(done):
    cli, _, _, _, study_id, _, _ = done
    help_text = " ".join(cli("compare", "--help").stdout.split())
    assert "falls below" not in help_text and "higher is better" in help_text
    result = cli("compare", f"{study_id}:adam", f"{study_id}:adam-slow", "--metric", "test_r2", "--target", "0.1")
    assert result.returncode == 0, result.stderr
    assert "% of run to > 0.1" in result.stdout and "final test R^2 (higher is better)" in result.stdout


def test_defect_11_search_tables_use_the_optimiser_names(done, tmp_path):
    cli, _, _, _, _, search_id, _ = done
    result = cli("export", search_id, "--format", "markdown", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    md = next(tmp_path.glob(f"*/{search_id}/search-adam.md")).read_text()
    assert "| adam | learning_rate | batch_size |" in md
    assert "Alpha" not in md and "Beta1" not in md and "the report's section 1" not in md


MYLION = textwrap.dedent('''
    import optax

    def make(hp):
        return optax.lion(hp["learning_rate"])

    make.hyperparams = {"learning_rate": {"low": 0, "low_open": True, "help": "step size"}}
''')


def test_defect_11_did_you_mean_offers_installed_plugins(tmp_path, monkeypatch):
    from optui.study import presets
    from optui.errors import PresetError
    from optui.optim import plugins

    (tmp_path / "mylion_pkg.py").write_text(MYLION, encoding="utf-8")
    info = tmp_path / "mylion-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mylion\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[{plugins.GROUP}]\nmylion = mylion_pkg:make\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    text = reg.preset_text().replace('optimizer = "sgd"', 'optimizer = "mylon"')
    with pytest.raises(PresetError, match="did you mean 'mylion'"):
        presets.loads(text, str(tmp_path / "p.toml"))


WORKLOAD_FROM = 'from regression_workload import workload as make\nFOLDER = "{}"\n'
OPTIMIZER_FROM = 'import optax\ndef make(hp):\n    return optax.sgd(hp["learning_rate"])\n' \
                 'make.hyperparams = {{"learning_rate": {{"low": 0, "low_open": True}}}}\nFOLDER = "{}"\n'


def test_defect_12_workload_and_optimiser_files_are_looked_up_alike(tmp_path, monkeypatch):
    from optui.study import presets
    from optui.workloads import registry

    beside, elsewhere = tmp_path / "beside", tmp_path / "elsewhere"
    for folder in (beside, elsewhere):
        folder.mkdir()
        (folder / "w.py").write_text(WORKLOAD_FROM.format(folder.name), encoding="utf-8")
        (folder / "o.py").write_text(OPTIMIZER_FROM.format(folder.name), encoding="utf-8")
    monkeypatch.syspath_prepend(str(Path(reg.__file__).parent))
    monkeypatch.chdir(elsewhere)
    registry.clear_cache()
    text = reg.preset_text(workload_ref="./w.py:make").replace('optimizer = "sgd"', 'optimizer = "./o.py:make"')
    study = presets.loads(text, str(beside / "p.toml"))
    assert str(beside / "w.py") in study.resolved.origin
    assert study.configs["sgd"].optimizer == f"{beside / 'o.py'}:make"
    # Given without a file, the preset's references are read from the current folder.
    registry.clear_cache()
    study = presets.loads(text, None)
    assert str(elsewhere / "w.py") in study.resolved.origin


def test_defect_13_readme_documents_directions():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    own = text.split("## Your own workload", 1)[1].split("\n## ", 1)[0]
    assert "higher_is_better" in own and "objective" in own
    for view in ("ranking", "compare", "final-values", "notebook", "TensorBoard"):
        assert view in own, view
    rankings = text.split("## Rankings", 1)[1].split("\n## ", 1)[0]
    assert "workload's objective" in rankings and "in the metric's direction" in rankings
    assert "rank by the mean final test loss" not in rankings


def test_tensorboard_ranks_the_configs_by_the_objective(done, tmp_path):
    pytest.importorskip("tensorboardX")
    ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    from tensorboard.plugins.hparams import plugin_data_pb2

    cli, _, _, _, study_id, _, run = done
    result = cli("export", study_id, "--tensorboard", tmp_path)
    assert result.returncode == 0, result.stderr
    root = tmp_path / run.study / study_id
    acc = ea.EventAccumulator(str(root))
    acc.Reload()
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        acc.PluginTagToContent("hparams")["_hparams_/experiment"]).experiment
    (info,) = experiment.metric_infos
    assert info.name.tag == "hparams/final_test_mse" and info.description == "final test MSE, lower is better"
    means = final_means(run, "test_mse")
    for name in run.units:
        config = ea.EventAccumulator(str(root / name), size_guidance={ea.SCALARS: 0})
        config.Reload()
        (point,) = config.Scalars("hparams/final_test_mse")
        assert point.value == pytest.approx(means[name], rel=1e-5)
