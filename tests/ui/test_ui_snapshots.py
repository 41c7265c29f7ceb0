"""Snapshots of every panel at 80x24 and 60x20, from a fixed folder: one preset, a finished study
run and a finished search run written through the store (no training, so the content is exact).
Volatile values (run ids, dates, timings, the cursor blink) are held still by tests/support/stable_app.py. Every snapshot test runs by default: a deselected one would leave its SVG
"unused", which syrupy reports as a failure.

Regenerate after an intended change: pytest tests/ui/test_ui_snapshots.py --snapshot-update
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from pytest_textual_snapshot import SVGImageExtension

from support.snapshot_folder import make_folder
from support.stable_app import StableApp
from optui.ui.app import OptuiApp


SIZES = {"80x24": (80, 24), "60x20": (60, 20)}


@pytest.fixture
def snap_folder(tmp_path: Path, monkeypatch) -> Path:
    folder = make_folder(tmp_path / "work")
    monkeypatch.chdir(folder)
    return folder


def make_app() -> OptuiApp:
    return StableApp(preset="presets/snap.toml", probe_device=False)


async def _settle(pilot, app: OptuiApp) -> None:
    """Wait for the preset's validation (a worker thread) and the 4 Hz plot timers."""
    deadline = time.monotonic() + 30
    while not (app.editor.doc is not None and app.editor.checked_generation == app.editor.edit_generation):
        assert time.monotonic() < deadline, "preset validation did not finish"
        await pilot.pause(0.05)
    await pilot.pause(0.4)


PANEL_KEYS = {  # in the order visited; each starts from the tab bar (escape)
    "presets": (),
    "replicates": ("escape", "2"),
    "search": ("escape", "3"),
    "runs": ("escape", "5"),
    "compare": ("escape", "5", "enter"),  # open the newest run from Runs: it lands in Compare
    "export": ("escape", "6"),
}


@pytest.mark.parametrize("size", list(SIZES))
def test_every_panel_snapshot(snap_folder: Path, snapshot, size: str):
    """One session visits every panel; each screen is compared with its stored SVG.

    (One app run per size instead of one per panel: every start costs seconds here.)
    """
    snapshot = snapshot.use_extension(SVGImageExtension)
    shots: dict[str, str] = {}

    async def visit(pilot) -> None:
        app = pilot.app
        await _settle(pilot, app)
        for panel, keys in PANEL_KEYS.items():
            await pilot.press(*keys)
            await pilot.pause(0.6)  # a replot tick (4 Hz) after the panel shows
            await pilot.wait_for_scheduled_animations()
            shots[panel] = app.export_screenshot(title=app.title)

    async def main() -> None:
        app = make_app()
        async with app.run_test(size=SIZES[size]) as pilot:
            await visit(pilot)

    asyncio.run(main())
    for panel, svg in shots.items():
        assert snapshot(name=panel) == svg, f"{panel} at {size} differs from its snapshot"


def test_invalid_field_snapshot(snap_folder: Path, snap_compare):
    """An out-of-range value: the error sits right under the field, the header says invalid."""

    async def run_before(pilot) -> None:
        app = pilot.app
        await _settle(pilot, app)
        app.query_one("#preset-form").input_for("replicates.count").focus()
        await pilot.press("end", "ctrl+u", "0")
        await _settle(pilot, app)
        app.query_one("#preset-form").scroll_to_widget(app.query_one("#preset-form").input_for("replicates.count"))
        await pilot.pause(0.3)

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run_before)


def test_help_screen_snapshot(snap_folder: Path, snap_compare):
    """f1 on a field: the Presets panel's keys, the session's, and the field's help."""

    async def run_before(pilot) -> None:
        app = pilot.app
        await _settle(pilot, app)
        app.query_one("#preset-form").focus_label("replicates.count")
        await pilot.press("f1")
        await pilot.pause(0.3)

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run_before)


def test_narrow_search_snapshot(snap_folder: Path, snap_compare):
    """60x20: every tab label whole, the search's best config and its scatter on a log axis."""

    async def run_before(pilot) -> None:
        app = pilot.app
        await _settle(pilot, app)
        await pilot.press("escape", "3")
        deadline = time.monotonic() + 30
        while "best" not in str(app.query_one("#search-best").content) or "…" in str(
                app.query_one("#search-best").content)[:7]:
            assert time.monotonic() < deadline, "the best config did not show"
            await pilot.pause(0.1)
        await pilot.pause(0.6)

    assert snap_compare(make_app(), terminal_size=(60, 20), run_before=run_before)
