"""The optimiser registry: every entry builds from traced hyperparameters, matches optax built from
constants, vmaps over per-member values, and needs no recompile for new values."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optui import optimizers

TARGET = jnp.array([1.0, -2.0, 0.5])


def quadratic(p):
    return jnp.sum((p - TARGET) ** 2)


def defaults(name: str, learning_rate: float = 0.05) -> dict[str, float]:
    spec = optimizers.OPTIMIZERS[name]
    return {k: (learning_rate if k == "learning_rate" else float(f.default)) for k, f in spec.hyperparams.items()}


def run(name: str, hp: dict, steps: int = 30) -> jax.Array:
    """Minimise the quadratic with the optimiser built inside jit from traced hyperparameters."""

    @jax.jit
    def train(hp):
        tx = optimizers.build(name, hp)
        params = jnp.zeros(3)
        state = tx.init(params)

        def body(carry, _):
            params, state = carry
            grads = jax.grad(quadratic)(params)
            updates, state = tx.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), None

        (params, _), _ = jax.lax.scan(body, (params, state), None, length=steps)
        return params

    return train({k: jnp.float32(v) for k, v in hp.items()})


def test_registry_names_and_fields():
    assert list(optimizers.OPTIMIZERS)[:2] == ["sgd", "momentum"]
    assert {"sgd", "adam", "adamw", "rmsprop", "adagrad", "nesterov", "adamax", "lion"} <= set(optimizers.OPTIMIZERS)
    assert optimizers.known() == ", ".join(optimizers.OPTIMIZERS)
    assert optimizers.hyperparam_names("adam") == ["learning_rate", "b1", "b2", "eps"]
    assert optimizers.hyperparam_names("sgd") == ["learning_rate"]
    for name, spec in optimizers.OPTIMIZERS.items():
        assert list(spec.hyperparams)[0] == "learning_rate" and spec.hyperparams["learning_rate"].required
        assert spec.name == name and spec.summary
        for key, field in spec.hyperparams.items():
            if key != "learning_rate":
                assert not field.required, (name, key)  # every other setting has a default


@pytest.mark.parametrize("name", list(optimizers.OPTIMIZERS))
def test_every_optimiser_minimises_a_quadratic(name):
    lr = 0.01 if name == "lion" else 0.1
    start = float(quadratic(jnp.zeros(3)))
    end = float(quadratic(run(name, defaults(name, lr), steps=60)))
    assert np.isfinite(end) and end < 0.5 * start, (name, start, end)


@pytest.mark.parametrize("name, hp, reference", [
    ("sgd", {"learning_rate": 0.1}, lambda: optax.sgd(0.1)),
    ("momentum", {"learning_rate": 0.1, "momentum": 0.7}, lambda: optax.sgd(0.1, momentum=0.7)),
    ("nesterov", {"learning_rate": 0.1, "momentum": 0.7}, lambda: optax.sgd(0.1, momentum=0.7, nesterov=True)),
    ("adam", {"learning_rate": 1.9, "b1": 0.869, "b2": 0.662, "eps": 1e-8},
     lambda: optax.adam(1.9, b1=0.869, b2=0.662, eps=1e-8)),
    ("rmsprop", {"learning_rate": 0.05, "decay": 0.8, "eps": 1e-8, "momentum": 0.0},
     lambda: optax.rmsprop(0.05, decay=0.8, eps=1e-8)),
])
def test_traced_hyperparameters_match_optax_constants(name, hp, reference):
    got = run(name, hp, steps=10)
    tx = reference()
    params = jnp.zeros(3)
    state = tx.init(params)
    for _ in range(10):
        updates, state = tx.update(jax.grad(quadratic)(params), state, params)
        params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(np.asarray(got), np.asarray(params), rtol=1e-5, atol=1e-6)


def test_new_values_do_not_recompile():
    calls = []

    @jax.jit
    def step(hp, params):
        calls.append(1)  # runs once per trace
        tx = optimizers.build("adam", hp)
        updates, _ = tx.update(jax.grad(quadratic)(params), tx.init(params), params)
        return optax.apply_updates(params, updates)

    hp = {k: jnp.float32(v) for k, v in defaults("adam").items()}
    a = step(hp, jnp.zeros(3))
    b = step({**hp, "learning_rate": jnp.float32(0.5)}, jnp.zeros(3))
    assert len(calls) == 1
    assert not np.allclose(np.asarray(a), np.asarray(b))


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
