"""Case 4: a NaN or inf loss in one replicate or trial.

It is marked diverged at its first bad step, the others go on unchanged, and summaries and
"best" leave it out while saying how many diverged.
"""

from __future__ import annotations

import dataclasses
import json
import re

import jax
import jax.numpy as jnp
import numpy as np

from optui.study import presets
from optui.engine.core import member_keys
from optui.service import StudyRunner, build_workload
from optui.export import export_run
from optui.export.tables import summary
from optui.store import Store
from support.common import tiny_preset_text

REPLICATES = 6


def poisoned(workload, study, bad: list[int]):
    """The workload, with weights that overflow float32 for the replicates in `bad`.

    The engine initialises replicate r from the first half of split(replicate key r), so those
    init keys name the replicates to poison.
    """
    keys = member_keys(study.replicates_seed, REPLICATES)
    targets = jnp.stack([jax.random.split(jnp.asarray(keys[r], jnp.uint32))[0] for r in bad])
    init = workload.init

    def init_params(key):
        hit = jnp.any(jnp.all(targets == key, axis=-1))
        params, model_state = init(key)
        return jax.tree.map(lambda p: jnp.where(hit, p * 1e30, p), params), model_state

    return dataclasses.replace(workload, init=init_params)


def run_study(tmp_path, name, workload, study):
    store = Store.open(tmp_path / name)
    run_id = StudyRunner(study, store).run(workload=workload)
    return store.load_run(run_id)


def test_one_diverging_replicate_is_marked_and_left_out(tmp_path):
    text = tiny_preset_text(iterations=24, points=4, replicates=REPLICATES,
                            configs={"adam": {"optimizer": "adam", "learning_rate": 0.05, "batch_size": 16}})
    study = presets.loads(text, "tiny.toml")
    clean = build_workload(study)
    healthy_run = run_study(tmp_path, "clean", clean, study)

    run = run_study(tmp_path, "poisoned", poisoned(clean, study, [1, 4]), study)

    unit, ref = run.units["adam"], healthy_run.units["adam"]
    bad = np.array([r in (1, 4) for r in range(REPLICATES)])
    # Marked at the first bad step: the overflowed weights give a NaN loss at step 0.
    assert unit.diverged_at.tolist() == [0 if b else -1 for b in bad]
    for r in np.flatnonzero(bad):
        first_nan = int(np.argmax(~np.isfinite(unit.minibatch_loss[r])))
        assert first_nan == unit.diverged_at[r]
        assert np.isnan(unit.eval["test_loss"][r, 1:]).all()
    # The rest went on exactly as they would have alone.
    np.testing.assert_array_equal(unit.minibatch_loss[~bad], ref.minibatch_loss[~bad])
    np.testing.assert_array_equal(unit.eval["test_loss"][~bad], ref.eval["test_loss"][~bad])
    assert run.status == "done"

    entry = summary(run)["configs"]["adam"]
    assert entry["diverged"] == 2 and entry["replicates"] == REPLICATES
    expected = ref.eval["test_loss"][~bad, -1]
    assert np.isclose(entry["final_test_loss"]["mean"], expected.mean())
    assert np.isclose(entry["final_test_loss"]["max"], expected.max())

    files = export_run(run, tmp_path / "exports")
    doc = json.loads(next(f for f in files if f.name == "summary.json").read_text())
    assert doc["configs"]["adam"]["diverged"] == 2
    assert np.isclose(doc["configs"]["adam"]["final_test_loss"]["mean"], expected.mean())


def test_a_diverging_trial_never_wins_and_is_counted(cli, write_preset):
    # Adam moves every weight by about the learning rate per step: beyond ~1e19 the squared
    # weights overflow float32 and those trials diverge; the rest finish.
    space = ("\n[search.adam]\noptimizer = \"adam\"\ntrials = 6\nseed = 3\nbudget = { iterations = 20 }\n"
             "objective = \"final_test_loss\"\nlearning_rate = { low = 1e14, high = 1e36, scale = \"log\" }\n"
             "batch_size = 16\n")
    preset = write_preset(iterations=20, points=2, replicates=1, extra=space)
    result = cli("search", preset, "--headless", "--trials", "6", "--write-best", preset)
    assert result.returncode == 0, result.stderr + result.stdout
    runs = json.loads(cli("runs", "--json").stdout)
    run_id = next(r["id"] for r in runs if r["kind"] == "search")

    store = Store.open(cli.cwd / "runs")
    from optui.search import best_trial, rank_trials

    trials = rank_trials(store, run_id)
    diverged = [t for t in trials if t["status"] == "diverged"]
    done = [t for t in trials if t["status"] == "done"]
    assert diverged and done, [(t["params"]["learning_rate"], t["status"], t["extra"].get("diverged_at")) for t in trials]
    assert all(t["params"]["learning_rate"] > 1e10 for t in diverged)
    best = best_trial(store, run_id)
    assert best["status"] == "done"
    assert best["objective"] == min(t["objective"] for t in done)
    assert re.search(rf"\b{len(diverged)} diverged", result.stdout), result.stdout
    written = presets.load(preset)
    assert written.configs["adam-searched"].hyperparams["learning_rate"] == best["params"]["learning_rate"]
