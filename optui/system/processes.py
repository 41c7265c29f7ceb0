"""Whether a process that holds a run or writes a file is still there."""

from __future__ import annotations

import os


def pid_alive(pid: int | None) -> bool:
    """True while a process with this id exists on this machine (also one we may not signal)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
