"""Case 5: the second Ctrl-C exits at once, even while the device is busy.

A stop signal is handled by Python only between bytecodes of the main thread; a chunk is one
long call into the compiled program, so a second Ctrl-C used to wait for the chunk to end (and
then throw it away). Here the third chunk never ends: the process must still exit within a
second or two of the second signal, keeping every finished chunk.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time

from optui.store import DB_NAME

from support.common import chunk_counts, wait_for_chunks

# From the fifth chunk on, the device is busy for ever: a compiled loop that never ends (the way
# a long chunk on a slow device looks from Python: one call that does not return).
DEVICE_BUSY_FOR_EVER = """
import jax, jax.numpy as jnp
from optui.engine import core
core.TARGET_CALL_SECONDS = 0.0  # one eval block per device call
_train = core.GroupRunner.train_blocks
@jax.jit
def spin(x):
    return jax.lax.while_loop(lambda c: c[1] < 10.0, lambda c: (c[0] + 1, c[1] * 0.5 + 1.0), (x, 0.0))[0]
def train_blocks(self, state, keys, hparams, entries, length):
    _, start, end = entries[0]
    if start > 0 and start >= 4 * (end - start):  # the fifth call on: earlier results are written meanwhile
        spin(jnp.int32(0)).block_until_ready()
    return _train(self, state, keys, hparams, entries, length)
core.GroupRunner.train_blocks = train_blocks
"""


def launch(cli, *args):
    code = f"import sys\n{DEVICE_BUSY_FOR_EVER}\nfrom optui.cli import app\nsys.argv[0] = 'optui'\napp()\n"
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], cwd=cli.cwd, env=cli.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_case_5_second_ctrl_c_exits_at_once_while_a_chunk_runs(cli, write_preset):
    preset = write_preset(iterations=40, points=8, replicates=2)
    db = cli.cwd / "runs" / DB_NAME
    proc = launch(cli, "run", preset, "--headless", "--no-export")
    try:
        wait_for_chunks(proc, db, "sgd", 3)  # the initial eval and two chunks: the third never ends
        time.sleep(0.5)
        at_signal = chunk_counts(db)["sgd"]
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert time.monotonic() - sent < 3.0
    assert proc.returncode == 130, out + err
    assert "SIGINT: stopping after the current chunk" in out
    assert "second stop signal: exiting now" in out
    assert "Traceback" not in err
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        indices = [i for (i,) in conn.execute("SELECT chunk_index FROM chunks WHERE unit='sgd' ORDER BY 1")]
    finally:
        conn.close()
    assert indices == [-1, 0, 1, 2] and len(indices) == at_signal  # every chunk whose results were read is kept
    listed = cli("runs", "--json")
    assert '"status": "interrupted"' in listed.stdout
