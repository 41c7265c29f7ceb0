"""The optimiser catalogue: every entry is declared (defaults, ranges, help), builds from traced
hyperparameters, trains two different values of every hyperparameter in one compiled engine
program, never recompiles for new values, and refuses out-of-range values; traced values match
optax built from constants; schedule-free methods are evaluated at their averaged point and
Polyak-type methods get the loss."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from support import tinywork
from optui.optim import registry as optimizers
from optui.study import presets
from optui.engine.core import GroupRunner, member_keys, run_group
from optui.errors import PresetError
from optui.schema import check_value
from optui.workloads.base import Strategy

from support.common import tiny_preset_text

TARGET = jnp.array([1.0, -2.0, 0.5])

# The list: optax's main API and the optax.contrib optimisers people compare today.
OPTAX_MAIN = ("adabelief adadelta adafactor adagrad adam adamax adamaxw adamw adan amsgrad fromage lamb lars "
              "lion nadam nadamw noisy_sgd novograd optimistic_gradient_descent polyak_sgd radam rmsprop "
              "rprop sgd sign_sgd sm3 yogi momentum nesterov").split()
CONTRIB = "schedule_free_adamw schedule_free_sgd prodigy muon adopt ademamix dadapt_adamw dog cocob mechanize".split()


def quadratic(p):
    return jnp.sum((p - TARGET) ** 2)


def representative(field) -> float:
    """A value the field allows: its default, else a small step size."""
    if not field.required:
        return float(field.default)
    return 0.01 if field.low == 0.0 else (field.low or 0.0) + 1.0


def other_value(field, value: float) -> float:
    """A second allowed value, different from `value`."""
    lo = field.low if field.low is not None else value - 10.0
    hi = field.high if field.high is not None else value + 10.0
    for c in (value * 0.5, value * 2.0, value + 0.1, lo + 0.25 * (hi - lo), lo + 0.75 * (hi - lo)):
        if c == value or not math.isfinite(c):
            continue
        try:
            check_value(c, field, None, "x")
        except PresetError:
            continue
        return c
    raise AssertionError(f"no second value for {field}")


def outside_values(field) -> list[float]:
    """Values just outside the field's range (empty for an unbounded field)."""
    out = []
    if field.low is not None:
        out.append(field.low if field.low_open else field.low - abs(field.low or 1.0) * 0.5 - 0.1)
    if field.high is not None:
        out.append(field.high if field.high_open else field.high + abs(field.high or 1.0) * 0.5 + 0.1)
    return out


# --- declarations -------------------------------------------------------------------------------

def test_the_catalogue_holds_optax_and_the_contrib_optimisers():
    assert list(optimizers.OPTIMIZERS)[:2] == ["sgd", "momentum"]
    missing = [n for n in OPTAX_MAIN + CONTRIB if n not in optimizers.OPTIMIZERS]
    assert not missing
    assert optimizers.known() == ", ".join(optimizers.OPTIMIZERS)
    assert optimizers.OPTIMIZERS["prodigy"].source == "optax.contrib"
    assert optimizers.OPTIMIZERS["adam"].source == "optax"


@pytest.mark.parametrize("name", list(optimizers.OPTIMIZERS))
def test_every_hyperparameter_is_declared_with_a_valid_default_and_help(name):
    spec = optimizers.OPTIMIZERS[name]
    assert spec.name == name and spec.summary
    assert spec.hyperparams, name
    for key, field in spec.hyperparams.items():
        assert field.kind == "float", (name, key)
        assert field.help, (name, key)
        if not field.required:
            check_value(field.default, field, None, key)  # the default lies in its own range
    if "learning_rate" in spec.hyperparams:
        assert list(spec.hyperparams)[0] == "learning_rate"
    assert spec.schedule_param is None or spec.schedule_param in spec.hyperparams


def test_the_reports_optimisers_keep_their_settings():
    assert optimizers.hyperparam_names("adam")[:4] == ["learning_rate", "b1", "b2", "eps"]
    assert list(optimizers.OPTIMIZERS["adam"].hyperparams) == ["learning_rate", "b1", "b2", "eps"]
    assert list(optimizers.OPTIMIZERS["sgd"].hyperparams) == ["learning_rate"]
    for name in ("sgd", "adam", "momentum"):
        assert optimizers.OPTIMIZERS[name].hyperparams["learning_rate"].required


@pytest.mark.parametrize("name", list(optimizers.OPTIMIZERS))
def test_out_of_range_values_are_refused_naming_the_key(tmp_path, name):
    spec = optimizers.OPTIMIZERS[name]
    base = {k: representative(f) for k, f in spec.hyperparams.items()}
    checked = 0
    for key, field in spec.hyperparams.items():
        for bad in outside_values(field):
            cfg = {"optimizer": name, "batch_size": 8, **base, key: bad}
            path = tmp_path / "bad.toml"
            path.write_text(tiny_preset_text(configs={"x": cfg}), encoding="utf-8")
            with pytest.raises(PresetError) as err:
                presets.load(path)
            assert f"{path}: configs.x.{key} must be" in str(err.value), str(err.value)
            checked += 1
    assert checked >= 1, name


def test_refused_optimisers_say_why(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(tiny_preset_text(configs={"x": {"optimizer": "lbfgs", "batch_size": 8}}), encoding="utf-8")
    with pytest.raises(PresetError, match=r"configs.x.optimizer: 'lbfgs' is not offered: L-BFGS needs"):
        presets.load(path)


# --- one compiled engine program per optimiser, hyperparameters as data --------------------------

@pytest.fixture(scope="module")
def tiny():
    return tinywork.make()


# The default suite compiles a representative few (the report's two, and one of each kind that
# needs more than an update); the slow suite (CI) compiles every optimiser in the catalogue.
QUICK = ("sgd", "adam", "schedule_free_adamw", "polyak_sgd", "noisy_sgd", "muon", "ademamix")
EVERY_OPTIMISER = [name if name in QUICK else pytest.param(name, marks=pytest.mark.slow)
                   for name in optimizers.OPTIMIZERS]


@pytest.mark.parametrize("name", EVERY_OPTIMISER)
def test_two_values_of_every_hyperparameter_train_in_one_compiled_program(tiny, name):
    """Member 0 and member 1 share a key (same init, same batches) but differ in every numeric
    hyperparameter; a third set of values reuses the same compiled init and step."""
    spec = optimizers.OPTIMIZERS[name]
    a = {k: representative(f) for k, f in spec.hyperparams.items()}
    b = {k: other_value(f, a[k]) for k, f in spec.hyperparams.items()}
    hp = {k: np.array([a[k], b[k]], np.float32) for k in a}
    key = member_keys(0, 1)
    keys = np.concatenate([key, key])
    runner = GroupRunner(tiny, name, 8, Strategy(scan=False, vmap_replicates=True))
    inputs = optimizers.engine_inputs(name, hp, 4, keys)
    state = runner.init(keys, inputs)
    state, losses = runner.advance(state, keys, inputs, 0, 2)
    assert losses.shape == (2, 2) and np.isfinite(losses).all(), losses
    w = np.asarray(state.params["w"])
    assert np.isfinite(w).all()
    assert not np.array_equal(w[0], w[1]), "the two members' hyperparameters made no difference"
    swapped = optimizers.engine_inputs(name, {k: v[::-1].copy() for k, v in hp.items()}, 4, keys)
    state2 = runner.init(keys, swapped)
    state2, _ = runner.advance(state2, keys, swapped, 0, 2)
    np.testing.assert_allclose(np.asarray(state2.params["w"])[::-1], w, rtol=1e-5, atol=1e-6)
    assert runner._init._cache_size() == 1 and runner._step._cache_size() == 1


def test_chain_elements_and_schedules_are_data_too(tiny):
    """A schedule, clipping and decoupled weight decay: their numbers vary per member in one program."""
    hp = {"learning_rate": [0.05, 0.1], "momentum": [0.9, 0.5], "schedule": [1.0, 1.0],
          "warmup_fraction": [0.0, 0.25], "final_fraction": [0.0, 0.1],
          "clip_norm": [0.5, 2.0], "clip_value": [0.1, 1.0], "weight_decay": [0.0, 0.01]}
    hp = {k: np.asarray(v, np.float32) for k, v in hp.items()}
    keys = np.concatenate([member_keys(0, 1)] * 2)
    runner = GroupRunner(tiny, "momentum", 8, Strategy(scan=True, vmap_replicates=True))
    outs = [o for o, _ in run_group(runner, keys, hp, 6, 2)]
    assert np.isfinite(outs[-1].eval["test_loss"]).all()
    hp2 = {**hp, "schedule": np.asarray([3.0, 4.0], np.float32), "warmup_fraction": np.zeros(2, np.float32)}
    outs2 = [o for o, _ in run_group(runner, keys, hp2, 6, 2)]
    assert not np.allclose(outs[-1].eval["test_loss"], outs2[-1].eval["test_loss"])
    assert runner._blocks._cache_size() == 1 and runner._init._cache_size() == 1


# --- the same numbers as optax ------------------------------------------------------------------

def run(name: str, hp: dict, steps: int = 30, start: float = 0.0) -> jax.Array:
    """Minimise the quadratic with the optimiser built inside jit from traced hyperparameters."""

    @jax.jit
    def train(hp):
        tx = optimizers.build(name, hp)
        params = jnp.full(3, start)
        state = tx.init(params)

        def body(carry, _):
            params, state = carry
            value, grads = jax.value_and_grad(quadratic)(params)
            updates, state = tx.update(grads, state, params, value=value)
            return (optax.apply_updates(params, updates), state), None

        (params, _), _ = jax.lax.scan(body, (params, state), None, length=steps)
        return params

    return train({k: jnp.float32(v) for k, v in hp.items()})


def optax_run(tx, steps: int) -> jax.Array:
    params = jnp.zeros(3)
    state = tx.init(params)
    for _ in range(steps):
        updates, state = tx.update(jax.grad(quadratic)(params), state, params)
        params = optax.apply_updates(params, updates)
    return params


@pytest.mark.parametrize("name, hp, reference", [
    ("sgd", {"learning_rate": 0.1}, lambda: optax.sgd(0.1)),
    ("momentum", {"learning_rate": 0.1, "momentum": 0.7}, lambda: optax.sgd(0.1, momentum=0.7)),
    ("nesterov", {"learning_rate": 0.1, "momentum": 0.7}, lambda: optax.sgd(0.1, momentum=0.7, nesterov=True)),
    ("adam", {"learning_rate": 1.9, "b1": 0.869, "b2": 0.662, "eps": 1e-8},
     lambda: optax.adam(1.9, b1=0.869, b2=0.662, eps=1e-8)),
    ("rmsprop", {"learning_rate": 0.05, "decay": 0.8, "eps": 1e-8, "momentum": 0.0},
     lambda: optax.rmsprop(0.05, decay=0.8, eps=1e-8)),
    ("lion", {"learning_rate": 0.01, "b1": 0.9, "b2": 0.99, "weight_decay": 1e-3}, lambda: optax.lion(0.01)),
    ("sm3", {"learning_rate": 0.1, "momentum": 0.9}, lambda: optax.sm3(0.1, momentum=0.9)),
    ("yogi", {"learning_rate": 0.05, "b1": 0.9, "b2": 0.999, "eps": 1e-3}, lambda: optax.yogi(0.05)),
])
def test_traced_hyperparameters_match_optax_constants(name, hp, reference):
    np.testing.assert_allclose(np.asarray(run(name, hp, steps=10)), np.asarray(optax_run(reference(), 10)),
                               rtol=1e-5, atol=1e-6)


def test_a_config_without_extras_is_exactly_the_optax_optimiser():
    """Same state layout as optax's own (checkpoints stay compatible) and the same numbers."""
    hp = {"learning_rate": 0.01, "b1": 0.9, "b2": 0.999, "eps": 1e-8}
    tx = optimizers.build("adam", hp)
    ours = jax.tree.structure(tx.init(jnp.zeros(3)))
    theirs = jax.tree.structure(optax.adam(0.01).init(jnp.zeros(3)))
    assert ours == theirs


def test_clipping_and_decoupled_weight_decay_equal_optax_chains():
    hp = {"learning_rate": 0.1, "clip_norm": 0.5, "clip_value": 0.3, "weight_decay": 0.2}
    ref = optax.chain(optax.clip(0.3), optax.clip_by_global_norm(0.5), optax.add_decayed_weights(0.2),
                      optax.sgd(0.1))
    np.testing.assert_allclose(np.asarray(run("sgd", hp, steps=8)), np.asarray(optax_run(ref, 8)),
                               rtol=1e-5, atol=1e-6)


def test_weight_decay_of_an_optimiser_that_has_its_own_is_not_doubled():
    hp = {"learning_rate": 0.05, "b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 0.3}
    np.testing.assert_allclose(np.asarray(run("adamw", hp, steps=8)),
                               np.asarray(optax_run(optax.adamw(0.05, weight_decay=0.3), 8)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, hp", [
    ("sgd", {"learning_rate": 0.1}), ("momentum", {"learning_rate": 0.05, "momentum": 0.9}),
    ("nesterov", {"learning_rate": 0.05, "momentum": 0.9}), ("adam", {"learning_rate": 0.1}),
    ("adamw", {"learning_rate": 0.1}), ("rmsprop", {"learning_rate": 0.05}), ("adagrad", {"learning_rate": 0.5}),
    ("adamax", {"learning_rate": 0.1}), ("lion", {"learning_rate": 0.02}),
    ("schedule_free_sgd", {"learning_rate": 0.1}), ("polyak_sgd", {}), ("prodigy", {}), ("cocob", {}),
    ("dog", {"reps_rel": 1e-2}), ("muon", {"learning_rate": 0.05}), ("ademamix", {"learning_rate": 0.1}),
])
def test_optimisers_minimise_a_quadratic(name, hp):
    spec = optimizers.OPTIMIZERS[name]
    full = {k: hp.get(k, representative(f)) for k, f in spec.hyperparams.items()}
    full.update({k: 60.0 for k in spec.inputs})
    start = float(quadratic(jnp.full(3, 0.3)))
    end = float(quadratic(run(name, full, steps=60, start=0.3)))
    assert np.isfinite(end) and end < 0.5 * start, (name, start, end)


def test_vmapped_hyperparameters_equal_separate_runs():
    lrs = np.array([0.01, 0.1, 0.3], np.float32)
    b1s = np.array([0.5, 0.9, 0.99], np.float32)

    def one(lr, b1):
        tx = optimizers.build("adam", {"learning_rate": lr, "b1": b1, "b2": 0.999, "eps": 1e-8})
        params = jnp.zeros(3)
        state = tx.init(params)
        for _ in range(5):
            updates, state = tx.update(jax.grad(quadratic)(params), state, params)
            params = optax.apply_updates(params, updates)
        return params

    together = np.asarray(jax.jit(jax.vmap(one))(jnp.asarray(lrs), jnp.asarray(b1s)))
    for i in range(3):
        alone = np.asarray(jax.jit(one)(lrs[i], b1s[i]))
        np.testing.assert_allclose(together[i], alone, rtol=1e-6, atol=1e-7)
    assert not np.allclose(together[0], together[2])


# --- more than an update: evaluation point, loss, noise ------------------------------------------

def test_schedule_free_is_evaluated_at_its_averaged_point(tiny):
    from optax import contrib

    spec = optimizers.OPTIMIZERS["schedule_free_adamw"]
    hp = {k: np.full(1, representative(f), np.float32) for k, f in spec.hyperparams.items()}
    hp["learning_rate"][:] = 0.05
    keys = member_keys(0, 1)
    runner = GroupRunner(tiny, "schedule_free_adamw", 8, Strategy(scan=True, vmap_replicates=True))
    outs = [(o, s) for o, s in run_group(runner, keys, hp, 5, 1)]
    out, state = outs[-1]
    one = jax.tree.map(lambda x: x[0], state)
    x = contrib.schedule_free_eval_params(one.opt_state, one.params)
    expected = float(tiny.evaluate(x, {}, tiny.data)["test_loss"])
    at_y = float(tiny.evaluate(one.params, {}, tiny.data)["test_loss"])
    assert out.eval["test_loss"][0] == pytest.approx(expected, rel=1e-5)
    assert abs(expected - at_y) > 1e-6  # the two points really differ


def test_polyak_step_uses_the_minibatch_loss(tiny):
    """One engine step of polyak_sgd equals optax's update given value = the minibatch loss."""
    keys = member_keys(3, 1)
    hp = {"max_learning_rate": np.ones(1, np.float32), "scaling": np.full(1, 0.5, np.float32),
          "f_min": np.zeros(1, np.float32), "eps": np.zeros(1, np.float32)}
    runner = GroupRunner(tiny, "polyak_sgd", 8, Strategy(scan=False, vmap_replicates=False))
    state = runner.init(keys, hp)
    start = state[0].params
    new, losses = runner.advance(state, keys, hp, 0, 1)
    key = jnp.asarray(keys[0], jnp.uint32)
    _, data_key = jax.random.split(key)
    batch = tiny.sample_batch(tiny.data, data_key, jnp.int32(0), 8)
    (value, _), grads = jax.value_and_grad(tiny.loss, has_aux=True)(start, {}, tiny.data, batch, key)
    tx = optax.polyak_sgd(max_learning_rate=1.0, scaling=0.5)
    updates, _ = tx.update(grads, tx.init(start), start, value=value)
    expected = optax.apply_updates(start, updates)
    np.testing.assert_allclose(np.asarray(new[0].params["w"]), np.asarray(expected["w"]), rtol=1e-5)
    assert losses[0, 0] == pytest.approx(float(value), rel=1e-6)


def test_noisy_sgd_replicates_draw_their_own_noise():
    keys = member_keys(0, 3)
    inputs = optimizers.engine_inputs("noisy_sgd", {"learning_rate": np.ones(3, np.float32)}, 10, keys)
    seeds = inputs["member_seed"]
    assert len(set(seeds.tolist())) == 3 and (seeds < 2**24).all()
    assert "total_steps" not in inputs
    assert "member_seed" not in optimizers.engine_inputs("adam", {}, 10, keys)


@pytest.mark.parametrize("name, extra", [
    ("momentum", {"schedule": 5.0, "warmup_fraction": 0.25, "final_fraction": 0.0, "clip_norm": 1.0,
                  "weight_decay": 0.01}),
    ("noisy_sgd", {}),
    ("schedule_free_adamw", {}),
])
def test_resuming_from_a_checkpoint_equals_an_uninterrupted_run(tiny, name, extra):
    """The checkpoint template is built as the runner builds it (without the engine's inputs):
    the state layout must not depend on them, and the resumed run must match."""
    from optui.engine.checkpoints import state_from_bytes, state_to_bytes

    spec = optimizers.OPTIMIZERS[name]
    keys = member_keys(5, 2)
    hp = {k: np.full(2, representative(f), np.float32) for k, f in spec.hyperparams.items()}
    hp.update({k: np.full(2, v, np.float32) for k, v in extra.items()})
    runner = GroupRunner(tiny, name, 8, Strategy(scan=True, vmap_replicates=True))
    full = [o for o, _ in run_group(runner, keys, hp, 8, 4)]
    for out, state in run_group(runner, keys, hp, 8, 4):
        if out.chunk_index == 1:
            blob = state_to_bytes(state)
            break
    template = runner.init(keys, hp)
    resumed = [o for o, _ in run_group(runner, keys, hp, 8, 4, resume=(1, state_from_bytes(template, blob)))]
    assert [o.chunk_index for o in resumed] == [2, 3]
    for a, b in zip(full[-2:], resumed):
        np.testing.assert_allclose(a.minibatch_loss, b.minibatch_loss, rtol=1e-6)
        np.testing.assert_allclose(a.eval["test_loss"], b.eval["test_loss"], rtol=1e-6)
