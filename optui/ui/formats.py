"""How the session writes run ids, durations and dates on screen. One object, injected into the
app: a test holds these still (tests/stable_app.py) without overriding the app's methods."""

from __future__ import annotations

import time
from typing import Sequence


class Formats:
    """The plain formats: the run id itself, seconds to one decimal, local month-day hour:minute."""

    def run_label(self, run_id: str, run_ids: Sequence[str] = ()) -> str:
        """How a run is named on screen; run_ids: every run listed, oldest first."""
        return run_id

    def took(self, seconds: float) -> str:
        """How long a run took, as a notice says it."""
        return f" in {seconds:.1f} s"

    def run_times(self, info: dict) -> tuple[str, str]:
        """A run's wall time and start, as the Runs table shows them."""
        return f"{info['wall_time_s']:.1f}", time.strftime("%m-%d %H:%M", time.localtime(info["created"]))
