"""The session with its volatile values (run ids, dates, timings, the cursor blink) held still,
for snapshots and tests that compare what is on screen."""

from __future__ import annotations

from optui.ui.app import OptuiApp


class StableApp(OptuiApp):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cursor_blink = False

    def run_label(self, run_id: str) -> str:
        ids = [r["id"] for r in self.runs]
        return f"#{ids.index(run_id) + 1}" if run_id in ids else "#"

    def took(self, seconds: float) -> str:
        return ""

    def run_times(self, info: dict) -> tuple[str, str]:
        return "-", "-"
