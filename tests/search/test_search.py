"""Random search end to end on tiny synthetic TwNet: grouping, storage, divergence, resume,
confirmation, exports, --write-best, and (slow) resuming after kill -9 of the CLI."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from optui.study import presets
from optui.store import Store

ROOT = Path(__file__).resolve().parents[2]
TWNET = ROOT / "presets" / "twnet.toml"
TINY = ["data.users=30", "data.vocab=200", "budget.iterations=60", "eval.points=4",
        'search.adam.batch_size={low=4, high=64, int=true, scale="log", buckets=2}', "search.adam.trials=5"]


def tiny_study(extra: list[str] | None = None):
    return presets.load(TWNET, TINY + (extra or []))


@pytest.fixture(scope="module")
def shared():
    """One tiny workload and its compiled groups for every in-process search of this module:
    compiles dominate these tests' time on a CPU."""
    from optui.service import build_workload
    from optui.service import CompiledGroups

    return SimpleNamespace(workload=build_workload(tiny_study()), compiled=CompiledGroups())


def searcher(study, store, shared, listener=None, cancel=None):
    from optui.service import SearchRunner

    return SearchRunner(study, "adam", store, listener, cancel, compiled=shared.compiled)


class Recorder:
    def __init__(self, cancel_when=None):
        self.events = []
        self.cancel = threading.Event()
        self.cancel_when = cancel_when

    def __call__(self, event):
        self.events.append(event)
        if self.cancel_when and self.cancel_when(event):
            self.cancel.set()

    def of(self, kind):
        return [e for e in self.events if type(e).__name__ == kind]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, shared):
    """One uninterrupted 5-trial search, shared by the tests that only read it."""
    store = Store.open(tmp_path_factory.mktemp("store"))
    study = tiny_study()
    rec = Recorder()
    runner = searcher(study, store, shared, rec)
    run_id = runner.run(workload=shared.workload)
    return SimpleNamespace(store=store, study=study, run_id=run_id, rec=rec, runner=runner)


def objectives(store, run_id):
    return {r["name"]: r["extra"].get("objective") for r in store.unit_rows(run_id)
            if not r["spec"].get("confirm_of")}


def test_every_trial_is_stored_with_its_draw_and_objective(finished):
    from optui.search import rank_trials

    store, study, run_id = finished.store, finished.study, finished.run_id
    space = study.search["adam"]
    info = store.run_info(run_id)
    assert (info["kind"], info["status"]) == ("search", "done")
    assert info["meta"]["space"]["seed"] == space.seed and info["meta"]["trials"] == 5
    rows = store.unit_rows(run_id)
    assert [r["name"] for r in rows] == [f"adam-t00{i}" for i in range(1, 6)]
    for i, r in enumerate(rows):
        drawn = space.sample(i)
        assert {k: r["spec"][k] for k in drawn} == drawn
        assert r["status"] == "done"
        unit = store.load_unit(run_id, r)
        assert unit.eval_steps[-1] == r["total_steps"]
        # The objective is the final full test loss (mean over the trial's one replicate).
        assert r["extra"]["objective"] == pytest.approx(float(unit.eval["test_loss"][0, -1]))
    # Fair budget: every trial saw the same number of examples whatever its batch size.
    examples = {r["total_steps"] * r["spec"]["batch_size"] for r in rows}
    assert examples == {60 * 16}
    ranked = rank_trials(store, run_id)
    values = [t["objective"] for t in ranked]
    assert values == sorted(values) and [t["rank"] for t in ranked] == [1, 2, 3, 4, 5]


def test_trials_sharing_a_batch_size_train_as_one_compiled_program(finished):
    batches = {r["spec"]["batch_size"] for r in finished.store.unit_rows(finished.run_id)}
    assert batches == {4, 64}
    groups = finished.rec.of("TrialsPlanned")[0].groups
    assert sorted(b for _, b, _ in groups) == [4, 64]
    sizes = {b: len(units) for _, b, units in groups}
    # One program per (batch size, chunk length), whose member axis holds the whole group.
    programs = finished.runner.programs
    assert {(p[1], p[2]) for p in programs} == set(sizes.items())
    assert finished.runner.compiles == len(programs) <= 4
    assert finished.store.run_info(finished.run_id)["meta"]["compiles"] == finished.runner.compiles


@pytest.mark.slow
def test_a_trial_trains_the_same_alone_as_inside_its_group(finished, tmp_path, shared):
    store = Store.open(tmp_path)
    run_id = searcher(tiny_study(), store, shared).run(trials=1, workload=shared.workload)
    alone = objectives(store, run_id)["adam-t001"]
    assert alone == pytest.approx(objectives(finished.store, finished.run_id)["adam-t001"], rel=1e-5)


def test_events_feed_a_live_trials_table(finished):
    rec = finished.rec
    names = [type(e).__name__ for e in rec.events]
    assert names[0] == "RunStarted" and names[1] == "TrialsPlanned" and names[-1] == "RunFinished"
    planned = rec.of("TrialsPlanned")[0]
    assert [t["name"] for t in planned.trials] == [f"adam-t00{i}" for i in range(1, 6)]
    scored = rec.of("TrialScored")
    assert sorted(e.unit for e in scored) == [t["name"] for t in planned.trials]
    assert all(e.status == "done" and e.objective is not None for e in scored)


def test_cancel_part_way_then_resume_gives_the_uninterrupted_result(finished, tmp_path, shared, monkeypatch):
    from optui.engine import core

    monkeypatch.setattr(core, "TARGET_CALL_SECONDS", 0.0)  # one eval block per device call: stop after any
    store = Store.open(tmp_path)
    # Stop inside the first group, after its second chunk: the resume continues from checkpoints.
    rec = Recorder(cancel_when=lambda e: type(e).__name__ == "ChunkDone" and e.chunk_index == 1)
    run_id = searcher(tiny_study(), store, shared, rec, rec.cancel).run(workload=shared.workload)
    assert store.run_info(run_id)["status"] == "interrupted"
    statuses = {r["status"] for r in store.unit_rows(run_id)}
    assert "done" not in statuses and "interrupted" in statuses
    assert any(store.checkpoint(run_id, r["name"]) for r in store.unit_rows(run_id))

    rec2 = Recorder()
    searcher(tiny_study(), store, shared, rec2).run(resume=run_id, workload=shared.workload)
    assert store.run_info(run_id)["status"] == "done"
    got, want = objectives(store, run_id), objectives(finished.store, finished.run_id)
    assert got.keys() == want.keys()
    for name in want:
        assert got[name] == pytest.approx(want[name], rel=1e-5), name
    for r in store.unit_rows(run_id):  # every chunk recorded exactly once
        unit = store.load_unit(run_id, r)
        assert len(unit.eval_steps) == len(set(unit.eval_steps.tolist())) == 5


def test_resume_with_more_trials_extends_the_same_draws(finished, tmp_path, shared):
    store_dir = tmp_path / "runs"
    shutil.copytree(finished.store.path.parent, store_dir)
    store = Store.open(store_dir)
    before = {r["name"]: r["wall_time_s"] for r in store.unit_rows(finished.run_id)}
    rec = Recorder()
    searcher(tiny_study(), store, shared, rec).run(trials=7, resume=finished.run_id, workload=shared.workload)
    rows = {r["name"]: r for r in store.unit_rows(finished.run_id)}
    assert len(rows) == 7 and all(r["status"] == "done" for r in rows.values())
    space = finished.study.search["adam"]
    for i in (5, 6):
        r = rows[f"adam-t00{i + 1}"]
        assert {k: r["spec"][k] for k in space.sample(i)} == space.sample(i)
    assert {n: rows[n]["wall_time_s"] for n in before} == before  # the first five did not re-run
    assert sorted(e.unit for e in rec.of("UnitStarted") if e.steps_done == 0) == ["adam-t006", "adam-t007"]


def test_confirmation_reruns_the_best_and_ranks_by_their_mean(finished, tmp_path, shared):
    from optui.search import rank_confirmations, rank_trials

    store_dir = tmp_path / "runs"
    shutil.copytree(finished.store.path.parent, store_dir)
    store = Store.open(store_dir)
    searcher(tiny_study(), store, shared).confirm(finished.run_id, top=2, replicates=3, workload=shared.workload)
    top2 = [t["name"] for t in rank_trials(store, finished.run_id)[:2]]
    rows = rank_confirmations(store, finished.run_id)
    assert sorted(r["confirm_of"] for r in rows) == sorted(top2)
    assert [r["name"] for r in rows] == sorted([f"{n}-r3" for n in top2],
                                               key=lambda n: next(r["objective"] for r in rows if r["name"] == n))
    for r in rows:
        assert r["replicates"] == 3 and len(r["extra"]["objectives"]) == 3
        assert r["objective"] == pytest.approx(np.mean(r["extra"]["objectives"]))
        assert r["extra"]["objective_min"] <= r["objective"] <= r["extra"]["objective_max"]
    assert len(rank_trials(store, finished.run_id)) == 5  # confirmations are not trials


def test_exports_markdown_table_and_scatter_pngs(finished, tmp_path):
    from optui.export.search_report import export_search
    from optui.search import rank_trials

    space = finished.study.search["adam"]
    info = finished.store.run_info(finished.run_id)
    files = export_search(finished.study, space, info, rank_trials(finished.store, finished.run_id), [],
                          tmp_path / "twnet")
    names = sorted(f.name for f in files)
    assert names == sorted(["search-adam.md", "search-adam-batch_size.png", "search-adam-learning_rate.png",
                            "search-adam-b1.png", "search-adam-b2.png", "search-adam-history.png"])
    md = (tmp_path / "twnet" / "search-adam.md").read_text()
    assert "Sampler: random (optui's seeded random draws). Pruner: none" in md
    examples = sum(r["total_steps"] * r["spec"]["batch_size"] for r in finished.store.unit_rows(finished.run_id)
                   if not r["spec"].get("confirm_of"))
    assert f"Examples trained: {examples:,} in total;" in md
    assert "| Adam | Alpha | Batch Size | Beta1 | Beta2 |" in md
    assert "| Default | 0.01 | 128 | 0.9 | 0.999 |" in md
    assert "| Optimal (preset) | 1.9 | 960 | 0.869 | 0.662 |" in md
    assert "Optimal (search, adam-t0" in md
    for f in files:
        if f.suffix == ".png":
            assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- divergence ------------------------------------------------------------------------------------

QUADRATIC_PRESET = """
workload = "twnet"
[data]
users = 30
vocab = 200
[budget]
iterations = 40
[eval]
points = 4
[configs.sgd-default]
optimizer = "sgd"
learning_rate = 0.1
batch_size = 8
[search.sgd]
optimizer = "sgd"
trials = 8
seed = 1
learning_rate = { low = 0.001, high = 1e6, scale = "log" }
batch_size = 8
"""


def quadratic_workload():
    """A least-squares toy whose step size above ~1/curvature blows up to inf, then NaN."""
    import jax
    import jax.numpy as jnp

    from optui.workloads.base import Workload

    rows = jax.random.normal(jax.random.PRNGKey(0), (64, 5))
    data = {"rows": rows}

    def loss(x, model_state, data, batch, key):
        return jnp.mean((batch @ x - 1.0) ** 2), model_state

    def evaluate(x, model_state, data):
        full = jnp.mean((data["rows"] @ x - 1.0) ** 2)
        return {"train_loss": full, "test_loss": full}

    return Workload(
        name="quadratic", data=data, n_train=64, init=lambda key: (jnp.zeros(5), {}),
        sample_batch=lambda d, key, step, b: d["rows"][jax.random.randint(jax.random.fold_in(key, step), (b,), 0, 64)],
        loss=loss, evaluate=evaluate,
    )


def test_diverged_trials_are_marked_and_never_win(tmp_path):
    from optui.export.search_report import export_search
    from optui.search import best_trial, rank_trials
    from optui.service import SearchRunner

    study = presets.loads(QUADRATIC_PRESET, "quadratic.toml")
    store = Store.open(tmp_path / "runs")
    rec = Recorder()
    run_id = SearchRunner(study, "sgd", store, rec).run(workload=quadratic_workload())
    ranked = rank_trials(store, run_id)
    by_status = {s: [t for t in ranked if t["status"] == s] for s in ("done", "diverged")}
    assert by_status["done"] and by_status["diverged"], [(t["name"], t["status"]) for t in ranked]
    assert min(t["params"]["learning_rate"] for t in by_status["diverged"]) > \
        max(t["params"]["learning_rate"] for t in by_status["done"])
    for t in by_status["diverged"]:
        assert t["objective"] is None and t["rank"] is None
        assert all(v is None for v in t["extra"]["objectives"])
    assert ranked[: len(by_status["done"])] == by_status["done"]  # diverged ones rank after
    assert best_trial(store, run_id)["status"] == "done"
    assert store.run_info(run_id)["status"] == "done"
    files = export_search(study, study.search["sgd"], store.run_info(run_id), ranked, [], tmp_path / "out")
    assert "| diverged |" in files[0].read_text()


def test_mean_last_averages_the_test_loss_over_the_end_of_the_run():
    from optui.search import score_unit
    from optui.study.search_space import parse_space

    space = parse_space("s", {"optimizer": "sgd", "learning_rate": 0.1, "batch_size": 4,
                              "objective": "mean_last", "last_percent": 30}, "f.toml")
    test = np.array([[1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0],
                     [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.2]])
    unit = SimpleNamespace(minibatch_loss=np.zeros((2, 100)), eval_steps=np.arange(0, 101, 10),
                           eval={"test_loss": test, "train_loss": test}, total_steps=100,
                           diverged_at=np.array([-1, -1]))
    status, extra = score_unit(unit, space)
    assert status == "done"
    # Eval points at steps 70..100 are the last 30% of the run.
    assert extra["objectives"] == pytest.approx([np.mean([0.3, 0.2, 0.1, 0.0]), np.mean([0.3, 0.2, 0.1, 0.2])])
    assert extra["objective"] == pytest.approx(np.mean(extra["objectives"]))
    unit.diverged_at = np.array([-1, 57])
    status, extra = score_unit(unit, space)
    assert status == "diverged" and extra["objective"] is None


# -- --write-best ----------------------------------------------------------------------------------

def test_write_best_adds_a_config_and_keeps_comments_and_layout(tmp_path):
    from optui.export.search_report import write_best_config

    target = tmp_path / "twnet.toml"
    original = TWNET.read_text()
    target.write_text(original)
    params = {"batch_size": 472, "learning_rate": 2.345, "b1": 0.8123, "b2": 0.6789, "eps": 1e-8}
    write_best_config(target, "adam-searched", "adam", params, "best of 20 trials of search run X")
    text = target.read_text()
    assert "# The report's table (section 1): default and optimal hyperparameters for TwNet." in text
    assert 'loss = "cosine"          # cosine distance' in text
    # Every original line survives, in order; the new table sits after the last config.
    lines = iter(text.splitlines())
    assert all(any(line == got for got in lines) for line in original.splitlines())
    assert text.index("[configs.adam-searched]") < text.index("# The report's Figs 7-10")
    study = presets.load(target)
    cfg = study.configs["adam-searched"]
    assert (cfg.optimizer, cfg.batch_size, cfg.hyperparams["learning_rate"], cfg.hyperparams["b2"]) == \
        ("adam", 472, 2.345, 0.6789)
    # Writing again replaces the config in place rather than adding a second one.
    write_best_config(target, "adam-searched", "adam", {**params, "batch_size": 983}, "again")
    text2 = target.read_text()
    assert text2.count("[configs.adam-searched]") == 1 and "# again" in text2
    assert presets.load(target).configs["adam-searched"].batch_size == 983


# -- the command line --------------------------------------------------------------------------------

def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "optui.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)


def test_cli_refuses_bad_input_before_training(tmp_path):
    r = cli("search", str(TWNET), "--headless", "--space", "rmsprop", cwd=tmp_path)
    assert r.returncode == 2 and "error:" in r.stderr and "no search space 'rmsprop'" in r.stderr
    assert "Traceback" not in r.stderr
    r = cli("search", str(TWNET), "--headless", "--replicates", "3", cwd=tmp_path)
    assert r.returncode == 2 and "--replicates goes with --confirm" in r.stderr
    assert not (tmp_path / "runs").exists() or not Store.open(tmp_path / "runs").list_runs()


@pytest.mark.slow
def test_resume_after_kill_9_runs_every_trial_exactly_once(tmp_path, finished):
    """kill -9 the CLI mid-search; --resume finishes it with the same draws and results."""
    args = ["search", str(TWNET), "--headless", "--space", "adam", "--no-export"]
    for item in TINY[:-1] + ["search.adam.trials=5", "budget.iterations=600", "eval.points=20"]:
        args += ["--set", item]
    proc = subprocess.Popen([sys.executable, "-m", "optui.cli", *args], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    db = tmp_path / "runs" / "optui.sqlite"
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            time.sleep(0.05)
            if not db.exists():
                continue
            try:
                con = sqlite3.connect(db, timeout=5)
                partial = con.execute("SELECT COUNT(*) FROM units u WHERE status!='done' AND EXISTS "
                                      "(SELECT 1 FROM chunks c WHERE c.run_id=u.run_id AND c.unit=u.name "
                                      "AND c.chunk_index >= 1)").fetchone()[0]
                con.close()
            except sqlite3.OperationalError:
                continue
            # Killed with a trial part-way; trials of groups that finished first are done already.
            if partial >= 1:
                break
        assert proc.poll() is None, "the search finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    store = Store.open(tmp_path / "runs")
    run_id = store.latest_run(kind="search")
    assert store.run_info(run_id)["status"] == "interrupted"
    done_before = {r["name"]: r["wall_time_s"] for r in store.unit_rows(run_id) if r["status"] == "done"}

    r = cli("search", str(TWNET), "--headless", "--resume", run_id, "--no-export", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    store = Store.open(tmp_path / "runs")
    rows = store.unit_rows(run_id)
    study = presets.load(TWNET, TINY[:-1] + ["search.adam.trials=5", "budget.iterations=600", "eval.points=20"])
    space = study.search["adam"]
    assert [r["name"] for r in rows] == [f"adam-t00{i}" for i in range(1, 6)]
    for i, row in enumerate(rows):
        assert row["status"] == "done"
        assert {k: row["spec"][k] for k in space.sample(i)} == space.sample(i)
        unit = store.load_unit(run_id, row)
        assert unit.eval_steps.tolist() == sorted(set(unit.eval_steps.tolist())) and len(unit.eval_steps) == 21
        assert unit.minibatch_loss.shape == (1, row["total_steps"])
    assert {n: w for n, w in ((r["name"], r["wall_time_s"]) for r in rows) if n in done_before} == done_before
    # The same trials run uninterrupted in-process give the same objectives.
    from optui.service import SearchRunner

    fresh = Store.open(tmp_path / "fresh")
    want = objectives(fresh, SearchRunner(study, "adam", fresh).run())
    got = objectives(store, run_id)
    for name in want:
        assert got[name] == pytest.approx(want[name], rel=1e-5), name
