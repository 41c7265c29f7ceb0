"""TwNet: learn one weight per vocabulary token so that the cosine similarity of two users'
weighted word vectors matches how strongly they follow each other.

Loss (the report's): for a batch of edges, the vector of per-edge cosines is compared with the
vector of ground-truth strengths by cosine distance; the MSE between them is the alternative.
Everything is safe at zero: a user with no tokens, or all-zero weights, gives similarity 0 and a
finite gradient instead of NaN.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..results.metrics import Metric
from .base import Setting, SettingError, Settings, Strategy, Workload, WorkloadSpec
from .twnet_data import TwNetData, load_json, synthetic

SETTINGS = {
    "data": {
        "source": Setting("str", "synthetic", choices=("synthetic", "json"),
                          help="synthetic: a generated follower network; json: the report's file"),
        "path": Setting("path", "", help="json: the report's {\"dataset\": [...]} file",
                        read_when=("source", ("json",))),
        "seed": Setting("int", 0, low=0, high=2**31 - 1, help="data seed (network and train/test split)"),
        "train_fraction": Setting("float", 0.75, low=0.0, high=1.0, low_open=True, high_open=True,
                                  help="share of user pairs used for training"),
        "min_count": Setting("int", 3, low=0, high=1_000_000, help="prune tokens seen this often or less"),
        "users": Setting("int", 296, low=2, high=20_000, help="synthetic: users"),
        "vocab": Setting("int", 3900, low=10, high=1_000_000, help="synthetic: vocabulary size"),
        "topics": Setting("int", 8, low=1, high=1_000, help="synthetic: topics follows depend on"),
    },
    "model": {
        "loss": Setting("str", "cosine", choices=("cosine", "mse"),
                        help="cosine distance (the report's) or MSE of edge similarities"),
        "init": Setting("float", 1.0, help="initial value of every word weight"),
    },
    "eval": {
        "points": Setting("int", 100, low=1, high=100_000, help="full-dataset evals per run (100 = every 1%)"),
    },
}
SYNTHETIC_ONLY = ("users", "vocab", "topics")
METRICS = (
    Metric("train_loss", "loss", label="train loss", split="train"),
    Metric("test_loss", "loss", label="test loss", split="test"),
)


def check_settings(settings: Settings) -> None:
    """Rules across settings: a json source needs a path; synthetic sizes apply only to synthetic."""
    data = settings.data
    if data["source"] == "json":
        if not data["path"]:
            raise SettingError("data.path", "is required when data.source = \"json\"")
        given = [k for k in SYNTHETIC_ONLY if k in settings.given.get("data", ())]
        if given:
            raise SettingError("data." + given[0], "applies only to data.source = \"synthetic\"")


def load_data(settings: dict[str, Any]) -> TwNetData:
    if settings["source"] == "json":
        return load_json(settings["path"], settings["min_count"], settings["train_fraction"], settings["seed"])
    return synthetic(settings["users"], settings["vocab"], settings["topics"], settings["seed"],
                     settings["min_count"], settings["train_fraction"])


# --- numerics ---------------------------------------------------------------------------------

def _safe_cosine(dot: jax.Array, sq_a: jax.Array, sq_b: jax.Array) -> jax.Array:
    """dot / (|a| |b|), defined as 0 where either vector is zero, with a finite gradient there.

    Only an exact zero is special: a NaN or inf norm (overflowed weights) must stay non-finite
    so that the engine sees the divergence.
    """
    ok = (sq_a != 0) & (sq_b != 0)
    # Square roots taken separately: their product cannot overflow where sq_a * sq_b would.
    norm = jnp.sqrt(jnp.where(ok, sq_a, 1.0)) * jnp.sqrt(jnp.where(ok, sq_b, 1.0))
    return jnp.where(ok, dot / norm, 0.0)


def edge_similarity(x: jax.Array, counts: jax.Array, pairs: jax.Array) -> jax.Array:
    """Cosine of the weighted word vectors (counts * x) of each pair of users.

    Written as matrix-vector products in s = x**2 with the constant counts gathered, so the
    gradient is a dense product too: differentiating through gathered *weighted* rows would make
    XLA scatter-add a (batch, vocab) array per step, several times slower on a CPU.
    """
    s = x * x
    sq = (counts * counts) @ s  # squared norm of every user's weighted vector
    a, b = pairs[:, 0], pairs[:, 1]
    dot = (counts[a] * counts[b]) @ s
    return _safe_cosine(dot, sq[a], sq[b])


def all_similarities(x: jax.Array, counts: jax.Array) -> jax.Array:
    """(users, users) cosine matrix via one matmul: cheaper than gathering every edge's vectors."""
    weighted = counts * x
    gram = weighted @ weighted.T
    sq = jnp.diagonal(gram)
    return _safe_cosine(gram, sq[:, None], sq[None, :])


def cosine_distance(pred: jax.Array, target: jax.Array) -> jax.Array:
    dot = jnp.sum(pred * target)
    return 1.0 - _safe_cosine(dot, jnp.sum(pred * pred), jnp.sum(target * target))


def mse(pred: jax.Array, target: jax.Array) -> jax.Array:
    return jnp.mean((pred - target) ** 2)


LOSSES = {"cosine": cosine_distance, "mse": mse}


# --- workload ---------------------------------------------------------------------------------

def to_device(d: TwNetData) -> dict[str, jax.Array]:
    return {
        "counts": jnp.asarray(d.counts / np.maximum(d.counts.max(), 1.0)),
        "pairs": jnp.asarray(d.edges),
        "strength": jnp.asarray(d.strength),
        "train": jnp.asarray(d.train),
        "test": jnp.asarray(d.test),
    }


def make_workload(d: TwNetData, loss: str = "cosine", init: float = 1.0) -> Workload:
    loss_fn = LOSSES[loss]
    n_vocab = d.counts.shape[1]

    def init_params(key: jax.Array):
        del key  # the report starts every run from all-ones weights; replicates differ in batches
        return jnp.full((n_vocab,), init, dtype=jnp.float32), {}  # no model state

    def sample_batch(data, key, step, batch_size: int):
        # Edges drawn at random (with replacement) from the training edges, as in the report.
        pick = jax.random.randint(jax.random.fold_in(key, step), (batch_size,), 0, data["train"].shape[0])
        return data["train"][pick]

    def minibatch_loss(x, model_state, data, edges, key):
        del key  # a linear model: nothing random in the loss
        sim = edge_similarity(x, data["counts"], data["pairs"][edges])
        return loss_fn(sim, data["strength"][edges]), model_state

    def evaluate(x, model_state, data):
        sims = all_similarities(x, data["counts"])
        pair_sim = sims[data["pairs"][:, 0], data["pairs"][:, 1]]
        out = {}
        for split in ("train", "test"):
            idx = data[split]
            out[f"{split}_loss"] = loss_fn(pair_sim[idx], data["strength"][idx])
        return out

    def choose_strategy(backend: str) -> Strategy:
        # Measured (benchmarks/bench_twnet.py): scan chunks and vmapped replicates win on CPU too.
        return Strategy(scan=True, vmap_replicates=True)

    return Workload(
        name="twnet", data=to_device(d), n_train=int(len(d.train)), init=init_params,
        sample_batch=sample_batch, loss=minibatch_loss, evaluate=evaluate, choose_strategy=choose_strategy,
        info={**d.describe(), "loss": loss, "warnings": list(d.warnings)},
    )


def build(settings: Settings) -> Workload:
    return make_workload(load_data(settings.data), settings.model["loss"], settings.model["init"])


def workload() -> WorkloadSpec:
    """The TwNet spec (registered as the entry point `twnet`)."""
    return WorkloadSpec(
        name="twnet", build=build, metrics=METRICS, objective="test_loss", settings=SETTINGS,
        check_settings=check_settings,
        description="word weights on a Twitter-like follower network (the report's section 2.2)",
    )
