"""The session as a workbench, each defect reproduced first: a field keeps its key while it is
emptied, invalid counts block a run, panel keys never type into fields, a 0-step interrupt keeps
Compare's selection, help on ? and F1, resume and delete from Runs, the Compare table."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from textual import events

from optui.store import Store
from support.stable_app import StableApp
from optui.ui.app import OptuiApp
from optui.ui.presetdoc import PresetDocument
from optui.ui.screens import HelpScreen
from support.session import PRESET, checked, run_async, wait_for
from support.session import interrupted_study, write as write_search_preset
from support.snapshot_folder import make_folder


def write_examples_preset(folder: Path) -> Path:
    path = folder / "presets" / "tiny.toml"
    text = PRESET.format(iterations=40, points=5).replace("iterations = 40", "examples = 640")
    path.write_text(text, encoding="utf-8")
    return path


def help_plain(app: OptuiApp) -> str:
    from rich.console import Console

    console = Console(width=100, record=True, file=open("/dev/null", "w"))
    console.print(app.screen.query_one("#help-text").content)
    return console.export_text()


async def open_tiny(pilot, app: OptuiApp) -> None:
    await wait_for(pilot, lambda: checked(app) and app.editor.study is not None, 60, "preset opened")


@run_async
async def test_an_emptied_field_keeps_its_key_and_is_an_error_on_it(folder: Path):
    write_examples_preset(folder)
    app = OptuiApp(preset="presets/tiny.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_tiny(pilot, app)
        form = app.query_one("#preset-form")
        form.focus_label("budget.examples")
        await pilot.press("end", "backspace", "backspace", "backspace")
        await wait_for(pilot, lambda: checked(app), 30, "validation")
        await pilot.pause(0.1)
        labels = [r.label for r in form.rows]
        assert "budget.examples" in labels and "budget.iterations" not in labels
        assert form.focused_label() == "budget.examples"
        assert "empty" in form.error_text("budget.examples")
        assert app.editor.study is None or app.editor.parse_errors
        await pilot.press("3", "2", "0")
        await wait_for(pilot, lambda: checked(app) and app.editor.study is not None, 30, "valid again")
        assert app.editor.doc.plain()["budget"] == {"examples": 320}


def test_number_errors_name_what_is_wrong(tmp_path: Path):
    path = tmp_path / "p.toml"
    path.write_text(PRESET.format(iterations=40, points=5), encoding="utf-8")
    doc = PresetDocument.read(path)
    error = doc.set_field(("budget", "iterations"), "3x0", False, True)
    assert "'3x0' is not a number" in error and "budget.iterations" in error
    assert "is not a list" in doc.set_field(("data", "users"), "[1, 2", False)
    assert "empty" in doc.set_field(("budget", "iterations"), "", False, True)
    assert doc.set_field(("data", "users"), "", False) is None  # optional: back to its default


@run_async
async def test_a_blank_replicate_count_blocks_the_run_with_the_reason(folder: Path):
    write_examples_preset(folder)
    app = OptuiApp(preset="presets/tiny.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_tiny(pilot, app)
        await pilot.press("escape", "2")
        await pilot.pause(0.2)
        count = app.query_one("#rep-count")
        count.focus()
        await pilot.press("end", "backspace")
        assert count.value == ""
        await pilot.press("ctrl+r")
        await pilot.pause(0.2)
        assert app.runner.running is None
        said = [n.message for n in app._notifications]
        assert any("replicates: empty" in m for m in said), said
        assert count.has_class("-invalid")
        await pilot.press("0")
        await pilot.press("ctrl+r")
        await pilot.pause(0.1)
        assert app.runner.running is None
        assert any("replicates: 0 is out of range" in n.message for n in app._notifications)


@run_async
async def test_escape_digit_arriving_as_alt_digit_switches_panels_and_types_nothing(folder: Path):
    write_examples_preset(folder)
    app = OptuiApp(preset="presets/tiny.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_tiny(pilot, app)
        form = app.query_one("#preset-form")
        form.focus_label("study")
        await pilot.pause(0.05)
        app.post_message(events.Key("trade_mark_sign", "™"))  # what tmux delivers for Escape 2
        await pilot.pause(0.3)
        assert app.query_one("TabbedContent").active == "replicates"
        assert form.input_for("study").value == "tiny" and not app.editor.doc.dirty
        await pilot.press("alt+4")
        await pilot.pause(0.2)
        assert app.query_one("TabbedContent").active == "compare"


@run_async
async def test_a_run_stopped_at_zero_steps_keeps_compares_selection(tmp_path: Path, monkeypatch):
    root = make_folder(tmp_path / "work")
    monkeypatch.chdir(root)
    store = Store.open(root / "runs")
    stopped = store.create_run("snap", "twnet", "study", "", "presets/snap.toml", {"device": "cpu"})
    store.add_unit(stopped, "sgd", {"optimizer": "sgd"}, 3, 40, 5)
    store.finish_run(stopped, "interrupted", 0.1)
    store.close()
    app = StableApp(probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        compare = app.query_one("ComparePanel")
        done = next(r["id"] for r in app.runs_model.runs if r["status"] == "done" and r["kind"] == "study")
        compare.select_run(done)
        before = compare.selection()
        assert len(before) == 2
        from optui.ui.runner import RunController, RunRequest

        app.runner.post_message(RunController.Ended(RunRequest("replicates"), stopped, "interrupted"))  # a run's end
        await pilot.pause(0.1)
        assert compare.selection() == before


@run_async
async def test_f1_and_question_mark_show_the_panels_keys_and_the_fields_help(folder: Path):
    write_examples_preset(folder)
    app = OptuiApp(preset="presets/tiny.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_tiny(pilot, app)
        form = app.query_one("#preset-form")
        form.focus_label("replicates.count")
        await pilot.pause(0.1)
        hint = str(app.query_one("#preset-hint").content)
        assert hint.startswith("replicates.count")
        await pilot.press("f1")
        await pilot.pause(0.2)
        assert isinstance(app.screen, HelpScreen)
        text = help_plain(app)
        assert "Presets panel" in text and "ctrl+s" in text and "replicates.count" in text
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("question_mark")  # in a field, ? is text
        assert form.input_for("replicates.count").value.endswith("?")
        await pilot.press("escape", "5")
        await pilot.pause(0.2)
        await pilot.press("question_mark")
        await pilot.pause(0.2)
        assert isinstance(app.screen, HelpScreen)
        assert "Runs panel" in help_plain(app) and "resume" in help_plain(app)


@run_async
async def test_pagedown_moves_through_the_fields_while_one_has_focus(folder: Path):
    write_examples_preset(folder)
    app = OptuiApp(preset="presets/tiny.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_tiny(pilot, app)
        form = app.query_one("#preset-form")
        form.focus_label("study")
        labels = [r.label for r in form.rows]
        await pilot.press("pagedown")
        await pilot.pause(0.1)
        first = labels.index(form.focused_label())
        assert first >= 3
        await pilot.press("pagedown")  # a second page is below the fold: the form scrolls to it
        await pilot.pause(0.2)
        assert labels.index(form.focused_label()) > first
        assert form.scroll_y > 0


@run_async
async def test_runs_panel_resumes_the_highlighted_interrupted_run(folder: Path):
    run_id = interrupted_study(folder)
    app = OptuiApp(preset="presets/tiny.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_tiny(pilot, app)
        await pilot.press("escape", "5")
        await pilot.pause(0.3)
        assert app.query_one("RunsPanel").highlighted() == run_id
        await pilot.press("r")
        await wait_for(pilot, lambda: app.runner.running is None and app.runner.last_status is not None, 120, "the resume")
        assert app.runner.last_status == "done"
    assert Store.open(folder / "runs").run_info(run_id)["status"] == "done"


@run_async
async def test_runs_panel_deletes_a_run_after_asking_and_shows_its_export_folder(tmp_path: Path, monkeypatch):
    root = make_folder(tmp_path / "work")
    monkeypatch.chdir(root)
    app = StableApp(probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        await pilot.press("escape", "5")
        await pilot.pause(0.3)
        runs = app.query_one("RunsPanel")
        newest = runs.highlighted()
        await pilot.press("e")
        await pilot.pause(0.1)
        said = str(app.query_one("#runs-said").content)
        assert f"exports/snap/{newest}" in said and "not written yet" in said
        await pilot.press("d")
        await pilot.pause(0.2)
        await pilot.press("enter")  # a stray enter: the focus starts on Back, nothing is deleted
        await pilot.pause(0.2)
        assert newest in [r["id"] for r in app.runs_model.runs]
        await pilot.press("d")
        await pilot.pause(0.2)
        await pilot.press("n")  # changed its mind: nothing happens
        await pilot.pause(0.2)
        assert newest in [r["id"] for r in app.runs_model.runs]
        await pilot.press("d")
        await pilot.pause(0.2)
        await pilot.press("y")
        await pilot.pause(0.3)
        assert newest not in [r["id"] for r in app.runs_model.runs] and len(app.runs_model.runs) == 1
        assert "deleted" in str(app.query_one("#runs-said").content)
    store = Store.open(root / "runs")
    assert [r["id"] for r in store.list_runs()] != [] and newest not in [r["id"] for r in store.list_runs()]
    assert store.conn.execute("SELECT COUNT(*) FROM chunks WHERE run_id=?", (newest,)).fetchone()[0] == 0


@run_async
async def test_compare_shows_a_final_values_table_and_the_presets_views(tmp_path: Path, monkeypatch):
    root = make_folder(tmp_path / "work")
    monkeypatch.chdir(root)
    app = StableApp(preset="presets/snap.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: checked(app) and app.editor.study is not None, 60, "preset opened")
        await pilot.press("escape", "4")
        compare = app.query_one("ComparePanel")
        await pilot.pause(0.3)
        assert compare.comparison is None  # nothing selected yet
        await pilot.press("v")  # the preset's [[compare]] view: SGD vs Adam on the test loss
        await wait_for(pilot, lambda: compare.comparison is not None, 10, "the table")
        assert compare.metric == "test_loss"
        c = compare.comparison
        assert [e.unit.name for e in c.entries] == ["sgd", "adam"]
        adam = c.entries[1]
        assert adam.paired is not None and adam.paired["pairs"] == 3
        assert adam.paired["p_a_below_b"] == 1.0  # the stored adam ends lower in every replicate
        table = app.query_one("#cmp-table")
        assert table.row_count == 2
        header = [str(col.label) for col in table.columns.values()]
        assert header[:5] == ["config", "n", "mean", "median", "min-max"] and header[-2] == "P(<sgd)"
        # a chosen target: time-to-target in % of the run
        app.query_one("#cmp-target").value = "0.3"
        await wait_for(pilot, lambda: compare.comparison.target == 0.3, 10, "the target")
        assert all(e.time_to_target is not None for e in compare.comparison.entries)
        # the legend is beside the plot, not in it
        legend = str(app.query_one("#cmp-legend").content)
        assert "snap/sgd" in legend and "snap/adam" in legend


def _chart(series_groups, width=78, height=14) -> str:
    import plotext as plt

    from optui.ui import plots

    plt.clear_figure()
    plt.plotsize(width, height)
    plots.draw(plt, series_groups, "loss")
    plt.theme("clear")
    text = plt.uncolorize(plt.build())
    plt.clear_figure()
    return text


def test_charts_read_at_80x24_loss_ticks_filled_band_no_legend_in_the_plot():
    import numpy as np

    from optui.ui import plots

    x = np.linspace(0, 100, 70)
    mean = np.log10(2.0 * np.exp(-x / 30) + 0.3)
    groups = [[plots.Series(f"config-{i}", x, mean + 0.1 * i, mean + 0.1 * i - 0.15, mean + 0.1 * i + 0.15)]
              for i in range(4)]
    chart = _chart(groups)
    assert "config-0" not in chart  # no legend inside the plot
    ticks = [line.split("┤")[0].strip() for line in chart.splitlines() if "┤" in line]
    values = [float(t) for t in ticks if t]
    assert len(values) >= 2 and all(v > 0 for v in values)  # loss values, not log10 units
    assert min(values) < 1 < max(values) or max(values) / min(values) > 2
    assert chart.count(plots.BAND_MARKER) > 100  # the band is a filled area, not two dotted edges
    legend = plots.legend(groups).plain
    assert all(f"config-{i}" in legend for i in range(4))


def test_log_ticks_are_loss_values():
    from optui.ui.plots import log_ticks

    ticks, labels = log_ticks(np.log10(0.4), np.log10(3.0))
    assert labels and all(float(label) > 0 for label in labels)
    assert {"0.5", "1", "2"} <= set(labels)
    ticks, labels = log_ticks(np.log10(0.30), np.log10(0.33))  # a narrow range still gets ticks
    assert len(labels) >= 2 and all(0.29 < float(v) < 0.34 for v in labels)


@run_async
async def test_search_shows_the_best_config_writes_it_and_confirms_with_keys(folder: Path):
    from optui import service

    path = write_search_preset(folder, 30, 3)
    store = Store.open(folder / "runs")
    run_id = service.run_search(service.load_study(path), store, "sgd")
    app = OptuiApp(preset="presets/tiny.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_tiny(pilot, app)
        await pilot.press("escape", "3")
        panel = app.query_one("SearchPanel")
        await wait_for(pilot, lambda: panel.chosen_run() == run_id, 30, "the stored search")
        best = app.query_one("#search-best")
        await wait_for(pilot, lambda: "best trial: sgd-t" in str(best.content), 60, "the best config")
        assert "learning_rate=" in str(best.content)
        # the table's params column shows what the search varied, not the fixed batch size
        table = app.query_one("#search-trials")
        header = [str(c.label) for c in table.columns.values()]
        assert header == ["#", "objective", "learning_rate", "status", "trial"]  # batch size is fixed here
        assert float(table.get_row_at(0)[2]) > 0
        app.query_one("#search-trials").focus()
        await pilot.press("w")  # it asks first: a stray w writes nothing
        await wait_for(pilot, lambda: type(app.screen).__name__ == "QuitScreen", 30, "the question")
        assert "[configs.sgd-searched]" not in path.read_text()
        await pilot.press("enter")  # the focus starts on Back
        await wait_for(pilot, lambda: type(app.screen).__name__ != "QuitScreen", 30, "back")
        assert "[configs.sgd-searched]" not in path.read_text()
        await pilot.press("w")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "QuitScreen", 30, "the question")
        await pilot.press("y")
        await wait_for(pilot, lambda: "[configs.sgd-searched]" in path.read_text(), 60, "the written config")
        await wait_for(pilot, lambda: checked(app) and app.editor.study is not None
                       and "sgd-searched" in app.editor.study.configs, 60, "the preset re-read")
        assert "# A tiny TwNet study" in path.read_text()  # comments kept
        assert app.query_one("TabbedContent").active == "search"  # re-reading the form stays here
        app.query_one("#search-top-k").value = "1"
        app.query_one("#search-reps").value = "2"
        app.query_one("#search-trials").focus()
        await pilot.press("c")
        await wait_for(pilot, lambda: app.runner.running is None and app.runner.last_status is not None, 120, "the confirm")
        await wait_for(pilot, lambda: "confirmed best" in str(best.content), 60, "the confirmed best")
    from optui.search import rank_confirmations

    assert len(rank_confirmations(Store.open(folder / "runs"), run_id)) == 1


def test_search_scatter_draws_batch_size_on_a_log_axis():
    from optui.ui.panels.search_view import draw_scatter

    trials = [{"name": f"t{i}", "params": {"batch_size": b}, "objective": 1.0 / b}
              for i, b in enumerate((16, 32, 64, 128))]
    import plotext as plt

    plt.clear_figure()
    draw_scatter(plt, trials, "batch_size", {"batch_size": "log"}, "objective", "min", "random")
    plt.plotsize(70, 14)
    text = plt.uncolorize(plt.build())
    plt.clear_figure()
    assert "batch_size (log)" in text
    assert "16" in text and "100" in text or "50" in text


@run_async
async def test_ticked_and_unticked_boxes_differ_without_colour(tmp_path: Path, monkeypatch):
    root = make_folder(tmp_path / "work")
    monkeypatch.chdir(root)
    app = StableApp(probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("escape", "4")
        await pilot.pause(0.3)
        units = app.query_one("#cmp-units")
        units.select(units.get_option_at_index(0).value)
        await pilot.pause(0.1)
        ticked, unticked = units.render_line(0).text, units.render_line(1).text
        assert ticked[:3] == "▐X▌" and unticked[:3] == "▐ ▌"


def test_a_short_curve_on_a_wide_plot_is_a_band_without_gaps():
    from optui.ui import plots

    x = np.linspace(2.5, 100, 40)
    mean = np.log10(np.exp(-x / 40) + 0.2)
    series = [[plots.Series("a", x, mean, mean - 0.2, mean + 0.2)]]
    import plotext as plt

    plt.clear_figure()
    plt.plotsize(78, 20)
    plots.draw(plt, series, "loss", columns=72)
    plt.theme("clear")
    chart = plt.uncolorize(plt.build())
    plt.clear_figure()
    assert chart.count("█") > 300
    assert "█ █" not in chart  # 40 points on 72 columns: without interpolation every other column is empty


@run_async
async def test_a_live_search_fills_the_table_then_shows_its_best_config(folder: Path):
    write_search_preset(folder, 30, 3)
    app = OptuiApp(preset="presets/tiny.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_tiny(pilot, app)
        await pilot.press("escape", "3")
        await wait_for(pilot, lambda: app.query_one("TabbedContent").active == "search", 10, "the Search panel")
        panel = app.query_one("SearchPanel")
        await wait_for(pilot, lambda: panel.chosen_space() == "sgd", 10, "the space")
        await pilot.press("ctrl+r")
        # A small search with its programs compiled may be over before the first poll.
        await wait_for(pilot, lambda: app.runner.running == "search" or app.runner.last_status is not None, 30,
                       "the search to start")
        await wait_for(pilot, lambda: app.runner.running is None, 180, "the search")
        assert app.runner.last_status == "done"
        assert sorted(t["status"] for t in panel.trials.values()) == ["done", "done"]
        assert all(t["objective"] is not None for t in panel.trials.values())
        best = app.query_one("#search-best")
        await wait_for(pilot, lambda: "best trial: sgd-t" in str(best.content), 60, "the best config")
        assert panel.chosen_run() == app.runner.run_id
