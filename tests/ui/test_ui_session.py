"""The session's defects, each reproduced by a test named after it: stray keys, lost edits, a
preset changed on disk, saves without an outcome, charts that did not read at 80x24, search
controls, and the Compare panel of a workload whose metrics are not TwNet's (a regression
workload: objective test_mse, lower is better; test_r2, higher is better; train_mse)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from optui.service.events import RunStarted, UnitStarted
from optui.results.metrics import RunMetrics
from optui.service.progress import RunProgress, reduce
from optui.store import Store
from optui.ui.app import SESSION_KEYS, OptuiApp
from optui.ui.screens import ChoiceScreen, HelpScreen
from support.session import PRESET, checked, run_async, wait_for
from support.session import write as write_search_preset
from support.stable_app import StableApp

from support import regression_workload


def write_tiny(folder: Path, iterations: int = 40) -> Path:
    path = folder / "presets" / "tiny.toml"
    path.write_text(PRESET.format(iterations=iterations, points=5), encoding="utf-8")
    return path


async def opened(pilot, app: OptuiApp) -> None:
    await wait_for(pilot, lambda: checked(app) and app.editor.study is not None, 60, "preset opened")


def notices(app: OptuiApp) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]


def header(app: OptuiApp) -> str:
    return str(app.query_one("#preset-header").content)


# -- never lose or invent work ------------------------------------------------------------------

@run_async
async def test_stray_keys_at_start_change_nothing(folder: Path):
    """The session opened with the study field focused and its text selected: `?` or `2` replaced
    the study name. Focus now starts on the preset list."""
    write_tiny(folder)
    app = OptuiApp(preset="presets/tiny.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, app)
        assert app.focused is app.query_one("#preset-list")
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape", "q", "x", "2", "1")
        await pilot.pause(0.2)
        assert app.editor.doc.plain()["study"] == "tiny" and not app.editor.dirty
        assert app.query_one("#preset-form").input_for("study").value == "tiny"


@run_async
async def test_a_field_selects_nothing_on_focus_and_ctrl_z_reverts_it(folder: Path):
    write_tiny(folder)
    app = OptuiApp(preset="presets/tiny.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, app)
        form = app.query_one("#preset-form")
        form.focus_label("study")
        await pilot.press("2")
        await wait_for(pilot, lambda: checked(app), 30, "validation")
        assert form.input_for("study").value in ("tiny2", "2tiny")  # typed beside, not over, the name
        assert app.editor.dirty and "edited, not saved" in header(app)
        await pilot.press("ctrl+z")
        await wait_for(pilot, lambda: checked(app) and form.input_for("study").value == "tiny", 30, "revert")
        assert not app.editor.dirty and "· saved" in header(app)
        assert any("ctrl+z" in key for key, _ in SESSION_KEYS)


@run_async
async def test_a_run_with_unsaved_edits_asks_first(folder: Path):
    """ctrl+r with an unsaved study name ran it (stored under the stray name); now it asks:
    run the saved preset, save and run, or back."""
    path = write_tiny(folder, iterations=400_000)
    app = OptuiApp(preset="presets/tiny.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, app)
        form = app.query_one("#preset-form")
        form.focus_label("study")
        await pilot.press("end", "2")
        await wait_for(pilot, lambda: checked(app) and app.editor.study.name == "tiny2", 30, "validation")
        await pilot.press("ctrl+r")
        await pilot.pause(0.1)
        assert isinstance(app.screen, ChoiceScreen)
        await pilot.press("escape")  # back: nothing runs
        await pilot.pause(0.1)
        assert app.runner.running is None
        await pilot.press("ctrl+r")
        await pilot.pause(0.1)
        await pilot.press("s")  # the preset as saved
        await wait_for(pilot, lambda: app.runner.run_id is not None, 120, "the run to start")
        assert app.runner.request.study.name == "tiny"
        app.action_stop()
        await wait_for(pilot, lambda: app.runner.running is None, 120, "the run to stop")
        assert app.editor.dirty and 'study = "tiny"' in path.read_text()  # the edit is still there
        (info,) = Store.open(folder / "runs").list_runs()
        assert info["study"] == "tiny"


@run_async
async def test_a_change_on_disk_is_offered_as_reload(folder: Path):
    path = write_tiny(folder)
    app = OptuiApp(preset="presets/tiny.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, app)
        path.write_text(path.read_text().replace("count = 2", "count = 7"), encoding="utf-8")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen), 10, "the offer")
        assert "changed on disk" in app.screen.question and "Reload" in app.screen.question
        await pilot.press("r")
        await wait_for(pilot, lambda: checked(app) and app.editor.study.replicates_count == 7, 30, "reload")
        assert app.query_one("#preset-form").input_for("replicates.count").value == "7"
        assert not app.editor.dirty


@run_async
async def test_a_change_on_disk_with_edits_is_merged_and_saved_with_both(folder: Path):
    """A line added in an editor while the session had edits was silently dropped by ctrl+s."""
    path = write_tiny(folder)
    app = OptuiApp(preset="presets/tiny.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, app)
        form = app.query_one("#preset-form")
        form.focus_label("configs.adam.learning_rate")
        await pilot.press("end", "ctrl+u", *"0.05")
        await wait_for(pilot, lambda: checked(app) and app.editor.dirty, 30, "the edit")
        path.write_text(path.read_text().replace("count = 2", "count = 7") + "# added in an editor\n",
                        encoding="utf-8")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen), 10, "the offer")
        assert "Merge" in app.screen.question or "merge" in app.screen.question
        await pilot.press("m")
        await wait_for(pilot, lambda: checked(app) and app.editor.study is not None
                       and app.editor.study.replicates_count == 7, 30, "the merge")
        assert app.editor.study.configs["adam"].hyperparams["learning_rate"] == 0.05
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
    text = path.read_text()
    assert "count = 7" in text and "# added in an editor" in text and "learning_rate = 0.05" in text


@run_async
async def test_a_save_never_overwrites_a_file_changed_on_disk(folder: Path):
    path = write_tiny(folder)
    app = OptuiApp(preset="presets/tiny.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, app)
        form = app.query_one("#preset-form")
        form.focus_label("configs.adam.learning_rate")
        await pilot.press("end", "ctrl+u", *"0.05")
        await wait_for(pilot, lambda: checked(app) and app.editor.dirty, 30, "the edit")
        changed = path.read_text() + "# theirs\n"
        path.write_text(changed, encoding="utf-8")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen), 10, "the offer")
        await pilot.press("escape")  # keep editing
        await pilot.pause(0.1)
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        assert path.read_text() == changed
        assert any("not saved" in n and "changed on disk" in n for n in notices(app))
        assert "edited, not saved" in header(app)


@run_async
async def test_every_save_ends_in_a_notice_and_the_header_never_says_saved_when_nothing_was_written(folder: Path):
    path = write_tiny(folder)
    before = path.read_text()
    app = OptuiApp(preset="presets/tiny.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, app)
        await pilot.press("ctrl+s")  # nothing changed: said so
        await pilot.pause(0.1)
        assert any("nothing to save" in n for n in notices(app))
        form = app.query_one("#preset-form")
        form.focus_label("replicates.count")
        await pilot.press("end", "ctrl+u", *"two")  # no value at all: caught before validation
        await wait_for(pilot, lambda: checked(app), 30, "validation")
        await pilot.press("ctrl+s")
        await pilot.pause(0.1)
        assert any(n.startswith("not saved") for n in notices(app))
        assert "edited, not saved" in header(app) and "· saved" not in header(app)
        assert path.read_text() == before


# -- charts ---------------------------------------------------------------------------------------

def _chart(groups, width=78, height=14, rows=0) -> str:
    import plotext as plt

    from optui.ui import plots

    plt.clear_figure()
    plt.plotsize(width, height)
    plots.draw(plt, groups, "loss", columns=width - 8, rows=rows)
    plt.theme("clear")
    text = plt.uncolorize(plt.build())
    plt.clear_figure()
    return text


def _groups(n: int, spread: float = 0.15):
    from optui.ui import plots

    x = np.linspace(0, 100, 70)
    mean = np.log10(2.0 * np.exp(-x / 30) + 0.3)
    return [[plots.Series(f"config-{i}", x, mean + 0.1 * i, mean + 0.1 * i - spread, mean + 0.1 * i + spread)]
            for i in range(n)]


def test_a_chart_has_four_y_labels_with_its_lowest_and_highest_values():
    """Two y labels: the final value could not be read."""
    chart = _chart(_groups(2), height=12, rows=8)
    labels = [line.split("┤")[0].strip() for line in chart.splitlines() if "┤" in line]
    values = [float(v) for v in labels if v]
    assert len(values) >= 4
    lowest = 10 ** min(float(s.lo.min()) for g in _groups(2) for s in g)
    highest = 10 ** max(float(s.hi.max()) for g in _groups(2) for s in g)
    assert min(values) == pytest.approx(lowest, rel=0.01) and max(values) == pytest.approx(highest, rel=0.01)


def test_lines_read_apart_without_colour():
    """Under NO_COLOR the configs' lines looked the same; each has its own marker now."""
    from optui.ui import plots

    chart = _chart(_groups(3, spread=0.0))
    for marker in plots.LINE_MARKERS[:3]:
        assert chart.count(marker) > 20
    legend = plots.legend(_groups(3)).plain
    assert all(m * 3 in legend for m in plots.LINE_MARKERS[:3])


def test_a_band_narrower_than_a_cell_is_hidden():
    """A thin band was drawn as scattered blocks that read as noise."""
    from optui.ui import plots

    assert _chart(_groups(1, spread=0.001), rows=10).count(plots.BAND_MARKER) == 0
    assert _chart(_groups(1, spread=0.15), rows=10).count(plots.BAND_MARKER) > 100


def test_a_resumed_run_shows_its_whole_history():
    """After a resume the live chart showed only the resumed part."""
    from optui.results import RunResult, UnitResult
    from optui.ui.runner import stored_chunks

    loss = np.random.default_rng(0).random((2, 20)).astype(np.float32)
    unit = UnitResult("sgd", {}, loss, np.array([0, 10, 20]), {"test_loss": np.ones((2, 3))},
                      np.full(2, -1), status="interrupted", total_steps=40)
    run = RunResult("r1", "s", "twnet", "study", "interrupted", "cpu", 0.0, 0.0, "", {"sgd": unit})
    state = reduce(RunProgress(), RunStarted(run_id="r1", study="s", kind="study", units={"sgd": (40, 2)},
                                             device="cpu", strategy="scan", resumed=True))
    for chunk in stored_chunks(run, "sgd"):
        state = reduce(state, chunk)
    state = reduce(state, UnitStarted(run_id="r1", unit="sgd", total_steps=40, replicates=2, steps_done=20))
    shown = state.units["sgd"].as_unit()
    assert shown.minibatch_loss.shape == (2, 20) and np.array_equal(shown.minibatch_loss, loss)
    assert list(shown.eval_steps) == [0, 10, 20]


@run_async
async def test_at_24_rows_the_chart_gets_the_space_and_t_shows_the_table(tmp_path: Path, monkeypatch):
    """At 80x24 the Compare plot was 3-4 rows under its table."""
    from support.snapshot_folder import make_folder

    monkeypatch.chdir(make_folder(tmp_path / "work"))
    app = StableApp(preset="presets/snap.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, app)
        await pilot.press("escape", "4", "v")
        compare = app.query_one("ComparePanel")
        await wait_for(pilot, lambda: compare.comparison is not None, 10, "the view")
        plot, table = app.query_one("#cmp-plot"), app.query_one("#cmp-table")
        assert plot.size.height >= 12 and not table.display or table.size.height == 0
        compare.focus()
        await pilot.press("t")
        await pilot.pause(0.2)
        assert table.size.height >= 3 and plot.size.height == 0


# -- Compare follows the workload's declared metrics (issue: metrics in every view) -----------------

def write_regression_run(root: Path) -> str:
    """A finished 3-config study of the regression workload, written through the store."""
    preset = regression_workload.write_preset(root / "presets", iterations=40, points=5, replicates=3)
    meta = {"device": "cpu", **RunMetrics.of_spec(regression_workload.workload()).as_meta()}
    store = Store.open(root / "runs")
    run = store.create_run("regression", regression_workload.REFERENCE, "study", preset.read_text(),
                           "presets/regression.toml", meta)
    rng = np.random.default_rng(0)
    for k, name in enumerate(("sgd", "adam", "adam-slow")):
        store.add_unit(run, name, {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 16}, 3, 40, 5)
        for c in range(5):
            level = (1.0 + k) * np.exp(-(c + 1) / 3)
            mse = level * (1 + 0.05 * rng.random(3))
            evals = {"test_mse": mse, "test_r2": 1 - mse, "train_mse": 0.8 * mse}
            store.write_chunk(run, name, c, c * 8, np.full((3, 8), level, np.float32), (c + 1) * 8, evals,
                              np.full(3, -1))
        store.finish_unit(run, name, "done", 1.0)
    store.finish_run(run, "done", 3.0)
    store.close()
    return run


@pytest.fixture
def regression_folder(tmp_path: Path, monkeypatch) -> Path:
    root = tmp_path / "work"
    (root / "presets").mkdir(parents=True)
    write_regression_run(root)
    monkeypatch.chdir(root)
    return root


async def _compare_view(pilot, app, index: int):
    compare = app.query_one("ComparePanel")
    await wait_for(pilot, lambda: len(compare.views) == 3, 60, "the preset's views")
    await pilot.press("escape", "4")
    compare.query_one("#cmp-view").value = index
    await wait_for(pilot, lambda: compare.comparison is not None and not compare.dirty, 20, "the table")
    return compare


@run_async
async def test_compare_defaults_to_the_workloads_objective(regression_folder: Path):
    app = StableApp(probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.5)
        assert app.query_one("ComparePanel").metric == "test_mse"


@run_async
async def test_compare_train_vs_test_table_reads_the_declared_test_metric(regression_folder: Path):
    """Defect 6: the plot drew, the table said "config 'sgd' recorded no test_loss"."""
    app = StableApp(preset="presets/regression.toml", probe_device=False)
    async with app.run_test(size=(100, 40)) as pilot:
        compare = await _compare_view(pilot, app, 2)  # "Adam: train vs test"
        assert compare.metric == "train_test"
        assert compare.comparison.metric == "test_mse" and compare.drawn == 2
        header = [str(c.label) for c in app.query_one("#cmp-table").columns.values()]
        assert header[0] == "config" and not any("recorded no" in h for h in header)


@run_async
async def test_time_to_target_label_points_up_for_a_higher_is_better_metric(regression_folder: Path):
    """Defect 7: the time-to-target column of R^2 read `% to<0.357`."""
    app = StableApp(preset="presets/regression.toml", probe_device=False)
    async with app.run_test(size=(100, 40)) as pilot:
        compare = await _compare_view(pilot, app, 1)  # "Test R^2 of every config"
        assert compare.comparison.higher_is_better
        header = [str(c.label) for c in app.query_one("#cmp-table").columns.values()]
        assert any(h.startswith("% to>") for h in header) and not any(h.startswith("% to<") for h in header)
        assert any(h.startswith("P(>") for h in header)


@run_async
async def test_a_preset_view_on_a_declared_metric_selects_its_metric(regression_folder: Path):
    """Defect 8: a view on test_mse ticked its configs but left the metric as it was."""
    app = StableApp(preset="presets/regression.toml", probe_device=False)
    async with app.run_test(size=(100, 40)) as pilot:
        compare = await _compare_view(pilot, app, 1)
        assert compare.metric == "test_r2"
        assert [u for _, u, _ in compare.selection()] == ["sgd", "adam", "adam-slow"]
        compare.query_one("#cmp-view").value = 0
        await wait_for(pilot, lambda: compare.metric == "test_mse", 10, "the view's metric")


@run_async
async def test_an_exported_figure_takes_the_views_title(regression_folder: Path, monkeypatch):
    """Exported PNG titles ignored the [[compare]] view's title."""
    from optui.export import figures

    titles = []
    real = figures.compare_figure
    monkeypatch.setattr(figures, "compare_figure", lambda run, compare, style: titles.append(compare.title)
                        or real(run, compare, style))
    app = StableApp(preset="presets/regression.toml", probe_device=False)
    async with app.run_test(size=(100, 40)) as pilot:
        await _compare_view(pilot, app, 0)
        export = app.query_one("ExportPanel")
        await wait_for(pilot, lambda: "Test MSE: SGD vs Adam" in str(export.query_one("#exp-what").content), 10,
                       "what an export would write")
        export.query_one("#exp-pickle").value = False
        export.query_one("#exp-csv").value = False
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: bool(export.written), 60, "the export")
    assert titles == ["Test MSE: SGD vs Adam"]


# -- search controls ------------------------------------------------------------------------------

@run_async
async def test_the_sampler_and_pruner_are_chosen_in_the_search_panel(folder: Path):
    """No control for the sampler or pruner; the palette said "random search" whatever ran."""
    path = write_search_preset(folder, 40, 5)
    path.write_text(path.read_text().replace("trials = 2\n", 'trials = 2\nsampler = "qmc"\n'), encoding="utf-8")
    app = OptuiApp(preset="presets/tiny.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, app)
        panel = app.query_one("SearchPanel")
        await wait_for(pilot, lambda: panel.strategy_chosen() == ("qmc", "none"), 10, "the preset's sampler")
        assert "qmc search of space 'sgd'" in panel.describe_run()
        panel.query_one("#search-pruner").value = "asha"
        await pilot.pause(0.1)
        request = panel.request(app.editor.study)
        assert request.study.search["sgd"].pruner == "asha" and request.study.search["sgd"].sampler == "qmc"
        assert "asha pruning" in panel.describe_run()
        from textual.widgets import Select

        for select in panel.query(Select):  # no blank entry: the "space" placeholder cannot be chosen
            assert select.value is not Select.BLANK and not select._allow_blank


@run_async
async def test_the_search_panel_opens_on_the_current_studys_search(folder: Path):
    """The panel opened on another study's search; the space chosen and the table disagreed."""
    from optui import service

    path = write_search_preset(folder, 30, 3)
    study = service.load_study(path)
    store = Store.open(folder / "runs")
    own = service.run_search(study, store, "sgd")
    other_text = path.read_text().replace('study = "tiny"', 'study = "other"')
    other = folder / "presets" / "other.toml"
    other.write_text(other_text, encoding="utf-8")
    service.run_search(service.load_study(other), store, "sgd")  # newer, of another study
    store.close()
    app = OptuiApp(preset="presets/tiny.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, app)
        panel = app.query_one("SearchPanel")
        await wait_for(pilot, lambda: panel.source == own, 30, "this study's search")
        assert panel.chosen_run() == own and panel.chosen_space() == "sgd"


@run_async
async def test_focus_is_visible_on_the_small_dropdowns(folder: Path):
    write_search_preset(folder, 40, 5)
    app = OptuiApp(preset="presets/tiny.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, app)
        await pilot.press("escape", "3")
        select = app.query_one("#search-sampler")
        current = select.query_one("SelectCurrent")
        before = current.styles.background
        select.focus()
        await pilot.pause(0.1)
        assert current.styles.background != before
