"""The terminal a headless run or the session writes to, and what is left of it after a hangup.

When an SSH session drops, its terminal is hung up before SIGHUP arrives: every later write to it
fails with EIO, so a run that printed its progress would fail instead of stopping cleanly.
"""

from __future__ import annotations

import errno
import os
import termios


def hung_up(fd: int) -> bool:
    """True when fd is a terminal that has been hung up (not merely a pipe or a file)."""
    try:
        termios.tcgetattr(fd)
    except termios.error as exc:
        return exc.args[0] == errno.EIO  # a pipe or a file: ENOTTY
    return False


def detach_if_hung_up() -> bool:
    """Point whichever of stdout and stderr went to a hung-up terminal at /dev/null (output
    redirected to a file is kept). True if the terminal was gone.

    stdin is left alone: a hung-up terminal reads as end of file, and never blocks a reader.
    """
    lost = [fd for fd in (0, 1, 2) if hung_up(fd)]
    if 1 in lost or 2 in lost:
        null = os.open(os.devnull, os.O_WRONLY)
        for fd in {1, 2} & set(lost):
            os.dup2(null, fd)
        os.close(null)
    return bool(lost)
