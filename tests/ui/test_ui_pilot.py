"""The interactive session driven with Textual's Pilot at 80x24: a real small TwNet study from the
preset editor to live bands, compare and a PNG export; cancelling and quitting during a run; and
the editor's document model (comments kept, errors placed beside their field)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from textual import events

from support.session import PRESET, checked, run_async, wait_for
from optui.export import FigureStyle
from optui.store import Store
from optui.ui.app import OptuiApp, QuitScreen
from optui.ui.presetdoc import PresetDocument, error_key, row_for_error

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_preset(folder: Path, iterations: int = 40, points: int = 5) -> Path:
    path = folder / "presets" / "tiny.toml"
    path.write_text(PRESET.format(iterations=iterations, points=points), encoding="utf-8")
    return path


def burst(app: OptuiApp, keys: list[str]) -> None:
    """Keys that arrive together, as from a fast typist, a busy machine or a slow SSH link."""
    for key in keys:
        app.post_message(events.Key(key, " " if key == "space" else key if len(key) == 1 else None))


async def type_into(pilot, app: OptuiApp, label: str, text: str) -> None:
    """Focus a field, clear it with the keyboard and type text, as a user would."""
    form = app.query_one("#preset-form")
    form.input_for(label).focus()
    await pilot.press("end", "ctrl+u")
    keys = ["minus" if ch == "-" else ch for ch in text]
    await pilot.press(*keys)
    await wait_for(pilot, lambda: checked(app), 30, "validation")


# -- end to end -------------------------------------------------------------------------------------

@run_async
async def test_edit_run_compare_export(folder: Path):
    path = write_preset(folder)
    original = path.read_text()
    app = OptuiApp(probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        # Open the preset from the list with the keyboard.
        await wait_for(pilot, lambda: app.query_one("#preset-list").index == 0, 10, "preset list")
        await pilot.press("enter")
        await wait_for(pilot, lambda: checked(app) and app.editor.study is not None, 30, "preset opened")
        form = app.query_one("#preset-form")
        assert form.input_for("configs.adam.learning_rate").value == "0.01"

        # An invalid edit: the error appears beside the field and the file is not saved.
        await type_into(pilot, app, "configs.adam.learning_rate", "-0.5")
        error = form.error_text("configs.adam.learning_rate")
        assert "configs.adam.learning_rate" in error and "(0, inf)" in error and "-0.5" in error
        assert app.editor.study is None
        await pilot.press("ctrl+s")
        await pilot.pause(0.1)
        assert path.read_text() == original

        # Text that is no value at all is caught before validation, beside the same field.
        await type_into(pilot, app, "configs.adam.learning_rate", "fast")
        assert "not a value" in form.error_text("configs.adam.learning_rate")

        # A valid edit clears the error; saving keeps the comments.
        await type_into(pilot, app, "configs.adam.learning_rate", "0.05")
        assert form.error_text("configs.adam.learning_rate") == ""
        assert app.editor.study.configs["adam"].hyperparams["learning_rate"] == 0.05
        await pilot.press("ctrl+s")
        await pilot.pause(0.1)
        saved = path.read_text()
        assert "learning_rate = 0.05  # Adam's default step" in saved
        assert "# A tiny TwNet study for the session tests." in saved and "users = 30    # a small network" in saved

        # In Replicates: leave momentum out and ask for 5 replicates instead of the preset's 2,
        # typed quickly (keys arriving together must still land where they were meant to).
        await pilot.press("escape", "2")
        await wait_for(pilot, lambda: app.focused is app.query_one("#rep-configs"), 10, "the config list")
        burst(app, ["down", "down", "space", "tab"])
        await wait_for(pilot, lambda: app.focused is app.query_one("#rep-count"), 10, "the count field")
        burst(app, ["5"])
        await pilot.pause(0.1)
        replicates = app.query_one("#replicates-panel")
        assert replicates.chosen() == ["sgd", "adam"] and replicates.replicate_count() == "5"

        # Run them and watch the bands fill in.
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: replicates.series_count() == 2, 120, "bands of both configs")
        await wait_for(pilot, lambda: app.runner.running is None, 120, "the run to finish")
        assert app.runner.last_status == "done"
        for unit in app.runner.progress.units.values():
            assert unit.steps_done == 40 and unit.as_unit().minibatch_loss.shape == (5, 40)

        store = Store.open(folder / "runs")
        (info,) = store.list_runs()
        assert info["status"] == "done" and info["units"] == ["sgd", "adam"]
        assert info["replicates_done"] == 10
        run = store.load_run(info["id"])
        assert run.units["adam"].spec["learning_rate"] == 0.05  # the edited value was trained

        # Compare shows the finished run (selected for us), with test loss and an IQR band.
        await pilot.press("escape", "4")
        compare = app.query_one("#compare-panel")
        assert [u for _, u, _ in compare.selection()] == ["sgd", "adam"]
        compare.query_one("#cmp-metric").value = "test_loss"
        compare.query_one("#cmp-band").value = "iqr"
        await wait_for(pilot, lambda: compare.drawn == 2 and not compare.dirty, 10, "compare plot")

        # Export what is shown: a real PNG in exports/tiny/<run id>/, and the paths on screen.
        await pilot.press("escape", "6")
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: bool(app.query_one("ExportPanel").written), 60, "the export")
        pngs = [p for p in app.query_one("ExportPanel").written if p.suffix == ".png"]
        assert len(pngs) == 1 and pngs[0].parent == folder / "exports" / "tiny" / info["id"]
        assert "test_loss" in pngs[0].name and "iqr" in pngs[0].name
        assert pngs[0].read_bytes()[:8] == PNG_SIGNATURE and pngs[0].stat().st_size > 5000
        style = FigureStyle()
        with Image.open(pngs[0]) as image:  # a whole image of the figure's size
            image.load()
            assert image.size == (round(style.width * style.dpi), round(style.height * style.dpi))
        assert {p.name for p in app.query_one("ExportPanel").written} >= {"mlruns.p", "histories.csv"}
        written = str(app.query_one("#exp-written").content)
        assert f"exports/tiny/{info['id']}/" + pngs[0].name in written


@run_async
async def test_cancel_keeps_what_is_done_and_marks_interrupted(folder: Path):
    write_preset(folder, iterations=400_000, points=200)
    app = OptuiApp(preset="presets/tiny.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: checked(app) and app.editor.study is not None, 30, "preset opened")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.runner.progress.units.get("sgd") is not None and app.runner.progress.units["sgd"].steps_done > 0,
                       120, "the first chunk")
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: app.runner.running is None, 120, "the run to stop")
        assert app.runner.last_status == "interrupted"
        done = app.runner.progress.units["sgd"].steps_done
        assert 0 < done < 400_000
    store = Store.open(folder / "runs")
    (info,) = store.list_runs()
    assert info["status"] == "interrupted"
    assert info["unit_status"]["sgd"] == "interrupted"
    run = store.load_run(info["id"])
    assert run.units["sgd"].minibatch_loss.shape == (2, done)  # every finished chunk was kept


@pytest.mark.slow
@run_async
async def test_quit_during_run_asks_then_cancels_and_waits(folder: Path):
    write_preset(folder, iterations=400_000, points=200)
    app = OptuiApp(preset="presets/tiny.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: checked(app) and app.editor.study is not None, 30, "preset opened")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.runner.progress.units.get("sgd") is not None and app.runner.progress.units["sgd"].steps_done > 0,
                       120, "the first chunk")
        await pilot.press("ctrl+q")
        await pilot.pause(0.1)
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("n")  # back: the run goes on
        await pilot.pause(0.1)
        assert not isinstance(app.screen, QuitScreen) and app.runner.running == "replicates"
        await pilot.press("ctrl+q")
        await pilot.pause(0.1)
        await pilot.press("y")
        await wait_for(pilot, lambda: app.runner.running is None, 120, "the run to stop")
    assert app.return_code == 0
    (info,) = Store.open(folder / "runs").list_runs()
    assert info["status"] == "interrupted"


# -- errors never crash the session ----------------------------------------------------------------

@run_async
async def test_actions_without_a_preset_or_selection_notify(folder: Path):
    app = OptuiApp(probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        for key in ("ctrl+r", "ctrl+s", "ctrl+o", "ctrl+t"):
            await pilot.press(key)
            await pilot.pause(0.05)
        messages = [n.message for n in app._notifications]
        assert any("open a preset first" in m for m in messages)
        assert any("nothing to export" in m for m in messages)
        assert any("nothing is running" in m for m in messages)
        assert app.runner.running is None


@run_async
async def test_broken_preset_file_is_reported_not_raised(folder: Path):
    (folder / "presets" / "broken.toml").write_text('study = "x"\n[data\n', encoding="utf-8")
    app = OptuiApp(preset="presets/broken.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        errors = [n.message for n in app._notifications if n.severity == "error"]
        assert errors and "presets/broken.toml" in errors[0] and "TOML" in errors[0]
        assert app.editor.doc is None


@run_async
async def test_unknown_key_error_sits_beside_the_section(folder: Path):
    path = write_preset(folder)
    app = OptuiApp(preset="presets/tiny.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: checked(app) and app.editor.study is not None, 30, "preset opened")
        await type_into(pilot, app, "replicates.count", "0")
        form = app.query_one("#preset-form")
        assert "replicates.count must be an integer in [1, 100000], got 0" in form.error_text("replicates.count")
        await pilot.press("ctrl+r")  # unsaved edits: it asks; saving them to run is refused, saying why
        await pilot.pause(0.1)
        await pilot.press("w")
        await pilot.pause(0.1)
        assert app.runner.running is None
        assert any("replicates.count" in n.message for n in app._notifications if n.severity == "error")
        assert "count = 2" in path.read_text()


# -- the editor's document model -------------------------------------------------------------------

def test_document_round_trip_keeps_comments_and_adds_defaults(tmp_path: Path):
    path = tmp_path / "p.toml"
    path.write_text(PRESET.format(iterations=40, points=5), encoding="utf-8")
    doc = PresetDocument.read(path)
    labels = [r.label for r in doc.rows()]
    # Every hyperparameter of each config's optimiser is offered, present or not.
    assert {"configs.adam.b1", "configs.adam.b2", "configs.adam.eps", "configs.sgd.learning_rate",
            "replicates.count", "engine.strategy", "compare[0].metric", "budget.iterations"} <= set(labels)
    b1 = next(r for r in doc.rows() if r.label == "configs.adam.b1")
    assert b1.text == "" and "0.9" in b1.placeholder
    assert doc.set_field(("configs", "adam", "b1"), "0.8", False) is None
    assert doc.set_field(("description",), "two optimisers", True) is None
    assert doc.set_field(("compare", 0, "configs"), '["adam", "sgd"]', False) is None
    study = doc.save()
    assert study.configs["adam"].hyperparams["b1"] == 0.8 and study.compare[0].configs == ("adam", "sgd")
    text = path.read_text()
    assert "learning_rate = 0.01  # Adam's default step" in text and "# A tiny TwNet study" in text
    # Clearing a field removes the key (its default applies again).
    doc.set_field(("configs", "adam", "b1"), "", False)
    doc.save()
    assert "b1" not in path.read_text()


def test_invalid_document_is_never_written(tmp_path: Path):
    path = tmp_path / "p.toml"
    path.write_text(PRESET.format(iterations=40, points=5), encoding="utf-8")
    before = path.read_text()
    doc = PresetDocument.read(path)
    doc.set_field(("configs", "adam", "b1"), "1.5", False)
    with pytest.raises(Exception) as exc:
        doc.save()
    assert "configs.adam.b1" in str(exc.value) and "[0, 1)" in str(exc.value)
    assert path.read_text() == before


def test_the_form_offers_any_optimisers_settings_and_refuses_bad_ones(tmp_path: Path):
    """A contrib optimiser, the chain elements, and a plug-in's own declared hyperparameters."""
    plugin = Path(__file__).resolve().parents[2] / "examples" / "optui-qhm" / "optui_qhm" / "qhm.py"
    (tmp_path / "qhm.py").write_text(plugin.read_text(encoding="utf-8"), encoding="utf-8")
    path = tmp_path / "p.toml"
    text = PRESET.format(iterations=40, points=5)
    text = text.replace('optimizer = "sgd"', 'optimizer = "./qhm.py:qhm"')
    path.write_text(text, encoding="utf-8")
    doc = PresetDocument.read(path)
    doc.validate()  # resolves the plug-in (off the UI thread in the app)
    labels = {r.label for r in doc.rows()}
    assert {"configs.sgd.nu", "configs.sgd.beta", "configs.sgd.schedule", "configs.sgd.clip_norm",
            "configs.adam.warmup_fraction", "configs.adam.weight_decay"} <= labels
    schedule = next(r for r in doc.rows() if r.label == "configs.adam.schedule")
    assert schedule.is_str and "warmup_cosine" in schedule.placeholder and "optional" in schedule.placeholder
    doc.set_field(("configs", "adam", "optimizer"), "prodigy", True)
    assert {"configs.adam.estim_lr0", "configs.adam.estim_lr_coef"} <= {r.label for r in doc.rows()}
    doc.set_field(("configs", "sgd", "nu"), "1.5", False)
    with pytest.raises(Exception) as exc:
        doc.save()
    assert "configs.sgd.nu must be a number in [0, 1], got 1.5" in str(exc.value)


def test_errors_map_to_the_nearest_row(tmp_path: Path):
    path = tmp_path / "p.toml"
    path.write_text(PRESET.format(iterations=40, points=5), encoding="utf-8")
    doc = PresetDocument(path, path.read_text(), "presets/p.toml")
    rows = doc.rows()
    msg = "presets/p.toml: configs.adam.b1 must be a number in [0, 1), got 1.5"
    assert error_key(msg, doc.file) == "configs.adam.b1"
    assert row_for_error(rows, "configs.adam.b1").label == "configs.adam.b1"
    assert row_for_error(rows, "configs.adam").label.startswith("configs.adam.")  # inside the table
    assert row_for_error(rows, "compare[0].configs").label == "compare[0].configs"
    assert row_for_error(rows, "nowhere") is None


@run_async
async def test_palette_finds_a_field_and_typing_edits_it(folder: Path):
    write_preset(folder)
    app = OptuiApp(preset="presets/tiny.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: checked(app) and app.editor.study is not None, 30, "preset opened")
        await pilot.press("escape", "3")  # start from another panel
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"budget iter")

        def top_hit() -> str:  # the palette searches asynchronously: wait for this query's hits
            from textual.widgets import OptionList

            results = app.screen.query(OptionList)
            if not results or results.first().option_count == 0:
                return ""
            return str(results.first().get_option_at_index(0).prompt)

        await wait_for(pilot, lambda: "budget" in top_hit(), 10, "the palette's hits")
        await pilot.pause(0.1)
        await pilot.press("enter")
        await pilot.pause(0.3)
        await pilot.press("end", "ctrl+u", *"400")
        await wait_for(pilot, lambda: checked(app), 30, "validation")
        assert app.query_one("#panels").active == "presets"
        assert app.editor.study is not None and app.editor.study.budget.value == 400


def adam(app: OptuiApp) -> tuple[str, float] | None:
    """The validated study's adam config: (optimizer, learning rate)."""
    config = app.editor.study.configs["adam"] if app.editor.study is not None else None
    return (config.optimizer, config.hyperparams["learning_rate"]) if config else None


@run_async
async def test_keys_typed_together_land_in_their_fields(folder: Path):
    """A burst of keys: edits are applied in order, and keys after an arrow go to the next field,
    even while the field set changes under them (another optimizer has other fields)."""
    write_preset(folder)
    app = OptuiApp(preset="presets/tiny.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: checked(app) and app.editor.study is not None, 30, "preset opened")
        form = app.query_one("#preset-form")
        app.edit_field("configs.adam.optimizer")
        await wait_for(pilot, lambda: app.focused is form.input_for("configs.adam.optimizer"), 10, "the field")
        burst(app, ["end", "ctrl+u"] + list("sgd"))  # nothing is selected on focus: clear, then type
        await wait_for(pilot, lambda: checked(app) and adam(app) == ("sgd", 0.01), 30, "validation")
        assert "configs.adam.b1" not in [r.label for r in form.rows]  # sgd has no b1
        burst(app, ["backspace"] * 3 + list("adam") + ["down", "down", "ctrl+u"] + list("0.05") + ["backspace", "2"])
        await wait_for(pilot, lambda: checked(app) and adam(app) == ("adam", 0.02), 30, "validation")
        assert form.input_for("configs.adam.optimizer").value == "adam"
        assert form.input_for("configs.adam.learning_rate").value == "0.02"
        assert "configs.adam.b1" in [r.label for r in form.rows]


@run_async
async def test_quit_with_unsaved_edits_asks_first(folder: Path):
    path = write_preset(folder)
    app = OptuiApp(preset="presets/tiny.toml", probe_device=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: checked(app) and app.editor.study is not None, 30, "preset opened")
        await type_into(pilot, app, "replicates.count", "3")
        await pilot.press("ctrl+q")
        await pilot.pause(0.1)
        assert isinstance(app.screen, QuitScreen) and "unsaved edits" in app.screen.question
        await pilot.press("n")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, QuitScreen) and app.is_running
        await pilot.press("ctrl+s", "ctrl+q")  # saved: quits without asking
        await pilot.pause(0.2)
        assert not app.is_running
    assert "count = 3" in path.read_text()
