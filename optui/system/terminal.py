"""The terminal a headless run or the session writes to, and what is left of it after a hangup.

When an SSH session drops, its terminal is hung up before SIGHUP arrives: every later write to it
fails with EIO, so a run that printed its progress would fail instead of stopping cleanly.
"""

from __future__ import annotations

import errno
import os
import sys
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


class OutputGuard:
    """A text stream whose write errors never reach the caller: output is a view of a run.

    When the stream fails (a pipe closed by `| head`, a full disk behind `> log`, a hung-up
    terminal), it says so once on stderr, points the file descriptor at /dev/null so that later
    writes (Python's own flush at exit included) succeed, and drops everything after.
    """

    def __init__(self, stream, name: str = "standard output"):
        self._stream = stream
        self._name = name
        self.failed: BaseException | None = None

    def write(self, text: str) -> int:
        if self.failed is None:
            try:
                return self._stream.write(text)
            except (OSError, ValueError) as exc:  # ValueError: the stream was closed
                self._fail(exc)
        return len(text)

    def flush(self) -> None:
        if self.failed is None:
            try:
                self._stream.flush()
            except (OSError, ValueError) as exc:
                self._fail(exc)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)

    def _fail(self, exc: BaseException) -> None:
        self.failed = exc
        try:
            fd = self._stream.fileno()
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, fd)
            os.close(null)
        except (OSError, ValueError, AttributeError):
            pass
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        try:
            os.write(2, f"optui: {self._name} failed ({reason}); the run goes on without printing "
                        f"its progress; `optui runs` shows how it ends\n".encode())
        except OSError:
            pass  # stderr is gone too: nothing left to tell


def guard_stdout() -> None:
    """Route sys.stdout through an OutputGuard (once): code that prints on its own (a plug-in's
    jax.debug.print, run from a device callback) must not fail the run when stdout is closed."""
    if not isinstance(sys.stdout, OutputGuard) and sys.stdout is not None:
        sys.stdout = OutputGuard(sys.stdout)


def guard_console(console) -> None:
    """Route a rich Console through an OutputGuard (once), so printing can never stop a run."""
    if not isinstance(console.file, OutputGuard):
        console.file = OutputGuard(console.file)


def interactive() -> bool:
    """True when stdin and stdout are both terminals, as the interactive session needs."""
    try:
        return os.isatty(0) and os.isatty(1)
    except OSError:
        return False


def headless_without_terminal() -> bool:
    """True (after a note on stderr) when there is no terminal for the interactive session, so a
    command that would open it runs headless instead of drawing into a file or a pipe."""
    if interactive():
        return False
    print("note: no terminal (stdin or stdout is not one): running headless", file=sys.stderr)
    return True
