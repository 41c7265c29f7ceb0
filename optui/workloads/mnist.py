"""The MNIST workload: the report's CNN trained on batches from one permutation per epoch.

Data lives on the device as float32 NHWC images in [0, 1] and int32 labels. Full-dataset
evaluation runs in fixed-size slices (lax.map) over index arrays, so 20 replicates' eval fits
in memory and eval sets need not be copies of the training images.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..results.metrics import Metric
from .base import Setting, SettingError, Settings, WorkloadSpec

DATA_SETTINGS = {
    "source": Setting("str", "tfds", choices=("tfds", "idx"),
                      help="tfds: TensorFlow Datasets; idx: MNIST IDX files in data.path"),
    "name": Setting("str", "mnist", choices=("mnist",), help="TFDS dataset name"),
    "data_dir": Setting("path", "", help="TFDS data folder; empty = TFDS_DATA_DIR or ~/tensorflow_datasets"),
    "download": Setting("bool", True, help="tfds: download and prepare when not prepared"),
    "path": Setting("path", "", help="idx: folder of MNIST IDX files (.gz or not)", read_when=("source", ("idx",))),
    "train_split": Setting("int", 0, low=0, high=10_000_000,
                           help="idx, t10k pair only: train on its first N images"),
    "test_split": Setting("int", 0, low=0, high=10_000_000,
                          help="idx, t10k pair only: test on its last N images"),
    "drop_remainder": Setting("bool", True, help="drop each epoch's incomplete last batch"),
}
SETTINGS = {
    "data": DATA_SETTINGS,
    "model": {
        "conv1": Setting("int", 32, low=1, high=1024, help="first conv layer's features"),
        "conv2": Setting("int", 64, low=1, high=1024, help="second conv layer's features"),
        "dense": Setting("int", 256, low=1, high=65_536, help="hidden dense layer's width"),
        "train_conv": Setting("str", "auto", choices=("auto", "xla", "patches"),
                              help="how training computes the convs (same maths): auto = patches on "
                                   "a CPU, xla elsewhere"),
    },
    "eval": {
        "points": Setting("int", 100, low=0, high=100_000, help="full-dataset evals per run (100 = every 1%)"),
        "train_examples": Setting("int", 10_000, low=0, high=10_000_000,
                                  help="training images in the train-loss eval subset; 0 = all"),
        "test_examples": Setting("int", 0, low=0, high=10_000_000, help="test images evaluated; 0 = all"),
        # 250: 20 vmapped replicates of the offline study peak at 3.0 GiB RSS (9.4 GiB at 1000),
        # with the same eval throughput on CPU (benchmarks/bench_mnist.py --memory).
        "slice": Setting("int", 250, low=1, high=1_000_000, help="images per eval slice (bounds memory)"),
    },
}
METRICS = (
    Metric("train_loss", "loss", label="train loss", split="train"),
    Metric("test_loss", "loss", label="test loss", split="test"),
    Metric("train_accuracy", "accuracy", label="train acc", split="train"),
    Metric("test_accuracy", "accuracy", label="test acc", split="test"),
)


def check_settings(settings: Settings) -> None:
    """Rules across the [data] settings (see DATA_SETTINGS)."""
    data = settings.data
    if not data["drop_remainder"]:
        raise SettingError("data.drop_remainder", "must be true: batch size is a fixed shape, so each "
                                                  "epoch's incomplete last batch is dropped (as in the report)")
    if data["source"] == "idx" and not data["path"]:
        raise SettingError("data.path", "is required when data.source = 'idx' (a folder of MNIST IDX files)")
    if data["source"] == "tfds":
        for key in ("path", "train_split", "test_split"):
            if data[key] != DATA_SETTINGS[key].default:
                raise SettingError("data." + key, "applies only to data.source = 'idx'")
    if (data["train_split"] > 0) != (data["test_split"] > 0):
        raise SettingError("data.train_split", "and data.test_split must be set together (both > 0) or "
                                               "not at all")


def workload() -> WorkloadSpec:
    """The MNIST spec (registered as the entry point `mnist`)."""
    return WorkloadSpec(
        name="mnist", build=build, metrics=METRICS, objective="test_loss", settings=SETTINGS,
        check_settings=check_settings,
        description="the report's CNN on MNIST digits (section 2.1): TFDS or IDX files",
    )


def eval_slices(indices: np.ndarray, slice_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices padded to whole slices, shape (slices, slice_size), and 0/1 weights marking padding."""
    n = len(indices)
    size = max(1, min(slice_size, n))
    slices = -(-n // size)
    idx = np.zeros(slices * size, np.int32)
    weight = np.zeros(slices * size, np.float32)
    idx[:n], weight[:n] = indices, 1.0
    return idx.reshape(slices, size), weight.reshape(slices, size)


def eval_subset(n: int, wanted: int, seed: int) -> np.ndarray:
    """Sorted indices of a fixed random subset of `wanted` of n items (all when 0 or >= n)."""
    if wanted <= 0 or wanted >= n:
        return np.arange(n, dtype=np.int32)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=wanted, replace=False)).astype(np.int32)


def build(settings: Settings) -> "Workload":
    from . import mnist_data

    arrays = mnist_data.load(dict(settings.data))
    return from_arrays(arrays, dict(settings.model), dict(settings.eval), settings.seed)


def from_arrays(arrays, model: dict[str, Any], ev: dict[str, Any], seed: int = 0) -> "Workload":
    """The workload over host arrays (mnist_data.MnistArrays); used by build and by tests."""
    import jax
    import jax.numpy as jnp

    from . import mnist_model
    from .base import Workload

    n_train, n_test = len(arrays.train_labels), len(arrays.test_labels)
    if n_train == 0 or n_test == 0:
        from ..errors import DataError
        raise DataError(f"{arrays.source}: {n_train} training and {n_test} test images; "
                        f"both must be non-empty")
    widths = {k: model[k] for k in ("conv1", "conv2", "dense")}
    train_conv = model.get("train_conv", "auto")
    if train_conv == "auto":
        train_conv = "patches" if jax.default_backend() == "cpu" else "xla"
    # Same parameters, same maths; training and eval each use the faster implementation.
    train_net = mnist_model.CNN(**widths, conv=train_conv)
    net = mnist_model.CNN(**widths, conv="xla")
    train_eval = eval_subset(n_train, ev["train_examples"], seed)
    test_eval = eval_subset(n_test, ev["test_examples"], seed)
    tr_idx, tr_w = eval_slices(train_eval, ev["slice"])
    te_idx, te_w = eval_slices(test_eval, ev["slice"])

    def images(x: np.ndarray) -> jax.Array:
        return jnp.asarray(x.reshape(-1, 28, 28, 1), jnp.float32) / 255.0

    data = {
        "train_x": images(arrays.train_images),
        "train_y": jnp.asarray(arrays.train_labels, jnp.int32),
        "test_x": images(arrays.test_images),
        "test_y": jnp.asarray(arrays.test_labels, jnp.int32),
        "eval_train_idx": jnp.asarray(tr_idx), "eval_train_w": jnp.asarray(tr_w),
        "eval_test_idx": jnp.asarray(te_idx), "eval_test_w": jnp.asarray(te_w),
    }

    def init_params(key):
        return mnist_model.init_params(net, key), {}  # no model state

    def loss(params, model_state, data, batch, key):
        del key  # no dropout in the report's CNN
        logits = train_net.apply({"params": params}, batch["image"])
        return jnp.mean(mnist_model.cross_entropy(logits, batch["label"])), model_state

    def sample_batch(data, key, step, batch_size: int):
        steps_per_epoch = n_train // batch_size
        if steps_per_epoch < 1:
            raise ValueError(f"batch size {batch_size} exceeds the {n_train} training images")
        step = jnp.asarray(step, jnp.int32)
        # One permutation per epoch, keyed by fold_in(key, epoch); the incomplete last batch is
        # dropped. Only this batch's slots of the permutation are computed (see permuted).
        epoch_key = jax.random.fold_in(key, step // steps_per_epoch)
        slots = (step % steps_per_epoch) * batch_size + jnp.arange(batch_size, dtype=jnp.int32)
        idx = permuted(epoch_key, slots, n_train)
        return {"image": data["train_x"][idx], "label": data["train_y"][idx]}

    def _sums(params, x, y, idx, w):
        def one_slice(carry, s):
            i, wt = s
            logits = net.apply({"params": params}, x[i])
            ce = jnp.sum(wt * mnist_model.cross_entropy(logits, y[i]))
            hit = jnp.sum(wt * mnist_model.correct(logits, y[i]))
            return (carry[0] + ce, carry[1] + hit), None

        (ce, hit), _ = jax.lax.scan(one_slice, (jnp.float32(0), jnp.float32(0)), (idx, w))
        n = jnp.sum(w)
        return ce / n, hit / n

    def evaluate(params, model_state, data):
        tr_loss, tr_acc = _sums(params, data["train_x"], data["train_y"],
                                data["eval_train_idx"], data["eval_train_w"])
        te_loss, te_acc = _sums(params, data["test_x"], data["test_y"],
                                data["eval_test_idx"], data["eval_test_w"])
        return {"train_loss": tr_loss, "test_loss": te_loss,
                "train_accuracy": tr_acc, "test_accuracy": te_acc}

    info = {
        "source": arrays.source,
        "n_train": n_train, "n_test": n_test,
        "eval_train_examples": len(train_eval), "eval_test_examples": len(test_eval),
        "eval_slice": int(tr_idx.shape[1]),
        "model": dict(widths),
        "train_conv": train_conv,
        "params": mnist_model.count_params(jax.eval_shape(init_params, jax.random.key(0))[0]),
        "flops_per_example_forward": mnist_model.flops_per_example(**widths),
    }
    return Workload(
        name="mnist", data=data, n_train=n_train, init=init_params, sample_batch=sample_batch,
        loss=loss, evaluate=evaluate, choose_strategy=choose_strategy, info=info,
    )


FEISTEL_ROUNDS = 6


def _mix32(x):
    """A 32-bit integer hash (lowbias32): every input bit affects every output bit."""
    import jax.numpy as jnp

    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def permuted(key, slots, n: int):
    """Entries `slots` (each in range(n)) of a random permutation of range(n) keyed by `key`.

    jax.random.permutation sorts all n items: 27 ms per step for n = 60,000 on a 2-core CPU,
    a third of a training step when called every step. This keyed bijection (a Feistel network
    on the smallest even-bit domain >= n, cycle-walked back into range(n)) costs O(batch) instead.
    """
    import jax
    import jax.numpy as jnp

    half = max(1, -(-max(n - 1, 1).bit_length() // 2))
    mask = jnp.uint32((1 << half) - 1)
    round_keys = jax.random.bits(key, (FEISTEL_ROUNDS,), jnp.uint32)

    def feistel(x):
        left, right = x >> half, x & mask
        for i in range(FEISTEL_ROUNDS):
            left, right = right, left ^ (_mix32(right ^ round_keys[i]) & mask)
        return (left << half) | right

    # The domain holds fewer than 4n values, so few walks are needed; each ends inside range(n)
    # because the start is, and a bijection's cycles close.
    first = feistel(slots.astype(jnp.uint32))
    out = jax.lax.while_loop(lambda y: jnp.any(y >= n),
                             lambda y: jnp.where(y >= n, feistel(y), y), first)
    return out.astype(jnp.int32)


def choose_strategy(backend: str):
    """Scan chunks with replicates in turn on a CPU; scan + vmap elsewhere.

    Measured on a 2-core CPU (benchmarks/bench_mnist.py --kernels): with the convs as patch
    matrix products (train_conv = "patches"), a scan chunk trains 1.5x faster than a jitted step
    per call, and vmapped replicates (batched matrix products) a little slower than replicates
    in turn; with XLA's convs inside a scan or vmap the step is several times slower still.
    Accelerators favour the compiled, batched program.
    """
    from .base import Strategy

    if backend == "cpu":
        return Strategy(scan=True, vmap_replicates=False)
    return Strategy(scan=True, vmap_replicates=True)
