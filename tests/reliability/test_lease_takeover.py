"""Round 3, case 1: a `--force` takeover loses nothing.

Resumer A claims an interrupted run and is stopped (SIGSTOP) as it restarts a unit; its lease
expires; B resumes with --force and finishes the run. A is continued: every write path checks
the lease in the same transaction as the write, so A deletes, truncates and adds nothing, and
exits saying the run was taken over. B's run stays done with whole histories.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from optui.errors import RunTakenOverError
from optui.store import DB_NAME, Store
from support.checks import interrupted_run, recorded_run

# A resumer whose lease lasts 1 s, which stops itself (SIGSTOP) as it restarts its first unit.
STOPPED_RESUMER = """
import os, signal, sys
from pathlib import Path
from optui.store import database, lease
database.LEASE_SECONDS = lease.LEASE_SECONDS = 1.0
lease.HEARTBEAT_SECONDS = 0.1
from optui.service import store_sink
_restart = store_sink.StoreSink.restart
def restart(self, unit, after_chunk):
    Path("a-stopped").write_text(unit)
    os.kill(os.getpid(), signal.SIGSTOP)
    return _restart(self, unit, after_chunk)
store_sink.StoreSink.restart = restart
from optui.cli import app
sys.argv[0] = "optui"
app()
"""


def test_case_1_a_stopped_resumer_taken_over_with_force_loses_nothing(cli, write_preset):
    preset = write_preset(iterations=16, points=4, replicates=2)
    run_id = interrupted_run(preset, cli.cwd / "runs", chunks=2)

    a = subprocess.Popen([sys.executable, "-c", STOPPED_RESUMER, "run", str(preset), "--headless",
                          "--no-export", "--resume", run_id], cwd=cli.cwd, env=cli.env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while not (cli.cwd / "a-stopped").exists():
            assert a.poll() is None, a.communicate()
            assert time.monotonic() < deadline, "resumer A never reached its first unit"
            time.sleep(0.05)
        time.sleep(1.5)  # A's 1 s lease expires while it is stopped

        b = cli("run", preset, "--headless", "--no-export", "--resume", run_id, "--force")
        assert b.returncode == 0, b.stdout + b.stderr
        assert "taking it over (--force)" in b.stderr
        before = Store.open(cli.cwd / "runs", create=False).load_run(run_id)
        assert before.status == "done"

        a.send_signal(signal.SIGCONT)
        out, err = a.communicate(timeout=120)
    finally:
        if a.poll() is None:
            a.kill()
            a.communicate()
    assert a.returncode == 1, out + err
    assert "taken over" in err and "Traceback" not in err, err

    after = Store.open(cli.cwd / "runs", create=False).load_run(run_id)
    assert after.status == "done"
    for name, unit in after.units.items():
        assert unit.minibatch_loss.shape == (2, 16), name
        np.testing.assert_array_equal(unit.minibatch_loss, before.units[name].minibatch_loss)
        assert unit.wall_time_s == before.units[name].wall_time_s  # A added no time either
    listed = json.loads(cli("runs", "--json").stdout)[0]
    assert listed["status"] == "done" and listed["replicates_done"] == listed["replicates_total"]


def test_case_1_every_write_path_is_fenced_by_the_lease(tmp_path):
    run_id = recorded_run(tmp_path / "runs", finish="interrupted")
    a = Store.open(tmp_path / "runs")
    a.claim_run(run_id)
    conn = a.conn
    conn.execute("UPDATE runs SET lease_expires=? WHERE id=?", (time.time() - 5, run_id))
    b = Store.open(tmp_path / "runs")
    b.claim_run(run_id, force=True)
    chunks = lambda: b.conn.execute("SELECT COUNT(*) FROM chunks WHERE run_id=?", (run_id,)).fetchone()[0]
    units = lambda: b.conn.execute("SELECT name, status, wall_time_s FROM units ORDER BY name").fetchall()
    had_chunks, had_units = chunks(), units()

    loss = np.zeros((2, 4), np.float32)
    writes = [
        lambda: a.truncate_unit(run_id, "sgd", -1),
        lambda: a.add_unit_time(run_id, "sgd", 100.0),
        lambda: a.add_unit(run_id, "extra", {}, 2, 8, 1),
        lambda: a.write_chunk(run_id, "sgd", 5, 40, loss, 44, {}, np.full(2, -1)),
        lambda: a.finish_unit(run_id, "sgd", "failed", 1.0),
        lambda: a.update_run_meta(run_id, device="elsewhere"),
        lambda: a.finish_run(run_id, "failed", 1.0),
    ]
    for write in writes:
        with pytest.raises(RunTakenOverError):
            write()
    assert chunks() == had_chunks and units() == had_units
    assert b.run_info(run_id)["status"] == "running"
    assert b.run_info(run_id)["meta"].get("device") == "cpu"
    b.finish_run(run_id, "interrupted", 1.0)


def test_case_1_a_process_that_never_held_a_live_run_writes_none_of_it(tmp_path):
    run_id = recorded_run(tmp_path / "runs", finish="interrupted")
    other = Store.open(tmp_path / "runs")
    # held by process 1 (alive) under a live lease
    other.conn.execute("UPDATE runs SET status='running', pid=1, host=?, lease_token='t', lease_expires=? "
                       "WHERE id=?", (os.uname().nodename, time.time() + 50, run_id))
    for write in (lambda: other.truncate_unit(run_id, "sgd", -1),
                  lambda: other.add_unit_time(run_id, "sgd", 1.0)):
        with pytest.raises(RunTakenOverError, match="does not hold it"):
            write()
    assert other.conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0] == 4
