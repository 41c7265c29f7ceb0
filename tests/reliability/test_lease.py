"""Case 6 (and the killed run's wall time, a deleted store): who owns a run is a
heartbeat lease, not a process id.

A run left "running" by a process id that now names another process (here: process 1) used to
block --resume for ever. Now its lease expires; --force takes such a run over, a live lease is
never taken, and the process that lost the run stops writing it.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from optui.store import lease
from optui.study import presets
from optui.service import StudyRunner
from optui.errors import StoreError
from optui.store import DB_NAME, Store
from support.checks import recorded_run
from support.common import tiny_preset_text, wait_for_chunks


def interrupted_run(tmp_path, chunks: int = 2) -> tuple[Store, str, str]:
    """An interrupted tiny run in tmp_path/runs: (store, run id, preset path)."""
    text = tiny_preset_text(iterations=16, points=4, replicates=2)
    preset = tmp_path / "tiny.toml"
    preset.write_text(text)
    study = presets.load(preset)
    store = Store.open(tmp_path / "runs")
    cancel = threading.Event()
    seen = []

    def listener(event):
        if type(event).__name__ == "ChunkDone":
            seen.append(event)
            if len(seen) >= chunks:
                cancel.set()

    run_id = StudyRunner(study, store, listener, cancel).run()
    assert store.run_info(run_id)["status"] == "interrupted"
    return store, run_id, str(preset)


def hold_by(db, run_id: str, pid: int, lease_left_s: float | None, token: str | None = "elsewhere") -> None:
    """Record the run as running in process `pid` on this machine, its lease ending in
    lease_left_s seconds (negative: expired that long ago); token None keeps the lease's token."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("UPDATE runs SET status='running', pid=?, host=? WHERE id=?", (pid, os.uname().nodename, run_id))
        columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
        if "lease_expires" in columns:
            conn.execute("UPDATE runs SET lease_expires=?, lease_token=COALESCE(?, lease_token) WHERE id=?",
                         (None if lease_left_s is None else time.time() + lease_left_s, token, run_id))
        conn.commit()
    finally:
        conn.close()


def test_case_6_reused_pid_with_an_expired_lease_is_taken_over_with_force(cli, tmp_path):
    store, run_id, preset = interrupted_run(cli.cwd)
    store.close()
    hold_by(cli.cwd / "runs" / DB_NAME, run_id, 1, lease_left_s=-120)  # process 1 is alive: a reused id

    listed = json.loads(cli("runs", "--json").stdout)
    assert listed[0]["status"] == "interrupted"  # nobody renews its lease: it is not running

    refused = cli("run", preset, "--headless", "--no-export", "--resume", run_id)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "process 1" in refused.stderr and "lease expired" in refused.stderr and "--force" in refused.stderr
    assert "Traceback" not in refused.stderr

    taken = cli("run", preset, "--headless", "--no-export", "--resume", run_id, "--force")
    assert taken.returncode == 0, taken.stdout + taken.stderr
    assert "taking it over (--force)" in taken.stderr
    final = Store.open(cli.cwd / "runs").load_run(run_id)
    assert final.status == "done"
    assert all(u.minibatch_loss.shape == (2, 16) for u in final.units.values())


def test_case_6_a_live_lease_is_never_taken(cli, write_preset):
    preset = write_preset()  # the preset recorded_run records
    run_id = recorded_run(cli.cwd / "runs", finish="interrupted")
    hold_by(cli.cwd / "runs" / DB_NAME, run_id, 1, lease_left_s=50)
    assert json.loads(cli("runs", "--json").stdout)[0]["status"] == "running"
    for extra in ((), ("--force",)):
        refused = cli("run", preset, "--headless", "--no-export", "--resume", run_id, *extra)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert f"run {run_id} is being run by process 1" in refused.stderr


def test_case_6_the_process_that_lost_its_run_stops_writing_it(tmp_path):
    from optui.errors import RunTakenOverError

    run_id = recorded_run(tmp_path / "runs", finish="interrupted")
    store = Store.open(tmp_path / "runs")
    store.claim_run(run_id)  # this process resumes it ...
    # ... then hangs (seen from elsewhere: a process whose lease expired)
    hold_by(store.path, run_id, 1, lease_left_s=-120, token=None)
    other = Store.open(tmp_path / "runs")
    with pytest.raises(StoreError, match="--force"):
        other.claim_run(run_id)
    other.claim_run(run_id, force=True)  # another process takes it over

    loss = np.zeros((2, 4), np.float32)
    with pytest.raises(RunTakenOverError, match="taken over"):
        store.write_chunk(run_id, "sgd", 1, 4, loss, 8, {}, np.full(2, -1))
    with pytest.raises(RunTakenOverError):
        store.finish_run(run_id, "done", 1.0)
    assert other.run_info(run_id)["status"] == "running"  # the new holder's run, untouched
    other.finish_run(run_id, "interrupted", 1.0)


def test_case_6_the_lease_is_renewed_while_the_run_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(lease, "HEARTBEAT_SECONDS", 0.05)
    store = Store.open(tmp_path / "runs")
    run_id = store.create_run("s", "twnet", "study", "", None, {})
    read = lambda: store.conn.execute("SELECT lease_expires, wall_time_s FROM runs WHERE id=?", (run_id,)).fetchone()
    first, _ = read()
    time.sleep(0.5)
    renewed, wall = read()
    assert renewed > first and wall > 0.2  # the wall time so far is recorded as it runs
    store.finish_run(run_id, "done", 1.0)
    assert store.conn.execute("SELECT lease_token, lease_expires FROM runs").fetchone() == (None, None)


# Heartbeats every 0.1 s, and every chunk 0.3 s longer, so the run can be killed part-way.
FAST_BEATS = """
import time
from optui.store import lease
lease.HEARTBEAT_SECONDS = 0.1
from optui.engine import core
_run_calls = core.run_calls
core.TARGET_CALL_SECONDS = 0.0  # a slow device: one eval block per call
def run_calls(*args, **kwargs):
    for item in _run_calls(*args, **kwargs):
        time.sleep(0.3)
        yield item
core.run_calls = run_calls
"""


def launch(cli, *args) -> subprocess.Popen:
    code = f"import sys\n{FAST_BEATS}\nfrom optui.cli import app\nsys.argv[0] = 'optui'\napp()\n"
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], cwd=cli.cwd, env=cli.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_also_the_wall_time_of_a_killed_run_is_kept(cli, write_preset):
    preset = write_preset(iterations=40, points=8, replicates=2)
    db = cli.cwd / "runs" / DB_NAME
    proc = launch(cli, "run", preset, "--headless", "--no-export")
    wait_for_chunks(proc, db, "sgd", 5)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    [run] = json.loads(cli("runs", "--json").stdout)
    assert run["status"] == "interrupted"
    assert run["wall_time_s"] > 1.0  # five slow chunks at least, not 0


def test_also_deleting_the_store_mid_run_is_a_failure_not_done(cli, write_preset):
    preset = write_preset(iterations=40, points=8, replicates=2)
    db = cli.cwd / "runs" / DB_NAME
    proc = launch(cli, "run", preset, "--headless", "--no-export")
    wait_for_chunks(proc, db, "sgd", 3)
    for p in (cli.cwd / "runs").iterdir():
        p.unlink()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + err
    assert "deleted or replaced" in err and "Traceback" not in err
    assert "Resume with" not in out  # nothing left to resume
    assert not db.exists()  # and no empty store made in its place
