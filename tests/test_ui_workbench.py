"""The session as a workbench, each defect reproduced first: a field keeps its key while it is
emptied, invalid counts block a run, panel keys never type into fields, a 0-step interrupt keeps
Compare's selection, help on ? and F1, resume and delete from Runs, the Compare table."""

from __future__ import annotations

from pathlib import Path

from optui.ui.app import OptuiApp
from optui.ui.presetdoc import PresetDocument
from test_ui_pilot import PRESET, checked, folder, run_async, wait_for  # noqa: F401 (fixture)


def write_examples_preset(folder: Path) -> Path:
    path = folder / "presets" / "tiny.toml"
    text = PRESET.format(iterations=40, points=5).replace("iterations = 40", "examples = 640")
    path.write_text(text, encoding="utf-8")
    return path


async def open_tiny(pilot, app: OptuiApp) -> None:
    await wait_for(pilot, lambda: checked(app) and app.study is not None, 60, "preset opened")


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
        assert app.study is None or app.parse_errors
        await pilot.press("3", "2", "0")
        await wait_for(pilot, lambda: checked(app) and app.study is not None, 30, "valid again")
        assert app.doc.plain()["budget"] == {"examples": 320}


def test_number_errors_name_what_is_wrong(tmp_path: Path):
    path = tmp_path / "p.toml"
    path.write_text(PRESET.format(iterations=40, points=5), encoding="utf-8")
    doc = PresetDocument.read(path)
    error = doc.set_field(("budget", "iterations"), "3x0", False, True)
    assert "'3x0' is not a number" in error and "budget.iterations" in error
    assert "is not a list" in doc.set_field(("data", "users"), "[1, 2", False)
    assert "empty" in doc.set_field(("budget", "iterations"), "", False, True)
    assert doc.set_field(("data", "users"), "", False) is None  # optional: back to its default
