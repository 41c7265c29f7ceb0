"""scikit-learn's digits (1,797 real 8x8 handwritten digits, shipped inside the package: no
network needed) classified by a small Flax network with BatchNorm and dropout.

Everything optui needs is in `workload()`: the declared metrics and settings, and `build`, which
loads the data onto the device and returns the pure functions the engine trains with.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn

from optui.errors import DataError
from optui.workloads import Metric, Setting, SettingError, Settings, Workload, WorkloadSpec

N_EXAMPLES = 1797  # load_digits' size
N_CLASSES = 10

SETTINGS = {
    "data": {
        "test_fraction": Setting("float", 0.2, low=0.0, high=1.0, low_open=True, high_open=True,
                                 help="share of the 1,797 digits held out for testing"),
        "split_seed": Setting("int", 0, low=0, high=2**31 - 1, help="seed of the train/test split"),
    },
    "model": {
        "hidden": Setting("int", 128, low=1, high=4096, help="width of the two hidden layers"),
        "dropout": Setting("float", 0.2, low=0.0, high=1.0, high_open=True,
                           help="dropout rate after each hidden layer (training only)"),
        "bn_momentum": Setting("float", 0.9, low=0.0, high=1.0, low_open=True, high_open=True,
                               help="BatchNorm's running-average momentum"),
    },
}
METRICS = (
    Metric("train_loss", "loss", label="train loss", split="train"),
    Metric("test_loss", "loss", label="test loss", split="test"),
    Metric("train_accuracy", "accuracy", label="train acc", split="train"),
    Metric("test_accuracy", "accuracy", label="test acc", split="test"),
)


class MLP(nn.Module):
    """Two hidden layers, each Dense -> BatchNorm -> relu -> dropout."""

    hidden: int = 128
    dropout: float = 0.2
    bn_momentum: float = 0.9

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        for _ in range(2):
            x = nn.Dense(self.hidden)(x)
            x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum)(x)
            x = nn.Dropout(self.dropout, deterministic=not train)(nn.relu(x))
        return nn.Dense(N_CLASSES)(x)


def split(test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and test digits: a fixed random split."""
    order = np.random.default_rng(seed).permutation(N_EXAMPLES)
    n_test = int(round(N_EXAMPLES * test_fraction))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def check_settings(settings: Settings) -> None:
    train, test = split(settings.data["test_fraction"], settings.data["split_seed"])
    if len(train) == 0 or len(test) == 0:
        raise SettingError("data.test_fraction", f"leaves {len(train)} training and {len(test)} test "
                                                 f"digits; both must be at least 1")


def load(settings: Settings) -> dict[str, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("the digits workload needs scikit-learn: pip install scikit-learn") from None
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)  # pixel intensities 0..16 -> [0, 1]
    y = digits.target.astype(np.int32)
    train, test = split(settings.data["test_fraction"], settings.data["split_seed"])
    return {"train_x": x[train], "train_y": y[train], "test_x": x[test], "test_y": y[test]}


def build(settings: Settings) -> Workload:
    arrays = load(settings)
    data = {k: jnp.asarray(v) for k, v in arrays.items()}
    n_train = len(arrays["train_y"])
    net = MLP(settings.model["hidden"], settings.model["dropout"], settings.model["bn_momentum"])

    def init(key):
        variables = net.init({"params": key}, jnp.zeros((1, 64), jnp.float32), train=False)
        return variables["params"], {"batch_stats": variables["batch_stats"]}

    def sample_batch(data, key, step, batch_size: int):
        # Drawn with replacement from fold_in(key, step): the batch depends on key and step only.
        idx = jax.random.randint(jax.random.fold_in(key, step), (batch_size,), 0, n_train)
        return {"x": data["train_x"][idx], "y": data["train_y"][idx]}

    def loss(params, model_state, data, batch, key):
        # Train mode: dropout draws from this step's key; BatchNorm normalises with the batch's
        # statistics and returns its updated running averages as the new model state.
        logits, updates = net.apply({"params": params, **model_state}, batch["x"], train=True,
                                    rngs={"dropout": key}, mutable=["batch_stats"])
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"])
        return jnp.mean(ce), {"batch_stats": updates["batch_stats"]}

    def evaluate(params, model_state, data):
        # Eval mode: no dropout, BatchNorm on its running averages.
        out = {}
        for split_name in ("train", "test"):
            logits = net.apply({"params": params, **model_state}, data[f"{split_name}_x"], train=False)
            y = data[f"{split_name}_y"]
            out[f"{split_name}_loss"] = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))
            out[f"{split_name}_accuracy"] = jnp.mean(jnp.argmax(logits, -1) == y)
        return out

    return Workload(
        name="digits", data=data, n_train=n_train, init=init, sample_batch=sample_batch, loss=loss,
        evaluate=evaluate,
        info={"n_train": n_train, "n_test": len(arrays["test_y"]), "model": dict(settings.model)},
    )


def workload() -> WorkloadSpec:
    """The entry point `digits` (see pyproject.toml)."""
    return WorkloadSpec(
        name="digits", build=build, metrics=METRICS, objective="test_accuracy", settings=SETTINGS,
        check_settings=check_settings,
        description="scikit-learn's 8x8 digits; an MLP with BatchNorm and dropout (example plug-in)",
    )
