"""Figures: content of the matplotlib Figure (bands, legend, scale) and the PNG written."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from matplotlib.collections import PolyCollection

from optui.export import FigureStyle, comparisons_for, default_comparisons, export_run
from optui.export.figures import bin_for_drawing, compare_figure, config_figure, save_figure
from optui.study.presets import Compare
from optui.results import RunResult, UnitResult


def make_unit(name, reps=6, steps=300, points=5, level=1.0, diverge=(), seed=0, evals=True):
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    mb = (level * np.exp(-t / 100.0) + 0.01) * rng.uniform(0.5, 1.5, size=(reps, steps))
    diverged_at = np.full(reps, -1)
    for r in diverge:
        diverged_at[r] = steps // 2
        mb[r, steps // 2:] = np.nan
    eval_steps = np.linspace(0, steps, points).astype(int)
    ev = {}
    if evals:
        base = level * np.exp(-eval_steps / 100.0) + 0.01
        ev = {"train_loss": base * rng.uniform(0.9, 1.1, (reps, points)),
              "test_loss": 1.2 * base * rng.uniform(0.9, 1.1, (reps, points))}
        for r in diverge:
            for v in ev.values():
                v[r, points // 2:] = np.nan
    return UnitResult(name=name, spec={"optimizer": "sgd", "learning_rate": 0.1, "batch_size": 8},
                      minibatch_loss=mb.astype(np.float32), eval_steps=eval_steps, eval=ev,
                      diverged_at=diverged_at, total_steps=steps)


def make_run(units, kind="study", preset_text=""):
    return RunResult(run_id="r1", study="demo", workload="twnet", kind=kind, status="done",
                     device="cpu", created=0.0, wall_time_s=1.0, preset_text=preset_text,
                     units={u.name: u for u in units})


def bands(fig):
    return [c for c in fig.axes[0].collections if isinstance(c, PolyCollection)]


def legend_labels(fig):
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_compare_figure_draws_one_band_per_config_with_log_axis():
    run = make_run([make_unit("a"), make_unit("b", level=2.0, seed=1)])
    fig = compare_figure(run, Compare("A vs B", ("a", "b"), "minibatch_loss", ("Alpha", "Beta")))
    ax = fig.axes[0]
    assert len(bands(fig)) == 2
    assert legend_labels(fig) == ["Alpha", "Beta"]
    assert ax.get_yscale() == "log"
    assert ax.get_title() == "A vs B"
    assert "%" in ax.get_xlabel() and "loss" in ax.get_ylabel()
    assert ax.get_xlim() == (0.0, 100.0)
    # the two centre lines differ (b starts higher), so each line is its own config's data
    lines = ax.get_lines()
    assert lines[1].get_ydata()[0] > lines[0].get_ydata()[0]


def test_band_envelopes_the_centre_line_minmax():
    run = make_run([make_unit("a", steps=100)])
    fig = compare_figure(run, Compare("a", ("a",), "minibatch_loss"))
    verts = bands(fig)[0].get_paths()[0].vertices
    centre = fig.axes[0].get_lines()[0].get_ydata()
    mb = run.units["a"].minibatch_loss
    assert verts[:, 1].max() == pytest.approx(mb.max(), rel=1e-6)
    assert verts[:, 1].min() == pytest.approx(mb.min(), rel=1e-6)
    np.testing.assert_allclose(centre, mb.mean(axis=0), rtol=1e-5)


def test_diverged_replicates_are_excluded_and_counted_in_legend():
    unit = make_unit("a", reps=5, diverge=(1, 3))
    unit.minibatch_loss[1, :10] = 1e6  # a spike before divergence must not widen the band
    run = make_run([unit])
    fig = compare_figure(run, Compare("t", ("a",), "minibatch_loss"))
    assert legend_labels(fig) == ["a (2 of 5 diverged, excluded)"]
    assert bands(fig)[0].get_paths()[0].vertices[:, 1].max() < 1e3


def test_all_diverged_config_is_reported_not_drawn():
    run = make_run([make_unit("a", reps=2, diverge=(0, 1)), make_unit("b")])
    fig = compare_figure(run, Compare("t", ("a", "b"), "minibatch_loss"))
    assert len(bands(fig)) == 1
    assert "a (all 2 diverged)" in legend_labels(fig)


def test_train_test_draws_train_and_test_of_each_config():
    run = make_run([make_unit("a"), make_unit("b", seed=2)])
    fig = compare_figure(run, Compare("gen", ("a", "b"), "train_test"))
    assert len(bands(fig)) == 4
    assert legend_labels(fig) == ["a train", "a test", "b train", "b test"]
    styles = [line.get_linestyle() for line in fig.axes[0].get_lines()]
    assert styles == ["-", "--", "-", "--"]


def test_missing_metric_is_noted_not_crashing():
    run = make_run([make_unit("a", evals=False)])
    fig = compare_figure(run, Compare("t", ("a",), "test_loss"))
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "no test loss recorded" in texts
    assert not bands(fig)


@pytest.mark.parametrize("kind", ["iqr", "ci95"])
def test_narrower_bands_sit_inside_minmax(kind):
    run = make_run([make_unit("a", reps=10, steps=50)])
    c = Compare("t", ("a",), "minibatch_loss")
    wide = bands(compare_figure(run, c, FigureStyle(band="minmax")))[0].get_paths()[0].vertices[:, 1]
    narrow = bands(compare_figure(run, c, FigureStyle(band=kind)))[0].get_paths()[0].vertices[:, 1]
    assert narrow.max() < wide.max() and narrow.min() > wide.min()


def test_linear_scale_and_median_centre():
    unit = make_unit("a", reps=5, steps=20)
    run = make_run([unit])
    fig = compare_figure(run, Compare("t", ("a",), "minibatch_loss"), FigureStyle(log_y=False, centre="median"))
    assert fig.axes[0].get_yscale() == "linear"
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), np.median(unit.minibatch_loss, axis=0), rtol=1e-5)


def test_long_curves_are_binned_but_keep_extremes():
    run = make_run([make_unit("a", steps=20_000, points=3)])
    run.units["a"].minibatch_loss[2, 12_345] = 50.0  # one spike
    fig = compare_figure(run, Compare("t", ("a",), "minibatch_loss"), FigureStyle(max_points=500))
    line = fig.axes[0].get_lines()[0]
    assert len(line.get_xdata()) == 500
    assert bands(fig)[0].get_paths()[0].vertices[:, 1].max() == pytest.approx(50.0)


def test_bin_for_drawing_keeps_short_curves_and_bins_long_ones():
    x = np.arange(5.0)
    out = bin_for_drawing(x, x, x - 1, x + 1, 10)
    for got, want in zip(out, (x, x, x - 1, x + 1)):
        np.testing.assert_array_equal(got, want)
    x = np.arange(100.0)
    xb, cb, lb, hb = bin_for_drawing(x, x, x - 1, x + 1, 10)
    np.testing.assert_allclose(xb, np.arange(10) * 10 + 4.5)
    np.testing.assert_allclose(lb, np.arange(10) * 10 - 1)
    np.testing.assert_allclose(hb, np.arange(10) * 10 + 10)


def test_config_figure_shows_minibatch_and_eval_losses():
    run = make_run([make_unit("a")])
    fig = config_figure(run, "a")
    assert len(bands(fig)) == 3
    assert legend_labels(fig) == ["minibatch loss", "full test loss", "full train loss"]
    assert "learning_rate=0.1" in fig.axes[0].get_title()


def test_png_has_the_requested_size_and_opens(tmp_path):
    from matplotlib.image import imread

    run = make_run([make_unit("a"), make_unit("b", seed=3)])
    style = FigureStyle(width=6, height=4, dpi=100)
    path = save_figure(compare_figure(run, Compare("t", ("a", "b"), "minibatch_loss"), style), tmp_path / "f.png")
    img = imread(path)
    assert img.shape[:2] == (400, 600)
    assert img[..., :3].std() > 0.05  # not a blank canvas
    assert not list(tmp_path.glob(".*.tmp"))


def test_figures_can_be_built_from_threads(tmp_path):
    run = make_run([make_unit("a"), make_unit("b", seed=3)])
    errors = []

    def work(i):
        try:
            save_figure(compare_figure(run, Compare(f"t{i}", ("a", "b"), "train_test")), tmp_path / f"{i}.png")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(list(tmp_path.glob("*.png"))) == 4


def test_comparisons_come_from_the_preset_or_pairwise_defaults():
    run = make_run([make_unit("a"), make_unit("b"), make_unit("c")], preset_text="not = [valid")
    assert [c.configs for c in comparisons_for(run)] == [("a", "b"), ("a", "c"), ("b", "c")]
    assert len(default_comparisons([str(i) for i in range(9)])) == 1
    assert default_comparisons(["only"]) == []


def test_export_run_writes_one_png_per_compare_and_config(tmp_path):
    run = make_run([make_unit("a"), make_unit("b")])
    files = export_run(run, tmp_path / "out", formats={"png"}, style=FigureStyle(dpi=50))
    names = sorted(p.name for p in files)
    assert names == ["compare-01-a-vs-b.png", "config-a.png", "config-b.png"]
    assert all(p.stat().st_size > 1000 for p in files)


PRESET = """workload = "twnet"
[data]
source = "synthetic"
[budget]
iterations = 300
[configs.a]
optimizer = "sgd"
learning_rate = 0.1
batch_size = 8
[configs.b]
optimizer = "adam"
learning_rate = 0.01
batch_size = 8
[[compare]]
configs = ["b", "a"]
title = "B against A"
metric = "train_test"
labels = ["Bee", "Ay"]
"""


def test_study_runs_use_their_preset_compare_entries(tmp_path):
    run = make_run([make_unit("a"), make_unit("b", seed=1)], preset_text=PRESET)
    (compare,) = comparisons_for(run)
    assert compare.title == "B against A" and compare.configs == ("b", "a") and compare.metric == "train_test"
    files = export_run(run, tmp_path, {"png"}, FigureStyle(dpi=40))
    assert files[0].name == "compare-01-b-against-a.png"
    fig = compare_figure(run, compare)
    assert legend_labels(fig) == ["Bee train", "Bee test", "Ay train", "Ay test"]
