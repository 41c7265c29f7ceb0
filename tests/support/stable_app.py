"""The session with its volatile values (run ids, dates, timings, the cursor blink) held still,
for snapshots and tests that compare what is on screen."""

from __future__ import annotations

from optui.ui.app import OptuiApp
from optui.ui.formats import Formats


class StableFormats(Formats):
    """Runs numbered in store order (#1 the oldest); no times."""

    def run_label(self, run_id: str, run_ids=()) -> str:
        ids = list(run_ids)
        return f"#{ids.index(run_id) + 1}" if run_id in ids else "#"

    def took(self, seconds: float) -> str:
        return ""

    def run_times(self, info: dict) -> tuple[str, str]:
        return "-", "-"


class StableApp(OptuiApp):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formats", StableFormats())
        super().__init__(*args, **kwargs)
        self.cursor_blink = False
