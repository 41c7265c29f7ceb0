"""A regression workload of the suite's own: a small Flax MLP fitting a smooth function of 4 inputs.

It is what a user writes from README.md's "Your own workload": its objective is `test_mse` (lower
is better), and it also declares `test_r2` (higher is better) and `train_mse`. No metric is
called `test_loss`, so every view that reads results has to follow the declarations.

A test uses it through a preset that names this file:

    from support.regression_workload import write_preset
    preset = write_preset(tmp_path)            # 3 configs, [[compare]] views, a search space
    optui run <preset> --headless ...

or in-process: `workload()` is the factory (a WorkloadSpec), `PATH` this file.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from optui.workloads import Metric, Setting, Workload, WorkloadSpec

PATH = Path(__file__).resolve()
REFERENCE = f"{PATH}:workload"  # what a preset's `workload` says to load this file
N_INPUTS = 4

METRICS = (
    Metric("test_mse", "loss", label="test MSE", split="test"),
    Metric("test_r2", "other", higher_is_better=True, label="test R^2", split="test"),
    Metric("train_mse", "loss", label="train MSE", split="train"),
)
SETTINGS = {
    "data": {
        "examples": Setting("int", 160, low=8, high=100_000, help="generated examples, 3/4 for training"),
        "noise": Setting("float", 0.1, low=0.0, high=10.0, help="standard deviation of the label noise"),
    },
    "model": {"hidden": Setting("int", 16, low=1, high=1024, help="width of the hidden layer")},
}


class MLP(nn.Module):
    hidden: int = 16

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return nn.Dense(1)(nn.tanh(nn.Dense(self.hidden)(x)))[..., 0]


def generate(examples: int, noise: float) -> dict[str, np.ndarray]:
    """Inputs in [-1, 1]^4, targets sin(x0) + x1 * x2 - x3 / 2 plus noise; fixed seed."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(examples, N_INPUTS)).astype(np.float32)
    y = (np.sin(2 * x[:, 0]) + x[:, 1] * x[:, 2] - 0.5 * x[:, 3]
         + noise * rng.normal(size=examples)).astype(np.float32)
    n_train = examples * 3 // 4
    return {"train_x": x[:n_train], "train_y": y[:n_train], "test_x": x[n_train:], "test_y": y[n_train:]}


def build(settings) -> Workload:
    arrays = generate(settings.data["examples"], settings.data["noise"])
    data = {k: jnp.asarray(v) for k, v in arrays.items()}
    n_train = len(arrays["train_y"])
    net = MLP(settings.model["hidden"])

    def init(key):
        return net.init(key, jnp.zeros((1, N_INPUTS), jnp.float32))["params"], {}

    def sample_batch(data, key, step, batch_size: int):
        return jax.random.randint(jax.random.fold_in(key, step), (batch_size,), 0, n_train)

    def loss(params, model_state, data, idx, key):
        pred = net.apply({"params": params}, data["train_x"][idx])
        return jnp.mean((pred - data["train_y"][idx]) ** 2), model_state

    def evaluate(params, model_state, data):
        def mse(split):
            return jnp.mean((net.apply({"params": params}, data[f"{split}_x"]) - data[f"{split}_y"]) ** 2)

        test_mse = mse("test")
        return {"test_mse": test_mse, "test_r2": 1.0 - test_mse / jnp.var(data["test_y"]),
                "train_mse": mse("train")}

    return Workload(name="regression", data=data, n_train=n_train, init=init, sample_batch=sample_batch,
                    loss=loss, evaluate=evaluate, info={"n_train": n_train})


def workload() -> WorkloadSpec:
    return WorkloadSpec(name="regression", build=build, metrics=METRICS, objective="test_mse",
                        settings=SETTINGS, description="a Flax MLP on generated regression data (tests)")


CONFIGS = {
    "sgd": 'optimizer = "sgd"\nlearning_rate = 0.05\nbatch_size = 16',
    "adam": 'optimizer = "adam"\nlearning_rate = 0.02\nbatch_size = 16',
    "adam-slow": 'optimizer = "adam"\nlearning_rate = 0.001\nbatch_size = 16',
}


def preset_text(study: str = "regression", iterations: int = 60, points: int = 6, replicates: int = 2,
                workload_ref: str = REFERENCE, extra: str = "") -> str:
    """A 3-config study with [[compare]] views on test_mse, test_r2 and train vs test, and a
    search space whose objective is test_r2 (higher is better)."""
    parts = [f'study = "{study}"', f'workload = "{workload_ref}"', "",
             "[data]", "examples = 160", "noise = 0.1", "", "[model]", "hidden = 16", "",
             "[budget]", f"iterations = {iterations}", "", "[eval]", f"points = {points}", "",
             "[replicates]", f"count = {replicates}", "seed = 0", ""]
    for name, body in CONFIGS.items():
        parts += [f"[configs.{name}]", body, ""]
    parts += ["[search.adam]", 'optimizer = "adam"', "trials = 3", "seed = 0", "replicates = 1",
              'objective = "final_test_r2"', "learning_rate = { low = 0.001, high = 0.1, scale = \"log\" }",
              "batch_size = 16", "",
              "[[compare]]", 'title = "Test MSE: SGD vs Adam"', 'configs = ["sgd", "adam"]', 'metric = "test_mse"', "",
              "[[compare]]", 'title = "Test R^2 of every config"', 'configs = ["sgd", "adam", "adam-slow"]',
              'metric = "test_r2"', "",
              "[[compare]]", 'title = "Adam: train vs test"', 'configs = ["adam"]', 'metric = "train_test"', ""]
    return "\n".join(parts) + extra


def write_preset(folder: Path, name: str = "regression.toml", **kwargs) -> Path:
    """The study of preset_text written to folder/name."""
    path = Path(folder) / name
    path.write_text(preset_text(**kwargs), encoding="utf-8")
    return path
