"""Stop signals, headless and in the session: SIGINT, SIGTERM and SIGHUP (an SSH drop).

The first stops the run after the chunk in flight, records it as interrupted and exits 130 (any
stop signal, first or second, headless or not: 130 means "interrupted, resumable"); headless
prints the --resume command. A second exits at once, still losing at most the chunk in flight.
An SSH drop is played for real: the run's terminal is a pseudo-terminal that gets hung up.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import sqlite3
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

from optui.store import DB_NAME, Store

from support.common import Cli, chunk_counts, wait_for_chunks

PRESET = dict(iterations=40, points=8, replicates=2)  # 8 chunks of 5 steps per config
CHUNKS = list(range(-1, 8))
INTERRUPTED = 130

# Each chunk takes `delay` s longer (a slower device): a signal lands while a chunk is in flight.
SLOW_CHUNKS = """
import time
from optui.engine import core
_run_calls = core.run_calls
core.TARGET_CALL_SECONDS = 0.0  # a slow device: one eval block per call
def run_calls(*args, **kwargs):
    for item in _run_calls(*args, **kwargs):
        time.sleep({delay})
        yield item
core.run_calls = run_calls
"""

# The process leads a new session (start_new_session) and takes its stdin, a pseudo-terminal, as
# its controlling terminal, as a login shell does: hanging the terminal up then sends it SIGHUP.
TAKE_TERMINAL = """
import fcntl, termios
fcntl.ioctl(0, termios.TIOCSCTTY, 0)
"""


def command(*args, patch: str) -> list[str]:
    """`optui ARGS` with `patch` (Python source) applied first."""
    code = f"import sys\n{patch}\nfrom optui.cli import app\nsys.argv[0] = 'optui'\napp()\n"
    return [sys.executable, "-c", code, *map(str, args)]


def launch(cli: Cli, *args, delay: float) -> subprocess.Popen:
    return subprocess.Popen(command(*args, patch=SLOW_CHUNKS.format(delay=delay)), cwd=cli.cwd, env=cli.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class Terminal:
    """A pseudo-terminal for one process; hang_up() closes our end, as an SSH drop does."""

    def __init__(self, rows: int = 40, cols: int = 120):
        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.output = bytearray()
        self.proc: subprocess.Popen | None = None
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)

    def __enter__(self) -> "Terminal":
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._reader.is_alive():
            self._reader.join(timeout=10)  # it ends once the process has closed the terminal
        if not self._stop.is_set():
            self.hang_up()

    def start(self, cli: Cli, *args, delay: float) -> subprocess.Popen:
        env = {k: v for k, v in cli.env.items() if k not in ("COLUMNS", "LINES")}
        env["TERM"] = "xterm-256color"
        self.proc = subprocess.Popen(command(*args, patch=TAKE_TERMINAL + SLOW_CHUNKS.format(delay=delay)),
                                     cwd=cli.cwd, env=env, stdin=self.slave, stdout=self.slave,
                                     stderr=self.slave, start_new_session=True)
        os.close(self.slave)
        self._reader.start()
        return self.proc

    def _read(self) -> None:  # drain the output, or the process would block writing to us
        while not self._stop.is_set():
            if select.select([self.master], [], [], 0.05)[0]:
                try:
                    data = os.read(self.master, 65536)
                except OSError:  # the process and its terminal are gone
                    return
                if not data:
                    return
                self.output.extend(data)

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def hang_up(self) -> None:
        self._stop.set()
        if self._reader.is_alive():
            self._reader.join()
        os.close(self.master)


def db_rows(db: Path, sql: str, *args) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def assert_stopped_after_the_chunk_in_flight(db: Path, chunks_at_signal: int) -> str:
    """The run itself recorded the stop: run and unit interrupted, nothing after the chunk in
    flight started, a checkpoint to resume from. Returns the run id."""
    [(run_id, status, pid)] = db_rows(db, "SELECT id, status, pid FROM runs")
    assert (status, pid) == ("interrupted", None)  # recorded, not inferred from a dead process
    units = dict(db_rows(db, "SELECT name, status FROM units"))
    assert units == {"sgd": "interrupted", "adam": "pending"}
    written = chunk_counts(db)
    assert chunks_at_signal <= written["sgd"] <= chunks_at_signal + 1 and "adam" not in written
    [(ckpt,)] = db_rows(db, "SELECT chunk_index FROM checkpoints WHERE unit='sgd'")
    assert ckpt == written["sgd"] - 2  # the last chunk written (chunk indices start at -1)
    return run_id


def listed_status(cli: Cli) -> str:
    r = cli("runs", "--json")
    assert r.returncode == 0, r.stderr
    [run] = json.loads(r.stdout)
    return run["status"]


def resume_completes(cli: Cli, preset: Path, run_id: str) -> None:
    r = cli("run", preset, "--headless", "--no-export", "--resume", run_id)
    assert r.returncode == 0, r.stdout + r.stderr
    store = Store.open(cli.cwd / "runs")
    try:
        run = store.load_run(run_id)
    finally:
        store.close()
    assert run.status == "done"
    for unit in run.units.values():
        assert unit.status == "done" and len(unit.eval_steps) == len(CHUNKS) and unit.minibatch_loss.shape == (2, 40)


# --- headless ----------------------------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_headless_stop_signal_ends_the_run_after_its_chunk(signum, cli, write_preset):
    preset = write_preset(**PRESET)
    db = cli.cwd / "runs" / DB_NAME
    proc = launch(cli, "run", preset, "--headless", "--no-export", delay=0.4)
    wait_for_chunks(proc, db, "sgd", 3)
    proc.send_signal(signum)
    at_signal = chunk_counts(db)["sgd"]  # counted once sent: only the chunk in flight may follow
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == INTERRUPTED, out + err
    assert "Traceback" not in err
    assert f"{signum.name}: stopping after the current chunk" in out
    run_id = assert_stopped_after_the_chunk_in_flight(db, at_signal)
    assert f"optui run {preset} --headless --resume {run_id}" in out


def test_headless_second_signal_exits_at_once(cli, write_preset):
    preset = write_preset(**PRESET)
    db = cli.cwd / "runs" / DB_NAME
    proc = launch(cli, "run", preset, "--headless", "--no-export", delay=3.0)
    wait_for_chunks(proc, db, "sgd", 1)
    proc.send_signal(signal.SIGINT)
    at_signal = chunk_counts(db)["sgd"]
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    out, err = proc.communicate(timeout=60)
    assert time.monotonic() - sent < 2.0  # well before the chunk in flight could end
    assert proc.returncode == INTERRUPTED, out + err
    assert "second stop signal: exiting now" in out
    # At most the chunk in flight is lost: the store holds every finished chunk, and resume completes.
    assert db_rows(db, "PRAGMA integrity_check") == [("ok",)]
    indices = [i for (i,) in db_rows(db, "SELECT chunk_index FROM chunks WHERE unit='sgd' ORDER BY 1")]
    assert indices == CHUNKS[:len(indices)] and at_signal <= len(indices) <= at_signal + 1
    assert listed_status(cli) == "interrupted"
    resume_completes(cli, preset, db_rows(db, "SELECT id FROM runs")[0][0])


def test_headless_run_survives_its_terminal_hanging_up(cli, write_preset):
    """An SSH drop: the terminal goes, then SIGHUP. Writing to it now fails (EIO); the run must
    still stop cleanly as interrupted, not fail on its own progress output."""
    preset = write_preset(**PRESET)
    db = cli.cwd / "runs" / DB_NAME
    with Terminal() as term:
        proc = term.start(cli, "run", preset, "--headless", "--no-export", delay=0.4)
        wait_for_chunks(proc, db, "sgd", 3)
        term.hang_up()
        at_signal = chunk_counts(db)["sgd"]
        assert proc.wait(timeout=120) == INTERRUPTED
    run_id = assert_stopped_after_the_chunk_in_flight(db, at_signal)
    resume_completes(cli, preset, run_id)


# --- the session (optui ui) ----------------------------------------------------------------------

def start_session_run(cli: Cli, preset: Path, term: Terminal, delay: float, chunks: int) -> subprocess.Popen:
    """`optui ui PRESET` on a terminal, ctrl+r until its replicates run, then `chunks` chunks of sgd."""
    db = cli.cwd / "runs" / DB_NAME
    proc = term.start(cli, "ui", preset, delay=delay)
    deadline = time.monotonic() + 120
    while not (db.exists() and db_rows(db, "SELECT COUNT(*) FROM sqlite_master WHERE name='runs'")[0][0]
               and db_rows(db, "SELECT COUNT(*) FROM runs")[0][0]):
        assert proc.poll() is None, f"optui ui exited ({proc.returncode}): {bytes(term.output[-2000:])!r}"
        assert time.monotonic() < deadline, "the session did not start the run"
        term.type(b"\x12")  # ctrl+r: run (it needs the preset read and checked first)
        time.sleep(0.5)
    wait_for_chunks(proc, db, "sgd", chunks)
    return proc


@pytest.mark.parametrize("how", ["SIGTERM", "hangup"])
def test_session_stop_signal_ends_the_run_after_its_chunk(how, cli, write_preset):
    preset = write_preset(**PRESET)
    db = cli.cwd / "runs" / DB_NAME
    with Terminal() as term:
        proc = start_session_run(cli, preset, term, delay=0.5, chunks=2)
        if how == "hangup":
            term.hang_up()
        else:
            proc.send_signal(signal.SIGTERM)
        at_signal = chunk_counts(db)["sgd"]
        assert proc.wait(timeout=120) == INTERRUPTED
    assert_stopped_after_the_chunk_in_flight(db, at_signal)
    if how == "SIGTERM":  # the terminal is given back: alternate screen left, no traceback
        assert b"\x1b[?1049l" in term.output and b"Traceback" not in term.output


def test_session_second_signal_exits_at_once(cli, write_preset):
    preset = write_preset(**PRESET)
    db = cli.cwd / "runs" / DB_NAME
    with Terminal() as term:
        proc = start_session_run(cli, preset, term, delay=3.0, chunks=1)
        proc.send_signal(signal.SIGTERM)
        at_signal = chunk_counts(db)["sgd"]
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        assert proc.wait(timeout=60) == INTERRUPTED
        assert time.monotonic() - sent < 2.0  # well before the chunk in flight could end
    assert b"\x1b[?1049l" in term.output and b"Traceback" not in term.output
    assert db_rows(db, "PRAGMA integrity_check") == [("ok",)]
    indices = [i for (i,) in db_rows(db, "SELECT chunk_index FROM chunks WHERE unit='sgd' ORDER BY 1")]
    assert indices == CHUNKS[:len(indices)] and at_signal <= len(indices) <= at_signal + 1
    assert listed_status(cli) == "interrupted"
    resume_completes(cli, preset, db_rows(db, "SELECT id FROM runs")[0][0])
