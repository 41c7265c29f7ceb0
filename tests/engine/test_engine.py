"""The engine: execution strategies agree, eval points land on schedule, divergence is isolated,
resume reproduces an uninterrupted run, replicate keys are stable."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optui.study import presets
from optui.engine import checkpoints, core
from optui.engine.core import GroupRunner, chunk_bounds, member_keys, run_group
from optui.service import build_workload, plan_units, resolve_strategy
from optui.errors import PresetError
from optui.workloads import twnet
from optui.workloads.base import Strategy, Workload
from optui.workloads.twnet_data import synthetic

from support.common import tiny_preset_text

MEMBERS = 3
BATCH = 16


@pytest.fixture(scope="module")
def workload():
    return twnet.make_workload(synthetic(30, 200, 3, seed=0))


@pytest.fixture(scope="module")
def adam_runner(workload):
    """One compiled scan+vmap program shared by the tests below (hyperparameters are data)."""
    return GroupRunner(workload, "adam", BATCH, Strategy(scan=True, vmap_replicates=True))


def adam_hparams(lrs) -> dict[str, np.ndarray]:
    lrs = np.asarray(lrs, np.float32)
    n = len(lrs)
    return {"learning_rate": lrs, "b1": np.full(n, 0.9, np.float32), "b2": np.full(n, 0.999, np.float32),
            "eps": np.full(n, 1e-8, np.float32)}


def collect(runner, keys, hparams, steps, points, resume=None):
    """Run a group to the end: (per-chunk outputs, final state)."""
    outs, state = [], None
    for out, state in run_group(runner, keys, hparams, steps, points, resume):
        outs.append(out)
    return outs, state


def history(outs):
    losses = np.concatenate([o.minibatch_loss for o in outs], axis=1)
    evals = {k: np.stack([o.eval[k] for o in outs], axis=1) for k in outs[0].eval}
    return losses, evals


# --- chunk schedule ----------------------------------------------------------------------------

def test_chunk_bounds_every_percent_of_3000_steps():
    assert chunk_bounds(3000, 100) == list(range(0, 3001, 30))


def test_chunk_bounds_468_steps():
    bounds = chunk_bounds(468, 100)
    assert bounds == [round(468 * i / 100) for i in range(101)]
    assert len(bounds) == 101 and bounds[0] == 0 and bounds[-1] == 468
    assert min(np.diff(bounds)) >= 4 and max(np.diff(bounds)) <= 5


def test_chunk_bounds_fewer_steps_than_points():
    assert chunk_bounds(7, 100) == list(range(8))  # an eval after every step
    assert chunk_bounds(1, 100) == [0, 1]


def test_chunk_bounds_single_point_and_uneven():
    assert chunk_bounds(10, 1) == [0, 10]
    assert chunk_bounds(10, 3) == [0, 3, 7, 10]


def test_run_group_evaluates_at_every_bound(adam_runner):
    outs, _ = collect(adam_runner, member_keys(0, MEMBERS), adam_hparams([0.01] * MEMBERS), 12, 4)
    assert [o.chunk_index for o in outs] == [-1, 0, 1, 2, 3]
    assert [(o.step_start, o.step_end) for o in outs] == [(0, 0), (0, 3), (3, 6), (6, 9), (9, 12)]
    assert [o.minibatch_loss.shape for o in outs] == [(MEMBERS, 0)] + [(MEMBERS, 3)] * 4
    assert all(o.chunks_total == 4 for o in outs)
    assert all(set(o.eval) == {"train_loss", "test_loss"} and o.eval["test_loss"].shape == (MEMBERS,)
               for o in outs)


# --- strategies --------------------------------------------------------------------------------

def test_strategies_give_the_same_histories(workload, adam_runner):
    keys = member_keys(11, MEMBERS)
    hp = adam_hparams([0.005, 0.01, 0.03])  # a different step size per member
    results = {(True, True): history(collect(adam_runner, keys, hp, 12, 4)[0])}
    for scan, vmap in [(True, False), (False, False)]:
        runner = GroupRunner(workload, "adam", BATCH, Strategy(scan=scan, vmap_replicates=vmap))
        results[(scan, vmap)] = history(collect(runner, keys, hp, 12, 4)[0])
    ref_losses, ref_evals = results[(True, True)]
    assert ref_losses.shape == (MEMBERS, 12) and np.all(np.isfinite(ref_losses))
    # Members differ (different batches and step sizes) ...
    assert not np.allclose(ref_losses[0], ref_losses[1])
    for strategy, (losses, evals) in results.items():
        # ... but each member's history is the same however the members are executed.
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, atol=1e-6, err_msg=str(strategy))
        for k in ref_evals:
            np.testing.assert_allclose(evals[k], ref_evals[k], rtol=1e-5, atol=1e-6, err_msg=str(strategy))


def test_replicates_are_independent_of_their_neighbours(adam_runner):
    """Member r's history depends on its key and hyperparameters only, not on its place in the group."""
    keys = member_keys(0, MEMBERS)
    lrs = np.array([0.01, 0.02, 0.04], np.float32)
    order = [2, 0, 1]
    group, _ = collect(adam_runner, keys, adam_hparams(lrs), 12, 4)
    shuffled, _ = collect(adam_runner, keys[order], adam_hparams(lrs[order]), 12, 4)
    np.testing.assert_allclose(history(shuffled)[0], history(group)[0][order], rtol=1e-6)


def test_new_hyperparameters_do_not_recompile(adam_runner):
    keys = member_keys(0, MEMBERS)
    collect(adam_runner, keys, adam_hparams([0.01] * MEMBERS), 12, 4)
    sizes = adam_runner._blocks._cache_size()
    a, _ = collect(adam_runner, keys, adam_hparams([0.2, 0.001, 0.05]), 12, 4)
    assert adam_runner._blocks._cache_size() == sizes
    b, _ = collect(adam_runner, keys, adam_hparams([0.01] * MEMBERS), 12, 4)
    assert not np.allclose(history(a)[0], history(b)[0])


# --- divergence --------------------------------------------------------------------------------

def quadratic_workload(n: int = 64) -> Workload:
    """Fit a vector to noisy targets: an SGD step size of 1e30 overflows to inf within two steps."""
    targets = jnp.asarray(np.random.default_rng(0).normal(size=(n, 4)), jnp.float32)

    def sample_batch(data, key, step, batch_size):
        return jax.random.randint(jax.random.fold_in(key, step), (batch_size,), 0, n)

    def loss(w, model_state, data, idx, key):
        return jnp.mean((data["y"][idx] - w) ** 2), model_state

    return Workload(
        name="quadratic", data={"y": targets}, n_train=n, init=lambda key: (jnp.zeros(4, jnp.float32), {}),
        sample_batch=sample_batch, loss=loss,
        evaluate=lambda w, model_state, data: {"train_loss": jnp.mean((data["y"] - w) ** 2)},
    )


@pytest.fixture(scope="module")
def quadratic():
    return quadratic_workload()


def check_divergence(outs, healthy_outs, bad: int):
    losses, evals = history(outs)
    div = outs[-1].diverged_at
    others = [m for m in range(len(div)) if m != bad]
    assert all(div[m] == -1 for m in others)
    bad_steps = np.flatnonzero(~np.isfinite(losses[bad]))
    assert bad_steps.size, "the huge step size never produced a NaN loss"
    first_bad = int(bad_steps[0])
    assert div[bad] == first_bad
    assert np.all(np.isfinite(losses[bad, :first_bad])) and np.all(np.isnan(losses[bad, first_bad:]))
    # Evals after the divergence are NaN for that member only.
    for i, out in enumerate(outs):
        for k in evals:
            assert np.isnan(evals[k][bad, i]) == (out.step_end > first_bad), (k, i, out.step_end)
    # The others go on exactly as they would without a diverging neighbour.
    h_losses, h_evals = history(healthy_outs)
    assert np.all(np.isfinite(losses[others]))
    np.testing.assert_array_equal(losses[others], h_losses[others])
    for k in evals:
        np.testing.assert_array_equal(evals[k][others], h_evals[k][others])
    return first_bad


@pytest.mark.parametrize("vmap", [True, False])
def test_divergence_is_marked_and_isolated(quadratic, vmap):
    runner = GroupRunner(quadratic, "sgd", 8, Strategy(scan=True, vmap_replicates=vmap))
    keys = member_keys(3, MEMBERS)
    outs, _ = collect(runner, keys, {"learning_rate": np.array([0.1, 1e30, 0.1], np.float32)}, 12, 4)
    healthy, _ = collect(runner, keys, {"learning_rate": np.array([0.1, 0.1, 0.1], np.float32)}, 12, 4)
    first_bad = check_divergence(outs, healthy, bad=1)
    assert first_bad >= 1  # step 0 starts from finite weights, so its loss is finite


def test_divergence_per_step_strategy(quadratic):
    runner = GroupRunner(quadratic, "sgd", 8, Strategy(scan=False, vmap_replicates=True))
    keys = member_keys(4, 2)
    outs, _ = collect(runner, keys, {"learning_rate": np.array([1e30, 0.1], np.float32)}, 6, 2)
    healthy, _ = collect(runner, keys, {"learning_rate": np.array([0.1, 0.1], np.float32)}, 6, 2)
    check_divergence(outs, healthy, bad=0)


def test_twnet_divergence_is_detected(adam_runner):
    keys = member_keys(3, MEMBERS)
    outs, _ = collect(adam_runner, keys, adam_hparams([0.01, 1e30, 0.01]), 12, 4)
    healthy, _ = collect(adam_runner, keys, adam_hparams([0.01, 0.01, 0.01]), 12, 4)
    check_divergence(outs, healthy, bad=1)


# --- resume ------------------------------------------------------------------------------------

@pytest.mark.parametrize("stop_after", [-1, 1])
def test_resume_from_a_checkpoint_equals_an_uninterrupted_run(adam_runner, stop_after):
    keys = member_keys(5, MEMBERS)
    hp = adam_hparams([0.01, 0.02, 0.04])
    steps, points = 12, 4
    full, _ = collect(adam_runner, keys, hp, steps, points)

    blob = None
    for out, state in run_group(adam_runner, keys, hp, steps, points):
        if out.chunk_index == stop_after:
            blob = checkpoints.state_to_bytes(state)
            break
    assert blob is not None
    template = adam_runner.init(keys, hp)
    restored = checkpoints.state_from_bytes(template, blob)
    rest, _ = collect(adam_runner, keys, hp, steps, points, resume=(stop_after, restored))
    assert [o.chunk_index for o in rest] == list(range(stop_after + 1, points))
    tail = [o for o in full if o.chunk_index > stop_after]
    for a, b in zip(rest, tail):
        assert (a.step_start, a.step_end) == (b.step_start, b.step_end)
        np.testing.assert_array_equal(a.minibatch_loss, b.minibatch_loss)
        for k in a.eval:
            np.testing.assert_array_equal(a.eval[k], b.eval[k])


def test_a_group_paused_at_a_chunk_continues_as_a_smaller_group(adam_runner):
    """Early stopping's re-pack: pause three units after chunk 1, continue two of them alone;
    their histories equal an uninterrupted run's, and the dropped unit trains no further."""
    from optui.engine.executor import Unit, train_group
    from optui.engine.sink import MemorySink

    units = [Unit(f"u{i}", member_keys(9, 1, i), {"learning_rate": lr, "b1": 0.9, "b2": 0.999, "eps": 1e-8})
             for i, lr in enumerate([0.01, 0.02, 0.04])]
    whole = MemorySink()
    train_group(adam_runner, units, 12, 4, whole)
    sink = MemorySink()
    paused = train_group(adam_runner, units, 12, 4, sink, until_chunk=1)
    assert paused.paused and not paused.finished
    assert all(sink.checkpoints[u.name][0] == 1 for u in units)
    before = adam_runner.programs.copy()
    done = train_group(adam_runner, [units[0], units[2]], 12, 4, sink)
    assert done.finished
    assert {m for m, _ in adam_runner.programs - before} == {2}  # two members per call now
    assert max(sink.chunks["u1"]) == 1
    for name in ("u0", "u2"):
        assert sorted(sink.chunks[name]) == sorted(whole.chunks[name])
        for i, chunk in whole.chunks[name].items():
            np.testing.assert_allclose(sink.chunks[name][i].eval["test_loss"], chunk.eval["test_loss"], rtol=1e-5)


def test_checkpoint_of_another_layout_is_refused(adam_runner, workload):
    keys = member_keys(0, 2)
    blob = checkpoints.state_to_bytes(adam_runner.init(keys, adam_hparams([0.01, 0.01])))
    sgd = GroupRunner(workload, "sgd", BATCH, Strategy(scan=True, vmap_replicates=True))
    template = sgd.init(keys, {"learning_rate": np.array([0.1, 0.1], np.float32)})
    with pytest.raises(ValueError, match="layout"):
        checkpoints.state_from_bytes(template, blob)


# --- keys --------------------------------------------------------------------------------------

def test_member_keys_are_prefix_stable_and_distinct():
    five = member_keys(0, 5)
    assert five.shape == (5, 2)
    np.testing.assert_array_equal(member_keys(0, 3), five[:3])
    assert len({tuple(k) for k in five.tolist()}) == 5
    assert not np.array_equal(member_keys(1, 3), five[:3])
    np.testing.assert_array_equal(member_keys(0, 5), five)


# --- planning ----------------------------------------------------------------------------------

def test_plan_units_and_strategy(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_preset_text(iterations=40))
    study = presets.load(path, ["engine.strategy=step-sequential"])
    w = build_workload(study)
    assert resolve_strategy(study, w) == Strategy(scan=False, vmap_replicates=False)
    study.engine = dataclasses.replace(study.engine, strategy="auto")
    assert resolve_strategy(study, w) == w.choose_strategy("cpu")
    units = plan_units(study, w)
    assert [(u.name, u.steps, u.replicates) for u in units] == [("sgd", 40, 3), ("adam", 40, 3)]
    assert [u.name for u in plan_units(study, w, ["adam"], replicates=2)] == ["adam"]
    with pytest.raises(PresetError, match="no config 'nope'"):
        plan_units(study, w, ["nope"])


def test_plan_units_epochs_budget_and_oversized_batch(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_preset_text().replace("iterations = 40", "epochs = 2"))
    study = presets.load(path)
    w = build_workload(study)
    assert w.n_train == 326  # 30 users: 435 edges, 75% for training
    assert [u.steps for u in plan_units(study, w)] == [2 * (326 // 16)] * 2
    study = presets.load(path, ["configs.sgd.batch_size=327"])
    with pytest.raises(PresetError, match="configs.sgd.batch_size must be at most the training set size"):
        plan_units(study, build_workload(study))


# --- the study runner: cancelling --------------------------------------------------------------

def test_cancel_at_the_end_of_a_config_starts_no_other(tmp_path, workload):
    """A stop request during a config's last chunk must not start (and compile) the next config."""
    import threading

    from optui.engine.events import ChunkDone
    from optui.service import StudyRunner
    from optui.store import Store

    path = tmp_path / "tiny.toml"
    configs = {"sgd": {"optimizer": "sgd", "learning_rate": 0.5, "batch_size": BATCH},
               "momentum": {"optimizer": "momentum", "learning_rate": 0.1, "batch_size": BATCH}}
    path.write_text(tiny_preset_text(iterations=4, points=2, replicates=2, configs=configs))
    study = presets.load(path)
    cancel = threading.Event()

    def listener(event):
        if isinstance(event, ChunkDone) and event.unit == "sgd" and event.chunk_index == event.chunks_total - 1:
            cancel.set()

    store = Store.open(tmp_path / "runs")
    try:
        run_id = StudyRunner(study, store, listener, cancel).run(workload=workload)
        units = {r["name"]: r["status"] for r in store.unit_rows(run_id)}
        chunks = store.conn.execute("SELECT COUNT(*) FROM chunks WHERE run_id=? AND unit='momentum'",
                                    (run_id,)).fetchone()[0]
        assert store.run_info(run_id)["status"] == "interrupted"
        assert units["sgd"] == "done"
        assert units["momentum"] == "pending" and chunks == 0
    finally:
        store.close()
