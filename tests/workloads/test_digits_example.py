"""The example plug-in (examples/digits): a Flax network with dropout and BatchNorm.

Dropout draws from the loss's key; BatchNorm's statistics are carried in the member state, updated
by training and used by evaluation; a run stopped part-way and resumed from the store equals an
uninterrupted one; and the network learns the digits (>= 90% test accuracy).
"""

from __future__ import annotations

import sys
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from support.common import ROOT

pytest.importorskip("sklearn", reason="the digits example needs scikit-learn (the examples extra)")
sys.path.insert(0, str(ROOT / "examples" / "digits"))  # the package, as if installed

from optui.study import presets  # noqa: E402
from optui.engine.core import GroupRunner, member_keys, run_group  # noqa: E402
from optui.engine.events import ChunkDone  # noqa: E402
from optui.service import StudyRunner, build_workload  # noqa: E402
from optui.store import Store  # noqa: E402
from optui.workloads import Strategy  # noqa: E402
from optui_digits import workload as digits_spec  # noqa: E402
from optui_digits.workload import MLP  # noqa: E402

PRESET = """
study = "digits-test"
workload = "optui_digits:workload"
[model]
hidden = {hidden}
[budget]
iterations = {iterations}
[eval]
points = {points}
[replicates]
count = {replicates}
seed = 3
[configs.adam]
optimizer = "adam"
learning_rate = 0.003
batch_size = 32
[configs.momentum]
optimizer = "momentum"
learning_rate = 0.05
momentum = 0.9
batch_size = 32
"""


def study(hidden=32, iterations=24, points=4, replicates=2, sets=()):
    return presets.loads(PRESET.format(hidden=hidden, iterations=iterations, points=points,
                                       replicates=replicates), "digits-test.toml", list(sets))


@pytest.fixture(scope="module")
def small():
    s = study()
    return s, build_workload(s)


def test_the_spec_declares_metrics_and_settings():
    spec = digits_spec()
    assert spec.objective == "test_accuracy" and spec.metric("test_accuracy").goal == "max"
    assert spec.metric("test_loss").goal == "min"
    with pytest.raises(presets.PresetError, match="data.test_fraction leaves 1797 training and 0 test"):
        presets.loads(PRESET.format(hidden=8, iterations=2, points=1, replicates=1)
                      + "[data]\ntest_fraction = 0.0001\n", "d.toml")


def test_dropout_uses_the_loss_key_and_batchnorm_updates_the_state(small):
    _, w = small
    params, state = w.init(jax.random.PRNGKey(0))
    assert set(state) == {"batch_stats"}
    batch = w.sample_batch(w.data, jax.random.PRNGKey(1), jnp.int32(0), 32)
    loss = jax.jit(w.loss)
    a, new_state = loss(params, state, w.data, batch, jax.random.PRNGKey(5))
    again, _ = loss(params, state, w.data, batch, jax.random.PRNGKey(5))
    other, _ = loss(params, state, w.data, batch, jax.random.PRNGKey(6))
    assert float(a) == float(again) and float(a) != float(other)  # dropout masks follow the key
    # Training mode moved BatchNorm's running averages towards the batch statistics.
    moved = jax.tree.map(lambda x, y: float(jnp.abs(x - y).max()), state, new_state)
    assert all(v > 0 for v in jax.tree.leaves(moved))


def test_evaluation_uses_the_running_statistics(small):
    _, w = small
    params, state = w.init(jax.random.PRNGKey(0))
    shifted = jax.tree.map(lambda x: x + 0.5, state)  # other running means and variances
    ev, ev_shifted = w.evaluate(params, state, w.data), w.evaluate(params, shifted, w.data)
    assert float(ev["test_loss"]) != float(ev_shifted["test_loss"])
    # The same numbers as Flax in inference mode with those statistics.
    net = MLP(32, 0.2, 0.9)
    logits = net.apply({"params": params, **shifted}, w.data["test_x"], train=False)
    expected = float(jnp.mean(jnp.argmax(logits, -1) == w.data["test_y"]))
    assert float(ev_shifted["test_accuracy"]) == pytest.approx(expected)


@pytest.mark.parametrize("vmap", [True, False])
def test_training_carries_the_model_state(small, vmap):
    s, w = small
    runner = GroupRunner(w, "adam", 32, Strategy(scan=True, vmap_replicates=vmap))
    keys = member_keys(0, 2)
    hp = {k: np.full(2, v, np.float32) for k, v in s.configs["adam"].hyperparams.items()}
    first = runner.init(keys, hp)
    outs = list(run_group(runner, keys, hp, 12, 3))
    last_state = outs[-1][1]
    stats = lambda st: st.model_state if vmap else st[0].model_state
    before, after = jax.tree.leaves(stats(first)), jax.tree.leaves(stats(last_state))
    assert len(before) == 4 and all(not np.allclose(a, b) for a, b in zip(before, after))
    losses = np.concatenate([o.minibatch_loss for o, _ in outs], axis=1)
    assert losses.shape == (2, 12) and np.isfinite(losses).all()
    assert not np.allclose(losses[0], losses[1])  # replicates differ: batches and dropout keys


def _run(tmp_path, name, s, stop_after_chunk=None):
    """Run the study into a store of its own; stop_after_chunk cancels it after that chunk of
    the first config, then resumes it. Returns the finished run."""
    store = Store.open(tmp_path / name)
    cancel = threading.Event()

    def listener(event):
        if (stop_after_chunk is not None and isinstance(event, ChunkDone) and event.unit == "adam"
                and event.chunk_index == stop_after_chunk):
            cancel.set()

    run_id = StudyRunner(s, store, listener, cancel).run(configs=["adam"])
    if stop_after_chunk is not None:
        assert store.run_info(run_id)["status"] == "interrupted"
        # Stopped part-way, with a checkpoint (BatchNorm statistics included) to go on from.
        assert stop_after_chunk <= store.checkpoint(run_id, "adam")[0] < s.eval_points - 1
        StudyRunner(s, store).run(resume=run_id)
    run = store.load_run(run_id)
    assert run.status == "done"
    return run


def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    from optui.engine import core

    monkeypatch.setattr(core, "TARGET_CALL_SECONDS", 0.0)  # one eval block per call: the stop lands part-way
    s = study(iterations=16, points=4, replicates=2)
    whole = _run(tmp_path, "whole", s)
    resumed = _run(tmp_path, "resumed", s, stop_after_chunk=1)
    for name in ("adam",):
        a, b = whole.units[name], resumed.units[name]
        np.testing.assert_array_equal(a.minibatch_loss, b.minibatch_loss)
        assert set(a.eval) == {"train_loss", "test_loss", "train_accuracy", "test_accuracy"}
        for metric in a.eval:
            np.testing.assert_array_equal(a.eval[metric], b.eval[metric])
    assert whole.meta["objective"] == "test_accuracy"
    assert [m["name"] for m in whole.meta["metrics"]] == ["train_loss", "test_loss", "train_accuracy",
                                                          "test_accuracy"]


def test_it_learns_the_digits(tmp_path):
    """>= 90% test accuracy (chance is 10%) for every replicate after 300 Adam steps of batch 32."""
    s = study(hidden=64, iterations=300, points=3, replicates=3, sets=["configs.momentum.learning_rate=0.05"])
    store = Store.open(tmp_path / "runs")
    run = store.load_run(StudyRunner(s, store).run(configs=["adam"]))
    acc = run.units["adam"].eval["test_accuracy"]
    assert acc[:, 0].max() < 0.3  # untrained
    assert acc[:, -1].min() >= 0.90, acc[:, -1]
    loss = run.units["adam"].eval["test_loss"]
    assert (loss[:, -1] < 0.5 * loss[:, 0]).all()


def test_a_search_ranks_by_accuracy_highest_first(tmp_path):
    from optui.search import rank_trials
    from optui.service import SearchRunner

    text = PRESET.format(hidden=16, iterations=30, points=2, replicates=1) + (
        "[search.adam]\noptimizer = 'adam'\ntrials = 4\nbatch_size = 32\n"
        "learning_rate = { low = 0.00001, high = 0.01, scale = 'log' }\n")
    s = presets.loads(text, "digits-test.toml")
    assert s.search["adam"].objective == "final_test_accuracy" and s.search["adam"].goal == "max"
    store = Store.open(tmp_path / "runs")
    run_id = SearchRunner(s, "adam", store).run()
    ranked = [t for t in rank_trials(store, run_id) if t["objective"] is not None]
    objectives = [t["objective"] for t in ranked]
    assert len(objectives) == 4 and objectives == sorted(objectives, reverse=True)
    assert objectives[0] > objectives[-1]
    # The best has the largest step of this too-small range.
    assert ranked[0]["params"]["learning_rate"] == max(t["params"]["learning_rate"] for t in ranked)
