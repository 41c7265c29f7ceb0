"""Work done ahead on background threads: compiling the programs a run's later groups need.

XLA compiles mostly outside the GIL, so a compile here overlaps training on the main thread.
The threads are daemons: a process that stops (Ctrl-C, a finished run) never waits for them.
"""

from __future__ import annotations

import os
import queue
import threading
from concurrent.futures import Future
from typing import Any, Callable

_work: "queue.Queue[tuple[Future, Callable[[], Any]]]" = queue.Queue()
_threads: list[threading.Thread] = []
_lock = threading.Lock()
WORKERS = max(1, min(2, os.cpu_count() or 1))


def _worker() -> None:
    while True:
        fut, fn = _work.get()
        if not fut.set_running_or_notify_cancel():
            continue  # cancelled before it started: the caller compiles it itself
        try:
            fut.set_result(fn())
        except BaseException as exc:  # handed to whoever waits for it
            fut.set_exception(exc)


def submit(fn: Callable[[], Any]) -> Future:
    """Run fn() on a background thread; its Future can be cancelled until it starts."""
    with _lock:
        if not _threads:
            for i in range(WORKERS):
                t = threading.Thread(target=_worker, name=f"optui-ahead-{i}", daemon=True)
                t.start()
                _threads.append(t)
    fut: Future = Future()
    _work.put((fut, fn))
    return fut
