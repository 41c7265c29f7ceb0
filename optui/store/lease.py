"""Who holds a running run: a heartbeat lease renewed by its process, and how a holder is seen.

A run being trained is held by its process: its row records the process, host, a lease token
and when the lease expires. A Heartbeat thread renews it; a writer checks it still holds the
token (fencing), and --resume takes a run only from a holder that is gone (or, with --force,
whose lease expired).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from pathlib import Path

from ..system.processes import pid_alive
from .schema import ACTIVE

# A running run's owner renews its lease every HEARTBEAT_SECONDS; a lease not renewed for
# LEASE_SECONDS has expired: its holder is hung, stopped, gone with its machine, or its process id
# now names another process. Only --force takes such a run over.
LEASE_SECONDS = 60.0
HEARTBEAT_SECONDS = 10.0

# What a run's recorded holder is, seen from this process (see holder_state).
NO_HOLDER, HELD_HERE, HOLDER_GONE, HOLDER_LIVE, LEASE_EXPIRED, NO_LEASE = (
    "none", "here", "gone", "live", "expired", "no-lease")


def file_identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class Heartbeat(threading.Thread):
    """Renews one run's lease (and records its wall time so far) until stopped or lost.

    It has its own connection to the store file opened when the lease was taken, so a store
    deleted meanwhile is noticed rather than silently created anew.
    """

    def __init__(self, path: Path, identity: tuple[int, int] | None, run_id: str, token: str,
                 wall_base: float):
        super().__init__(name=f"optui-lease-{run_id}", daemon=True)
        self.path, self.identity, self.run_id, self.token = path, identity, run_id, token
        self.wall_base = wall_base
        self.started_at = time.monotonic()
        self.stopped = threading.Event()
        self.lost: str | None = None
        self.conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)

    def run(self) -> None:
        try:
            while not self.stopped.wait(HEARTBEAT_SECONDS):
                if file_identity(self.path) != self.identity:
                    self.lost = "gone"
                    return
                try:
                    cur = self.conn.execute(
                        "UPDATE runs SET lease_expires=?, wall_time_s=? WHERE id=? AND lease_token=? "
                        "AND status=?", (time.time() + LEASE_SECONDS,
                                         self.wall_base + time.monotonic() - self.started_at,
                                         self.run_id, self.token, ACTIVE))
                except sqlite3.Error:
                    continue  # a long lock or a full disk: try again at the next beat
                if cur.rowcount == 0 and not self.stopped.is_set():
                    self.lost = "taken"
                    return
        finally:
            with contextlib.suppress(sqlite3.Error):
                self.conn.close()

    def stop(self) -> None:
        self.stopped.set()


def holder_state(status: str, pid: int | None, host: str | None, expires: float | None) -> str:
    """Who holds a run, seen from here: nobody, this process, a process known to be gone, a
    live lease, an expired lease, or (a run started by an older optui) no lease at all."""
    if status != ACTIVE or pid is None:
        return NO_HOLDER
    here = os.uname().nodename
    if pid == os.getpid() and host == here:
        return HELD_HERE
    if host == here and not pid_alive(pid):
        return HOLDER_GONE  # killed, or crashed: no need to wait for its lease
    if expires is None:
        return NO_LEASE if host == here else HOLDER_GONE
    return HOLDER_LIVE if time.time() < expires else LEASE_EXPIRED
