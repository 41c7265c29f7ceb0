"""Stop signals for a run in the foreground: the first stops after the chunk in flight, a
second exits at once.

Python runs signal handlers only in the main thread, between bytecodes: while the main thread
waits for a long compiled chunk on the device, a handler would run only when the chunk ends.
So the handlers here do nothing, and a watcher thread reads the signal numbers that Python's C
handler writes to a wakeup socket the moment each signal arrives. Exiting at once still loses
at most the chunk in flight: every finished chunk was committed in its own transaction.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
from typing import Callable, Iterator

from .terminal import detach_if_hung_up

STOP_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s)
INTERRUPTED = 130  # the exit code of a run stopped by a stop signal: it can be resumed
_WAKE = 0  # a byte no signal has: wakes the watcher to end it


def _ignore(signum, frame) -> None:
    """The Python-level handler: all the work happens in the watcher thread."""


def _watch(sock: socket.socket, cancel: threading.Event, say: Callable[[str], None],
           done: threading.Event) -> None:
    numbers = {int(s) for s in STOP_SIGNALS}
    while True:
        try:
            data = sock.recv(64)
        except OSError:
            return
        if not data or done.is_set():
            return
        for number in data:
            if number not in numbers:
                continue
            if number == getattr(signal, "SIGHUP", None):
                detach_if_hung_up()  # an SSH drop: printing to the lost terminal would fail the run
            if cancel.is_set():
                with contextlib.suppress(Exception):
                    say("[red]second stop signal: exiting now; every finished chunk is kept "
                        "(`optui runs` lists the run to --resume)[/]")
                os._exit(INTERRUPTED)
            cancel.set()
            with contextlib.suppress(Exception):
                say(f"[yellow]{signal.Signals(number).name}: stopping after the current chunk "
                    f"(send it again to exit at once)[/]")


@contextlib.contextmanager
def watch(cancel: threading.Event, say: Callable[[str], None]) -> Iterator[None]:
    """While inside: the first stop signal sets cancel, a second exits the process at once.

    Only the main thread can install signal handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    done = threading.Event()
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    previous = {s: signal.signal(s, _ignore) for s in STOP_SIGNALS}
    thread = threading.Thread(target=_watch, args=(reader, cancel, say, done), name="optui-stop-signals",
                              daemon=True)
    thread.start()
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        signal.set_wakeup_fd(previous_fd)
        done.set()
        with contextlib.suppress(OSError):
            writer.send(bytes([_WAKE]))
        thread.join(timeout=2)
        writer.close()
        reader.close()
