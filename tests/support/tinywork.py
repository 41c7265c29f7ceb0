"""A workload small enough to compile every optimiser in the catalogue quickly: linear regression
of 3 outputs on 5 inputs, with a weight matrix (so matrix-only methods such as Muon engage) and a
bias vector."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from optui.workloads.base import Workload

N_TRAIN = 48


def make() -> Workload:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5)).astype(np.float32)
    w_true = rng.normal(size=(5, 3)).astype(np.float32)
    y = (x @ w_true + 0.1 * rng.normal(size=(64, 3))).astype(np.float32)
    data = {"x_train": jnp.asarray(x[:N_TRAIN]), "y_train": jnp.asarray(y[:N_TRAIN]),
            "x_test": jnp.asarray(x[N_TRAIN:]), "y_test": jnp.asarray(y[N_TRAIN:])}

    def init(key):
        return {"w": 0.1 * jax.random.normal(key, (5, 3)), "b": jnp.zeros(3)}, {}

    def predict(params, x):
        return x @ params["w"] + params["b"]

    def loss(params, model_state, data, batch, key):
        x, y = batch
        return jnp.mean((predict(params, x) - y) ** 2), model_state

    def sample_batch(data, key, step, batch_size):
        idx = jax.random.randint(jax.random.fold_in(key, step), (batch_size,), 0, N_TRAIN)
        return data["x_train"][idx], data["y_train"][idx]

    def evaluate(params, model_state, data):
        return {"train_loss": jnp.mean((predict(params, data["x_train"]) - data["y_train"]) ** 2),
                "test_loss": jnp.mean((predict(params, data["x_test"]) - data["y_test"]) ** 2)}

    return Workload(name="tiny", data=data, n_train=N_TRAIN, init=init, loss=loss, sample_batch=sample_batch,
                    evaluate=evaluate)
