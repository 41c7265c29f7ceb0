"""Two optui processes on one runs/ store: no run, unit or chunk is lost or recorded twice, and of
two processes resuming the same run exactly one wins; the other is told the winner's PID."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from optui.store import DB_NAME, Store

from support.common import SLOW_CHUNKS, Cli, wait_for_chunks

PRESET = dict(iterations=40, points=10, replicates=2)  # 10 chunks of 4 steps per config
CHUNKS = list(range(-1, 10))

# Each chunk takes 0.3 s longer, so the run can be killed part-way.

# A starting line for chunk writes: both runs record their chunks at the same time.
WRITE_AT_GO = """
import os, time
from optui import store
_write_chunks = store.Store.write_chunks
def write_chunks(self, *args, **kwargs):
    if not os.path.exists("go"):
        open(f"writing-{os.getpid()}", "w").close()
        while not os.path.exists("go"):
            time.sleep(0.005)
    return _write_chunks(self, *args, **kwargs)
store.Store.write_chunks = write_chunks
"""

# A starting line for claims: announce the claim, then wait for "go" before making it.
CLAIM_AT_GO = """
import os, time
from optui import store
_claim_run = store.Store.claim_run
def claim_run(self, run_id):
    open(f"claiming-{os.getpid()}", "w").close()
    while not os.path.exists("go"):
        time.sleep(0.01)
    return _claim_run(self, run_id)
store.Store.claim_run = claim_run
"""


def launch(cli: Cli, *args, patch: str = "") -> subprocess.Popen:
    """`optui ARGS` in cli's folder, with `patch` (Python source) applied first."""
    code = f"import sys\n{patch}\nfrom optui.cli import app\nsys.argv[0] = 'optui'\napp()\n"
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], cwd=cli.cwd, env=cli.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(procs: list[subprocess.Popen], timeout: float = 180) -> list[tuple[int, str, str]]:
    deadline = time.monotonic() + timeout
    results = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("optui processes sharing a store did not finish")
        results.append((p.returncode, out, err))
    return results


def assert_complete(db: Path, run_id: str) -> None:
    """Every config of the run is done and holds each chunk once, covering the steps in order."""
    conn = sqlite3.connect(db)
    try:
        units = dict(conn.execute("SELECT name, status FROM units WHERE run_id=?", (run_id,)))
        assert units == {"sgd": "done", "adam": "done"}
        for unit in units:
            rows = conn.execute("SELECT chunk_index, step_start, step_end FROM chunks WHERE run_id=? AND unit=?"
                                " ORDER BY chunk_index", (run_id, unit)).fetchall()
            assert [r[0] for r in rows] == CHUNKS
            assert [r[1:] for r in rows] == [(0, 0)] + [(4 * i, 4 * i + 4) for i in range(10)]
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


@contextmanager
def write_lock_held(db: Path) -> Iterator[None]:
    """Hold the store's write lock, as a process in the middle of a long write does."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def wait_for_files(procs: list[subprocess.Popen], folder: Path, pattern: str) -> None:
    deadline = time.monotonic() + 120
    while len(list(folder.glob(pattern))) < len(procs):
        assert all(p.poll() is None for p in procs), finish(procs)
        assert time.monotonic() < deadline, f"timed out waiting for {pattern}"
        time.sleep(0.05)


def test_two_runs_at_once_on_one_store_lose_nothing(cli, write_preset):
    preset = write_preset(**PRESET)
    procs = [launch(cli, "run", preset, "--headless", "--no-export", patch=WRITE_AT_GO) for _ in range(2)]
    wait_for_files(procs, cli.cwd, "writing-*")
    with write_lock_held(cli.cwd / "runs" / DB_NAME):  # a slow writer: both runs queue behind it
        (cli.cwd / "go").touch()
        time.sleep(1.0)
    for code, out, err in finish(procs):
        assert code == 0, out + err
    store = Store.open(cli.cwd / "runs")
    try:
        runs = store.list_runs()
        assert len(runs) == 2 and {r["status"] for r in runs} == {"done"}
        for r in runs:
            assert_complete(store.path, r["id"])
        # Same preset, same keys: interleaved writes kept each run's histories its own.
        a, b = (store.load_run(r["id"]) for r in runs)
        for name in ("sgd", "adam"):
            np.testing.assert_array_equal(a.units[name].minibatch_loss, b.units[name].minibatch_loss)
            np.testing.assert_array_equal(a.units[name].eval["test_loss"], b.units[name].eval["test_loss"])
    finally:
        store.close()


def test_two_resumes_of_one_run_exactly_one_wins(cli, write_preset):
    preset = write_preset(**PRESET)
    db = cli.cwd / "runs" / DB_NAME
    killed = launch(cli, "run", preset, "--headless", "--no-export", patch=SLOW_CHUNKS)
    wait_for_chunks(killed, db, "sgd", 3)
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    store = Store.open(db.parent)
    run_id = store.latest_run()
    store.close()

    resumes = [launch(cli, "run", preset, "--headless", "--no-export", "--resume", run_id, patch=CLAIM_AT_GO)
               for _ in range(2)]
    wait_for_files(resumes, cli.cwd, "claiming-*")
    # Both claim at the same moment: both wait for the store's write lock, then race for it.
    with write_lock_held(db):
        (cli.cwd / "go").touch()
        time.sleep(1.0)

    results = finish(resumes)
    assert sorted(code for code, _, _ in results) == [0, 1], results
    winner = next(p for p, (code, _, _) in zip(resumes, results) if code == 0)
    _, won_out, won_err = next(r for r in results if r[0] == 0)
    _, _, lost_err = next(r for r in results if r[0] == 1)
    assert f"error: run {run_id} is being run by process {winner.pid}" in lost_err
    assert "Traceback" not in lost_err
    # The run's first process was killed: the winner took the run over, and said so.
    assert f"run {run_id} was left running by process {killed.pid}, which is gone" in won_err
    assert "resuming" in won_out
    assert_complete(db, run_id)
