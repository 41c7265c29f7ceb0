"""Case 1: a config whose replicates all diverge never breaks an export.

Divergence is what optui studies: the run exports, its figures draw the configs that have
values and say which diverged (the log axis used to fail on an all-NaN config), and so do
`optui export` of it and of an imported pickle whose histories are NaN.
"""

from __future__ import annotations

import json
import pickle

import numpy as np

from optui.export import FigureStyle
from optui.export.figures import compare_figure, config_figure, save_figure
from optui.study.presets import Compare
from optui.results import RunResult, UnitResult


def unit(name: str, losses: np.ndarray, diverged_at: np.ndarray) -> UnitResult:
    return UnitResult(name=name, spec={"optimizer": "sgd"}, minibatch_loss=losses.astype(np.float32),
                      eval_steps=np.array([0, losses.shape[1]]),
                      eval={"test_loss": np.where(diverged_at[:, None] >= 0, np.nan, 0.5) * np.ones((len(losses), 2))},
                      diverged_at=diverged_at, total_steps=losses.shape[1])


def test_case_1_figures_of_an_all_diverged_config(tmp_path):
    healthy = unit("adam", np.linspace(1.0, 0.1, 20)[None].repeat(3, 0), np.full(3, -1))
    nan = np.full((3, 20), np.nan)
    nan[:, 0] = 1.0
    lost = unit("sgd", nan, np.ones(3, dtype=np.int64))
    run = RunResult("r", "s", "twnet", "study", "done", "cpu", 0.0, 1.0, "", {"adam": healthy, "sgd": lost})
    for style in (FigureStyle(), FigureStyle(log_y=False)):
        fig = compare_figure(run, Compare("sgd vs adam", ("sgd", "adam"), "minibatch_loss"), style)
        labels = fig.axes[0].get_legend_handles_labels()[1]
        assert "sgd (all 3 diverged)" in labels and "adam" in labels
        assert fig.axes[0].get_yscale() == ("log" if style.log_y else "linear")
        save_figure(fig, tmp_path / "compare.png")
        fig = config_figure(run, "sgd", style)  # nothing finite at all: an empty figure that says so
        texts = " ".join(t.get_text() for t in fig.axes[0].texts)
        assert "nothing to draw" in texts
        save_figure(fig, tmp_path / "config.png")


def test_case_1_a_study_whose_config_all_diverged_exports(cli, write_preset):
    preset = write_preset(configs={"sgd": {"optimizer": "sgd", "learning_rate": 1e30, "batch_size": 16}},
                          iterations=20, points=4, replicates=2)
    result = cli("run", preset, "--headless")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    folder = cli.cwd / "exports" / "tiny" / "latest"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["configs"]["sgd"]["diverged"] == 2
    assert (folder / "config-sgd.png").stat().st_size > 1000

    again = cli("export", "--png")
    assert again.returncode == 0, again.stdout + again.stderr


def test_case_1_an_imported_pickle_with_nan_histories_exports(cli, tmp_path):
    histories = {"sgd_default_loss_histories": [[float("nan")] * 5] * 3,
                 "sgd_default_test_losses": [float("nan")] * 3,
                 "adam_default_loss_histories": [[1.0, 0.5, 0.2, 0.1, 0.1]] * 3}
    source = tmp_path / "nan.p"
    source.write_bytes(pickle.dumps(histories))
    imported = cli("import", source)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    exported = cli("export")
    assert exported.returncode == 0, exported.stdout + exported.stderr
    assert "Traceback" not in exported.stderr
    pngs = list((cli.cwd / "exports" / "nan" / "latest").glob("*.png"))
    assert len(pngs) == 3  # the report's figure of the two, and one per config
