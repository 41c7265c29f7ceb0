"""The run store: histories in and out, listing and ids, schema versions, and crash safety: a run
killed with SIGKILL part-way resumes to exactly what an uninterrupted run records."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from optui.errors import StoreError
from optui.store import DB_NAME, SCHEMA_VERSION, Store

from support.common import chunk_counts, wait_for_chunks


def make_run(store: Store, study="s", kind="study", units=("a", "b"), reps=2, steps=6, chunks=(3, 3)):
    run_id = store.create_run(study, "twnet", kind, "text = 1\n", "p.toml", {"device": "cpu:test", "seed": 0})
    for u in units:
        store.add_unit(run_id, u, {"optimizer": "sgd", "learning_rate": 0.1}, reps, steps, len(chunks))
    return run_id


def write_unit(store, run_id, unit, reps=2, chunks=(3, 3), diverge_last=False):
    """Chunk -1 (the eval before training), then chunks of the given lengths."""
    rng = np.random.default_rng(len(unit))
    store.write_chunk(run_id, unit, -1, 0, np.zeros((reps, 0), np.float32), 0,
                      {"test_loss": np.full(reps, 0.9)}, np.full(reps, -1))
    step = 0
    for i, n in enumerate(chunks):
        div = np.full(reps, -1)
        if diverge_last and i == len(chunks) - 1:
            div[0] = step + 1
        store.write_chunk(run_id, unit, i, step, rng.random((reps, n), dtype=np.float32), step + n,
                          {"test_loss": rng.random(reps), "train_loss": rng.random(reps)}, div)
        step += n


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "runs")
    yield s
    s.close()


# --- histories ----------------------------------------------------------------------------------

def test_histories_round_trip(store):
    run_id = make_run(store)
    write_unit(store, run_id, "a")
    write_unit(store, run_id, "b", diverge_last=True)
    store.finish_unit(run_id, "a", "done", 1.5, {"note": 1})
    store.finish_run(run_id, "done", 3.0)
    run = store.load_run(run_id)
    assert (run.run_id, run.study, run.workload, run.kind, run.status) == (run_id, "s", "twnet", "study", "done")
    assert run.device == "cpu:test" and run.wall_time_s == 3.0 and run.preset_text == "text = 1\n"
    a = run.units["a"]
    assert a.minibatch_loss.shape == (2, 6) and a.minibatch_loss.dtype == np.float32
    assert a.eval_steps.tolist() == [0, 3, 6]
    assert a.eval["test_loss"].shape == (2, 3) and a.eval["test_loss"][:, 0].tolist() == [0.9, 0.9]
    assert a.status == "done" and a.wall_time_s == 1.5 and a.extra == {"note": 1} and a.total_steps == 6
    assert a.spec == {"optimizer": "sgd", "learning_rate": 0.1}
    b = run.units["b"]
    assert b.diverged_at.tolist() == [4, -1] and b.diverged == 1 and b.status == "running"
    assert list(run.units) == ["a", "b"]  # in the order they were added


def test_write_chunk_is_idempotent(store):
    run_id = make_run(store, units=("a",))
    write_unit(store, run_id, "a")
    write_unit(store, run_id, "a")
    n = store.conn.execute("SELECT COUNT(*) FROM chunks WHERE run_id=?", (run_id,)).fetchone()[0]
    assert n == 1 + 2  # the eval before training and two chunks, each once
    assert store.load_run(run_id).units["a"].minibatch_loss.shape == (2, 6)


def test_checkpoints_and_truncation(store):
    run_id = make_run(store, units=("a",))
    write_unit(store, run_id, "a")
    store.write_chunk(run_id, "a", 0, 0, np.ones((2, 3), np.float32), 3, {}, np.full(2, -1), state=b"state-0")
    assert store.checkpoint(run_id, "a") == (0, b"state-0")
    store.truncate_unit(run_id, "a", 0)
    assert store.load_run(run_id).units["a"].eval_steps.tolist() == [0, 3]
    store.finish_unit(run_id, "a", "done", 1.0)
    assert store.checkpoint(run_id, "a") is None  # a finished unit keeps no checkpoint


def test_empty_unit_loads(store):
    run_id = make_run(store, units=("a",))
    unit = store.load_run(run_id).units["a"]
    assert unit.minibatch_loss.shape == (2, 0) and unit.eval_steps.size == 0 and unit.diverged == 0


# --- listing and ids ----------------------------------------------------------------------------

def test_list_runs(store):
    first = make_run(store, study="one")
    write_unit(store, first, "a")
    write_unit(store, first, "b", diverge_last=True)
    store.finish_unit(first, "a", "done", 1.0)
    store.finish_unit(first, "b", "done", 1.0)
    store.finish_run(first, "done", 2.0)
    second = make_run(store, study="two", kind="search", units=("t0",), reps=1)
    rows = store.list_runs()
    assert [r["id"] for r in rows] == [first, second]
    one, two = rows
    assert one["status"] == "done" and one["units"] == ["a", "b"]
    assert (one["replicates_done"], one["replicates_total"], one["diverged"]) == (4, 4, 1)
    assert one["unit_status"] == {"a": "done", "b": "done"}
    assert two["status"] == "running"  # this process is alive and holds it
    assert (two["replicates_done"], two["replicates_total"]) == (0, 1)


def test_latest_run_filters(store):
    a = make_run(store, study="x", kind="study")
    b = make_run(store, study="y", kind="study")
    c = make_run(store, study="x", kind="search")
    assert store.latest_run() == c
    assert store.latest_run(study="x") == c
    assert store.latest_run(study="x", kind="study") == a
    assert store.latest_run(kind="study") == b
    assert store.latest_run(study="nope") is None


def test_resolve_by_prefix(store):
    a = make_run(store)
    b = make_run(store)
    assert store.resolve(a) == a
    assert store.resolve("latest") == b
    # The random suffix tells them apart.
    shared = 0
    while a[shared] == b[shared]:
        shared += 1
    assert store.resolve(a[:shared + 1]) == a and store.resolve(b[:shared + 1]) == b
    with pytest.raises(StoreError, match="ambiguous"):
        store.resolve(a[:shared])
    with pytest.raises(StoreError, match="no run 'zzz'"):
        store.resolve("zzz")


def test_resolve_latest_in_an_empty_store(store):
    with pytest.raises(StoreError, match="no runs yet"):
        store.resolve("latest")


def test_run_of_a_dead_process_is_interrupted(store):
    run_id = make_run(store)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store.conn.execute("UPDATE runs SET pid=? WHERE id=?", (dead.pid, run_id))
    assert store.run_info(run_id)["status"] == "interrupted"
    assert store.list_runs()[0]["status"] == "interrupted"
    store.claim_run(run_id)  # a dead owner does not block a resume
    assert store.run_info(run_id)["status"] == "running"


def test_claim_refuses_a_run_held_by_a_live_process(store):
    run_id = make_run(store)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        store.conn.execute("UPDATE runs SET pid=? WHERE id=?", (other.pid, run_id))
        with pytest.raises(StoreError, match=f"being run by process {other.pid}"):
            store.claim_run(run_id)
    finally:
        other.kill()
        other.wait()


# --- opening ------------------------------------------------------------------------------------

def test_newer_schema_is_refused(tmp_path):
    root = tmp_path / "runs"
    Store.open(root).close()
    with sqlite3.connect(root / DB_NAME) as conn:
        conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreError) as info:
        Store.open(root)
    msg = str(info.value)
    assert str(root / DB_NAME) in msg and "newer optui" in msg and f"schema {SCHEMA_VERSION + 1}" in msg


def test_older_schema_is_refused(tmp_path):
    root = tmp_path / "runs"
    Store.open(root).close()
    with sqlite3.connect(root / DB_NAME) as conn:
        conn.execute("UPDATE meta SET value='-1' WHERE key='schema_version'")  # before any migration
    with pytest.raises(StoreError, match="older"):
        Store.open(root)


def test_not_a_database(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    (root / DB_NAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a usable optui store"):
        Store.open(root)


def test_store_folder_is_a_file(tmp_path):
    (tmp_path / "runs").write_text("x")
    with pytest.raises(StoreError, match="cannot create the run store folder"):
        Store.open(tmp_path / "runs")


def test_two_stores_share_one_file(tmp_path):
    a = Store.open(tmp_path / "runs")
    b = Store.open(tmp_path / "runs")
    run_id = make_run(a)
    write_unit(a, run_id, "a")
    assert b.load_run(run_id).units["a"].minibatch_loss.shape == (2, 6)
    a.close()
    b.close()


# --- crash safety through the CLI --------------------------------------------------------------

KILL_ARGS = dict(iterations=40, points=10, replicates=3)  # 10 chunks of 4 steps per config


def test_sigkill_then_resume_equals_an_uninterrupted_run(cli, write_preset):
    preset = write_preset(**KILL_ARGS)
    db = cli.cwd / "runs" / DB_NAME
    proc = cli.popen("run", preset, "--headless", "--no-export", throttle_s=0.1)
    wait_for_chunks(proc, db, "sgd", 4)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL

    with _opened(cli.cwd / "runs") as store:
        rows = store.list_runs()
        assert len(rows) == 1
        run = rows[0]
        assert run["status"] == "interrupted"
        assert run["unit_status"]["sgd"] == "running" and run["unit_status"]["adam"] == "pending"
        killed_at = chunk_counts(db)["sgd"]
        assert 4 <= killed_at < 11
    listed = cli("runs", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(r["id"], r["status"]) for r in json.loads(listed.stdout)] == [(run["id"], "interrupted")]

    resumed = cli("run", preset, "--headless", "--no-export", "--resume", run["id"][:-2])
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming" in resumed.stdout and run["id"] in resumed.stdout

    reference = cli("run", preset, "--headless", "--no-export", "--store", "ref")
    assert reference.returncode == 0, reference.stdout + reference.stderr

    with _opened(cli.cwd / "runs") as store, _opened(cli.cwd / "ref") as ref_store:
        assert store.run_info(run["id"])["status"] == "done"
        for unit in ("sgd", "adam"):
            rows = store.conn.execute(
                "SELECT chunk_index, step_start, step_end FROM chunks WHERE run_id=? AND unit=?"
                " ORDER BY chunk_index", (run["id"], unit)).fetchall()
            assert [r[0] for r in rows] == list(range(-1, 10))  # each chunk exactly once
            assert [r[1:] for r in rows] == [(0, 0)] + [(4 * i, 4 * i + 4) for i in range(10)]
        got = store.load_run(run["id"])
        want = ref_store.load_run("latest")
        assert set(got.units) == set(want.units) == {"sgd", "adam"}
        for name, unit in got.units.items():
            ref = want.units[name]
            assert unit.status == "done"
            assert unit.minibatch_loss.shape == (3, 40) and unit.eval_steps.tolist() == list(range(0, 41, 4))
            np.testing.assert_array_equal(unit.minibatch_loss, ref.minibatch_loss)
            assert set(unit.eval) == {"train_loss", "test_loss"}
            for k in unit.eval:
                assert unit.eval[k].shape == (3, 11)
                np.testing.assert_array_equal(unit.eval[k], ref.eval[k])
            np.testing.assert_array_equal(unit.diverged_at, ref.diverged_at)
        assert store.checkpoint(run["id"], "sgd") is None


def test_sigint_stops_after_the_chunk_and_prints_the_resume_hint(cli, write_preset):
    preset = write_preset(**KILL_ARGS)
    db = cli.cwd / "runs" / DB_NAME
    proc = cli.popen("run", preset, "--headless", "--no-export", throttle_s=0.1)
    wait_for_chunks(proc, db, "sgd", 3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err
    with _opened(cli.cwd / "runs") as store:
        run_id = store.latest_run()
        assert f"--resume {run_id}" in out
        info = store.run_info(run_id)
        assert info["status"] == "interrupted"
        units = {r["name"]: r["status"] for r in store.unit_rows(run_id)}
        assert units == {"sgd": "interrupted", "adam": "pending"}
        # Stopped after the chunk in flight: nothing after it was started.
        assert chunk_counts(db)["sgd"] < 11 and "adam" not in chunk_counts(db)
        assert store.checkpoint(run_id, "sgd") is not None


class _opened:
    """Store.open as a context manager that closes the connection."""

    def __init__(self, root):
        self.store = Store.open(root)

    def __enter__(self) -> Store:
        return self.store

    def __exit__(self, *exc) -> None:
        self.store.close()
