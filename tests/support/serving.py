"""`optui serve` in a subprocess for the tests: what it printed, the session processes it started,
and waits on processes ending."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]  # the checkout: session processes import this optui
URL = re.compile(r"http://(\S+?):(\d+)/\?token=([A-Za-z0-9._~-]+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """`optui serve` in a subprocess, with what it printed and the session processes it started."""

    def __init__(self, folder: Path, *args: str, port: int | None = None):
        self.port = port or free_port()
        self.out: list[str] = []
        self.err: list[str] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "optui.cli", "serve", "--port", str(self.port), *args],
                                     cwd=folder, env={**os.environ, "PYTHONPATH": str(ROOT)}, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=lambda s=stream, l=lines: l.extend(iter(s.readline, "")), daemon=True).start()
        self.seen: set[int] = set()

    def wait_for_url(self, timeout: float = 60) -> tuple[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = URL.search("".join(self.out))
            if found:
                return found.group(0), found.group(3)
            assert self.proc.poll() is None, "".join(self.out + self.err)
            time.sleep(0.1)
        raise AssertionError(f"no URL printed: {''.join(self.out + self.err)}")

    def sessions(self) -> list[int]:
        try:
            found = [p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        self.seen.update(found)
        return found

    def wait_for_sessions(self, count: int, timeout: float = 60) -> list[int]:
        deadline = time.monotonic() + timeout
        while len(self.sessions()) < count:
            assert time.monotonic() < deadline, f"{count} session(s) expected, found {self.sessions()}"
            time.sleep(0.2)
        return self.sessions()

    def close(self) -> None:
        for pid in self.sessions():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def alive(pids) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def wait_until_gone(pids, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive(pids)
