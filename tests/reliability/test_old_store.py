"""Case 9: a store written by an older optui is migrated in one transaction, keeping every run;
a store this optui cannot read is refused with a message saying what to do, and left as it was.

The version-0 store is made by hand: a current store with runs in it, then brought back to the
older layout (runs without the pid and host columns, schema_version 0).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from optui import store as store_module
from optui.errors import StoreError
from optui.results import RunResult
from optui.store import DB_NAME, SCHEMA_VERSION, Store

from support.checks import dump
from support.common import cli_env


def _write_unit(s: Store, run_id: str, unit: str, chunks: int, reps: int = 2, steps: int = 3) -> None:
    rng = np.random.default_rng(len(unit) + chunks)
    s.add_unit(run_id, unit, {"optimizer": "sgd", "learning_rate": 0.1}, reps, chunks * steps, chunks)
    for i in range(chunks):
        s.write_chunk(run_id, unit, i, i * steps, rng.random((reps, steps), dtype=np.float32),
                      (i + 1) * steps, {"test_loss": rng.random(reps), "train_loss": rng.random(reps)},
                      np.full(reps, -1))


def make_v0_store(root: Path) -> dict[str, RunResult]:
    """A version-0 store holding a finished study, an interrupted one and an import."""
    s = Store.open(root)
    done = s.create_run("old", "twnet", "study", "workload = 'twnet'\n", "old.toml", {"device": "cpu"})
    for unit in ("sgd", "adam"):
        _write_unit(s, done, unit, chunks=2)
        s.finish_unit(done, unit, "done", 1.0)
    s.finish_run(done, "done", 2.5)
    stopped = s.create_run("old", "twnet", "study", "workload = 'twnet'\n", "old.toml", {"device": "cpu"})
    _write_unit(s, stopped, "sgd", chunks=1)  # its process died part-way: no finish_run
    imported = s.create_run("mlruns", "report", "import", "", "mlruns.p", {"source": "mlruns.p"})
    _write_unit(s, imported, "sgd-default", chunks=1)
    s.finish_unit(imported, "sgd-default", "done", 0.0)
    s.finish_run(imported, "done", 0.1)
    runs = {r: s.load_run(r) for r in (done, stopped, imported)}
    s.close()
    conn = sqlite3.connect(root / DB_NAME)
    try:
        conn.execute("ALTER TABLE runs DROP COLUMN pid")
        conn.execute("ALTER TABLE runs DROP COLUMN host")
        conn.execute("UPDATE meta SET value='0' WHERE key='schema_version'")
        conn.commit()
    finally:
        conn.close()
    return runs


def layout(root: Path) -> tuple[str, set[str]]:
    """(schema_version, the runs table's columns), read without optui."""
    conn = sqlite3.connect(root / DB_NAME)
    try:
        version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
        return version, {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    finally:
        conn.close()


def assert_same_histories(a: RunResult, b: RunResult) -> None:
    assert (a.study, a.kind, a.workload, a.preset_text, a.meta) == (b.study, b.kind, b.workload, b.preset_text, b.meta)
    assert list(a.units) == list(b.units)
    for name, ua in a.units.items():
        ub = b.units[name]
        assert ua.status == ub.status and ua.total_steps == ub.total_steps
        np.testing.assert_array_equal(ua.minibatch_loss, ub.minibatch_loss)
        np.testing.assert_array_equal(ua.eval_steps, ub.eval_steps)
        np.testing.assert_array_equal(ua.diverged_at, ub.diverged_at)
        assert set(ua.eval) == set(ub.eval)
        for metric in ua.eval:
            np.testing.assert_array_equal(ua.eval[metric], ub.eval[metric])


def test_version_0_store_is_migrated_keeping_every_run(cli, tmp_path):
    root = tmp_path / "old-runs"
    before = make_v0_store(root)
    version, columns = layout(root)
    assert version == "0" and not {"pid", "host"} & columns

    result = cli("runs", "--json", "--store", root, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    listed = {r["id"]: r for r in json.loads(result.stdout)}
    assert set(listed) == set(before)
    done, stopped, imported = before
    assert listed[done]["status"] == "done" and listed[imported]["status"] == "done"
    assert listed[stopped]["status"] == "interrupted"  # no process holds it

    version, columns = layout(root)
    assert version == str(SCHEMA_VERSION) and {"pid", "host"} <= columns
    s = Store.open(root)
    try:
        for run_id, old in before.items():
            assert_same_histories(s.load_run(run_id), old)
        # The migrated store takes new runs, and --resume can claim the interrupted one.
        s.create_run("new", "twnet", "study", "", None, {})
        s.claim_run(stopped)
        assert len(s.list_runs()) == 4
    finally:
        s.close()


class MigrationFailed(sqlite3.OperationalError):
    pass


@pytest.mark.parametrize("how", ["error", "kill"])
def test_an_interrupted_migration_leaves_the_old_store_as_it_was(tmp_path, monkeypatch, how):
    root = tmp_path / "old-runs"
    runs = make_v0_store(root)
    before = dump(root)
    step = store_module.MIGRATIONS[0]
    if how == "error":
        # The first change is made, then the disk fails.
        def failing(conn):
            step(conn)
            raise MigrationFailed("disk I/O error")

        monkeypatch.setitem(store_module.MIGRATIONS, 0, failing)
        with pytest.raises(StoreError) as info:
            Store.open(root)
        msg = str(info.value)
        assert str(root / DB_NAME) in msg and "disk I/O error" in msg and "unchanged" in msg
    else:
        # The process is killed with the first change made and not committed.
        code = ("import os, signal, sys\n"
                "from optui import store\n"
                "step = store.MIGRATIONS[0]\n"
                "def killed(conn):\n"
                "    step(conn)\n"
                "    os.kill(os.getpid(), signal.SIGKILL)\n"
                "store.MIGRATIONS[0] = killed\n"
                "store.Store.open(sys.argv[1])\n")
        proc = subprocess.run([sys.executable, "-c", code, str(root)], env=cli_env(None),
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == -9, proc.stderr
    assert dump(root) == before
    assert layout(root)[0] == "0" and "pid" not in layout(root)[1]
    monkeypatch.undo()
    s = Store.open(root)  # a later open migrates it in full
    try:
        assert {r["id"] for r in s.list_runs()} == set(runs)
    finally:
        s.close()
    assert layout(root)[0] == str(SCHEMA_VERSION)


@pytest.mark.parametrize("version, fragments", [
    (str(SCHEMA_VERSION + 1), ["newer optui", f"schema {SCHEMA_VERSION + 1}", "upgrade optui", "--store"]),
    ("-1", ["schema -1", "older than", "move it aside", "--store"]),
    ("two", ["'two'", "not a number", "--store"]),
], ids=["newer", "unknown-older", "not-a-number"])
def test_unreadable_store_version_is_refused_and_left_alone(cli, tmp_path, version, fragments):
    root = tmp_path / "runs"
    s = Store.open(root)
    s.create_run("kept", "twnet", "study", "", None, {})
    s.close()
    conn = sqlite3.connect(root / DB_NAME)
    conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (version,))
    conn.commit()
    conn.close()
    before = dump(root)

    result = cli("runs", "--store", root, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert str(root / DB_NAME) in lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert dump(root) == before
