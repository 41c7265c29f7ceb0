"""SIGKILL at any moment: during a replicate run, a search, a store write or an export.

After the kill the store opens cleanly (integrity_check ok), the run reads as interrupted, and
--resume trains only the missing chunks with the same keys: the result equals an uninterrupted
run's. An export killed mid-file leaves no partial file under a final name.
"""

from __future__ import annotations

import csv
import json
import pickletools
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from optui.store import DB_NAME, Store

from support.common import SLOW_CHUNKS, Cli, chunk_counts, cli_env, tiny_preset_text, wait_for_chunks

SEARCH = """
[search.adam]
optimizer = "adam"
trials = 3
learning_rate = { low = 0.001, high = 0.1, scale = "log" }
batch_size = 16
"""
# A checkpoint after every device call (checkpoint_seconds = 0), so a resume re-trains nothing it
# recorded; with the default, up to checkpoint_seconds of recorded training is re-done.
PRESET = dict(iterations=40, points=8, replicates=2, extra=SEARCH + "\n[engine]\ncheckpoint_seconds = 0\n")  # 8 chunks of 5 steps
CHUNKS = list(range(-1, 8))  # chunk -1 is the eval before training
KIND = {"run": "study", "search": "search"}

# Each chunk takes 0.3 s longer (a slower device), so the kill lands part-way through the run.

# Stops for good inside the transaction that writes sgd's chunk 2 (with the other chunks of its
# device call): its rows are written, not committed. "holding" names the call's first chunk.
HOLD_IN_WRITE = """
import os
import time
from contextlib import contextmanager
from optui import store
_tx, _write_chunks = store.Store.tx, store.Store.write_chunks
def write_chunks(self, run_id, unit, chunks, *args, **kwargs):
    self.hold = unit == "sgd" and 2 in [c[0] for c in chunks]
    self.first = chunks[0][0]
    return _write_chunks(self, run_id, unit, chunks, *args, **kwargs)
@contextmanager
def tx(self):
    with _tx(self) as c:
        yield c
        if getattr(self, "hold", False):
            with open("holding.tmp", "w") as f:
                f.write(str(self.first))
            os.replace("holding.tmp", "holding")
            time.sleep(600)
store.Store.write_chunks, store.Store.tx = write_chunks, tx
"""

# Stops for good half-way through writing histories.csv (after the figures and pickles).
HOLD_IN_EXPORT = """
import time
from optui.export import tables
_csv_rows = tables.csv_rows
def csv_rows(run):
    for i, row in enumerate(_csv_rows(run)):
        if i == 100:
            open("exporting", "w").close()
            time.sleep(600)
        yield row
tables.csv_rows = csv_rows
"""


# Records every chunk the process writes, so a test can tell what a resume trained.
RECORD_WRITES = """
from optui import store
_write_chunks = store.Store.write_chunks
def write_chunks(self, run_id, unit, chunks, *args, **kwargs):
    with open("written.txt", "a") as f:
        for c in chunks:
            f.write(f"{unit} {c[0]}\\n")
    return _write_chunks(self, run_id, unit, chunks, *args, **kwargs)
store.Store.write_chunks = write_chunks
"""


def launch(cli: Cli, *args, patch: str) -> subprocess.Popen:
    """`optui ARGS` in cli's folder, with `patch` (Python source) applied first."""
    code = f"import sys\n{patch}\nfrom optui.cli import app\nsys.argv[0] = 'optui'\napp()\n"
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], cwd=cli.cwd, env=cli.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_file(proc: subprocess.Popen, path: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"optui exited ({proc.returncode}) before writing {path.name}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.communicate()
            pytest.fail(f"timed out waiting for {path.name}")
        time.sleep(0.02)


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def chunk_keys(db: Path) -> list[tuple[str, int]]:
    """(unit, chunk index) of every recorded chunk."""
    conn = sqlite3.connect(db)
    try:
        return sorted(conn.execute("SELECT unit, chunk_index FROM chunks"))
    finally:
        conn.close()


def load(root: Path, run_id: str = "latest"):
    store = Store.open(root)
    try:
        return store.load_run(run_id)
    finally:
        store.close()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, jax_cache_dir):
    """reference("run" | "search"): the same preset run uninterrupted (made once per module)."""
    cli = Cli(tmp_path_factory.mktemp("reference"), cli_env(jax_cache_dir))
    preset = cli.cwd / "tiny.toml"
    preset.write_text(tiny_preset_text(**PRESET), encoding="utf-8")
    made = {}

    def get(command: str):
        if command not in made:
            r = cli(command, preset, "--headless", "--no-export")
            assert r.returncode == 0, r.stdout + r.stderr
            made[command] = load(cli.cwd / "runs")
        return made[command]

    return get


def assert_same_results(got, want, exact: bool) -> None:
    assert got.status == "done" and set(got.units) == set(want.units)
    same = np.testing.assert_array_equal if exact else (
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5))  # trials may regroup on resume
    for name, unit in got.units.items():
        ref = want.units[name]
        assert unit.status == ref.status and unit.eval_steps.tolist() == ref.eval_steps.tolist()
        same(unit.minibatch_loss, ref.minibatch_loss)
        assert set(unit.eval) == set(ref.eval)
        for metric in unit.eval:
            same(unit.eval[metric], ref.eval[metric])
        np.testing.assert_array_equal(unit.diverged_at, ref.diverged_at)


@pytest.mark.parametrize("case", ["replicate run", "search", "store write"])
def test_sigkill_then_resume_trains_only_what_is_missing(case, cli, write_preset, reference):
    command = "search" if case == "search" else "run"
    preset = write_preset(**PRESET)
    db = cli.cwd / "runs" / DB_NAME
    proc = launch(cli, command, preset, "--headless", "--no-export",
                  patch=HOLD_IN_WRITE if case == "store write" else SLOW_CHUNKS)
    if case == "store write":
        wait_for_file(proc, cli.cwd / "holding")
        first = int((cli.cwd / "holding").read_text())
        assert 0 <= first <= 2
        assert chunk_counts(db)["sgd"] == first + 1  # the call with chunk 2 is written but not committed: unseen
    else:
        wait_for_chunks(proc, db, "adam-t001" if case == "search" else "sgd", 3)
    kill(proc)

    # On restart the store opens cleanly and the run reads as interrupted.
    assert integrity(db) == "ok"
    listed = cli("runs", "--json")
    assert listed.returncode == 0, listed.stderr
    [run] = json.loads(listed.stdout)
    assert run["kind"] == KIND[command] and run["status"] == "interrupted"
    kept = chunk_keys(db)
    assert kept, "nothing was recorded before the kill"
    if case == "store write":  # the chunk in flight is lost, and nothing else
        assert kept == [("sgd", i) for i in range(-1, first)]

    resume = launch(cli, command, preset, "--headless", "--no-export", "--resume", run["id"], patch=RECORD_WRITES)
    out, err = resume.communicate(timeout=240)
    assert resume.returncode == 0, out + err
    assert integrity(db) == "ok"
    got = load(cli.cwd / "runs", run["id"])
    # Every unit now has every chunk, once ...
    assert chunk_keys(db) == sorted((u, i) for u in got.units for i in CHUNKS)
    # ... and the resume trained only what was missing.
    written = [(u, int(i)) for u, i in map(str.split, (cli.cwd / "written.txt").read_text().splitlines())]
    assert sorted(written) == sorted(set(chunk_keys(db)) - set(kept))
    # With the same keys: the resumed result equals an uninterrupted run's.
    assert_same_results(got, reference(command), exact=command == "run")


EXPORTS = {"compare-01-sgd-vs-adam.png", "config-sgd.png", "config-adam.png", "mlruns.p",
           "tiny-histories.p", "histories.csv", "summary.json"}


def assert_whole(path: Path) -> None:
    """The file is complete: checked by its format's own end marker or parser."""
    data = path.read_bytes()
    if path.suffix == ".png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(b"IEND\xaeB`\x82"), path.name
    elif path.suffix == ".p":  # parsed, not loaded: no pickle runs here
        ops = list(pickletools.genops(data))
        assert ops[-1][0].name == "STOP" and ops[-1][2] == len(data) - 1, path.name
    elif path.suffix == ".json":
        json.loads(data)
    elif path.suffix == ".csv":
        assert data.endswith(b"\n"), path.name
    else:
        pytest.fail(f"unexpected export {path.name}")


def test_sigkill_mid_export_leaves_no_partial_file(cli, write_preset, tmp_path):
    preset = write_preset(**PRESET)
    done = cli("run", preset, "--headless", "--no-export")
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = json.loads(cli("runs", "--json").stdout)[0]["id"]
    folder = cli.cwd / "exports" / "tiny" / run_id

    proc = launch(cli, "export", patch=HOLD_IN_EXPORT)
    wait_for_file(proc, cli.cwd / "exporting")
    kill(proc)
    # The files finished before the kill are whole; the one being written has no final name yet.
    finals = {p.name for p in folder.iterdir() if not p.name.startswith(".")}
    assert finals == EXPORTS - {"histories.csv", "summary.json"}
    for name in finals:
        assert_whole(folder / name)
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".")]
    assert len(leftovers) == 1 and leftovers[0].startswith(".histories.csv."), leftovers

    # The next export is not disturbed by the leftover, and sweeps it away.
    again = cli("export")
    assert again.returncode == 0, again.stdout + again.stderr
    assert {p.name for p in folder.iterdir()} == EXPORTS
    for name in EXPORTS:
        assert_whole(folder / name)
    from optui.export import export_run

    clean = export_run(load(cli.cwd / "runs"), tmp_path / "clean", ["csv", "json"])
    assert [p.name for p in clean] == ["histories.csv", "summary.json"]
    assert (folder / "histories.csv").read_bytes() == clean[0].read_bytes()
    with open(folder / "histories.csv", newline="", encoding="utf-8") as f:
        assert len(list(csv.reader(f))) > 100
    assert json.loads((folder / "summary.json").read_text()) == json.loads(clean[1].read_text())
