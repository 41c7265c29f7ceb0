"""The MNIST workload's functions on tiny data and a tiny copy of the CNN (fast compiles)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optui.workloads import mnist, mnist_model
from optui.workloads.base import Strategy
from optui.workloads.mnist_data import MnistArrays

TINY = {"conv1": 2, "conv2": 3, "dense": 8}


def tiny_arrays(n_train: int = 40, n_test: int = 13, seed: int = 0) -> MnistArrays:
    """Images whose class is drawn as a bright band: learnable in a few steps."""
    rng = np.random.default_rng(seed)

    def make(n):
        labels = rng.integers(0, 10, size=n).astype(np.int32)
        images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
        for i, y in enumerate(labels):
            images[i, 2 * y + 4: 2 * y + 6, :] = 255
        return images, labels

    return MnistArrays(*make(n_train), *make(n_test), source="synthetic")


def train_loss(w, params, data, batch):
    """The workload's training loss: no model state, and the CNN has no dropout (key unused)."""
    loss, state = w.loss(params, {}, data, batch, jax.random.PRNGKey(0))
    assert state == {}
    return loss


def tiny_workload(n_train=40, n_test=13, train_examples=0, slice_=5, seed=0):
    ev = {"points": 10, "train_examples": train_examples, "test_examples": 0, "slice": slice_}
    return mnist.from_arrays(tiny_arrays(n_train, n_test), TINY, ev, seed)


def test_report_cnn_shapes_without_compiling():
    net = mnist_model.CNN()
    shapes = jax.eval_shape(lambda k: mnist_model.init_params(net, k), jax.random.key(0))
    assert shapes["Conv_0"]["kernel"].shape == (3, 3, 1, 32)
    assert shapes["Conv_1"]["kernel"].shape == (3, 3, 32, 64)
    assert shapes["Dense_0"]["kernel"].shape == (7 * 7 * 64, 256)
    assert shapes["Dense_1"]["kernel"].shape == (256, 10)
    assert mnist_model.count_params(shapes) == 824_458
    assert abs(mnist_model.flops_per_example() - 9.29e6) < 0.01e6


def test_patch_and_xla_convs_are_the_same_model():
    """Same parameters from the same key, same logits and same gradients (to float32 rounding)."""
    widths = {"conv1": 4, "conv2": 6, "dense": 16}
    xla = mnist_model.CNN(**widths, conv="xla")
    patches = mnist_model.CNN(**widths, conv="patches")
    key = jax.random.PRNGKey(7)
    params = mnist_model.init_params(xla, key)
    same_init = mnist_model.init_params(patches, key)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(same_init)):
        np.testing.assert_array_equal(a, b)
    images = jax.random.uniform(jax.random.PRNGKey(1), (5, 28, 28, 1))
    labels = jnp.arange(5)
    # Biases are zero at init; perturb them so their gradients and the padding are exercised.
    params = jax.tree.map(lambda p: p + 0.05 * jax.random.normal(jax.random.PRNGKey(2), p.shape), params)

    def loss(net, p):
        return jnp.mean(mnist_model.cross_entropy(net.apply({"params": p}, images), labels))

    np.testing.assert_allclose(xla.apply({"params": params}, images),
                               patches.apply({"params": params}, images), rtol=1e-4, atol=1e-5)
    g_xla = jax.grad(lambda p: loss(xla, p))(params)
    g_patches = jax.grad(lambda p: loss(patches, p))(params)
    for a, b in zip(jax.tree.leaves(g_xla), jax.tree.leaves(g_patches)):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
    # A wrong neighbourhood order (a transposed kernel) would not match: the check has teeth.
    flipped = jax.tree_util.tree_map_with_path(
        lambda path, p: jnp.flip(p, 0) if "Conv_1" in str(path) and p.ndim == 4 else p, params)
    assert not np.allclose(xla.apply({"params": params}, images),
                           patches.apply({"params": flipped}, images), atol=1e-3)


def test_training_conv_follows_the_setting_and_the_backend():
    w = tiny_workload()
    assert w.info["train_conv"] == ("patches" if jax.default_backend() == "cpu" else "xla")
    forced = mnist.from_arrays(tiny_arrays(), {**TINY, "train_conv": "xla"},
                               {"points": 10, "train_examples": 0, "test_examples": 0, "slice": 5})
    assert forced.info["train_conv"] == "xla"
    params, _ = w.init(jax.random.PRNGKey(0))
    batch = w.sample_batch(w.data, jax.random.PRNGKey(1), 0, 8)
    np.testing.assert_allclose(train_loss(w, params, w.data, batch), train_loss(forced, params, forced.data, batch),
                               rtol=1e-5)


def test_data_layout_on_device():
    w = tiny_workload()
    assert w.data["train_x"].shape == (40, 28, 28, 1) and w.data["train_x"].dtype == jnp.float32
    assert float(w.data["train_x"].max()) == 1.0 and float(w.data["train_x"].min()) >= 0.0
    assert w.data["train_y"].dtype == jnp.int32
    assert mnist.workload().metric_names == ("train_loss", "test_loss", "train_accuracy", "test_accuracy")
    assert set(jax.eval_shape(w.evaluate, w.init(jax.random.PRNGKey(0))[0], {}, w.data)) == set(
        mnist.workload().metric_names)
    assert w.info["n_test"] == 13 and w.info["eval_test_examples"] == 13
    assert w.data["eval_test_idx"].shape == (3, 5)  # 13 padded to 15


def test_batches_walk_one_permutation_per_epoch_and_drop_the_remainder():
    w = tiny_workload(n_train=40)
    key = jax.random.PRNGKey(3)
    sample = jax.jit(w.sample_batch, static_argnums=3)
    # Recover the indices from the images: each training image is unique.
    flat = np.asarray(w.data["train_x"]).reshape(40, -1)

    def indices(batch):
        imgs = np.asarray(batch["image"]).reshape(len(batch["image"]), -1)
        return [int(np.flatnonzero((flat == im).all(1))[0]) for im in imgs]

    batch_size = 12  # 3 full batches per epoch, 4 images dropped
    epoch0 = [indices(sample(w.data, key, s, batch_size)) for s in range(3)]
    seen = sum(epoch0, [])
    assert len(seen) == len(set(seen)) == 36  # disjoint within the epoch
    epoch1 = [indices(sample(w.data, key, s, batch_size)) for s in range(3, 6)]
    assert epoch1 != epoch0 and len(set(sum(epoch1, []))) == 36  # a new permutation
    again = indices(sample(w.data, key, 4, batch_size))
    assert again == epoch1[1]  # a pure function of (key, step)
    other = indices(sample(w.data, jax.random.PRNGKey(4), 0, batch_size))
    assert other != epoch0[0]
    batch = sample(w.data, key, 0, batch_size)
    np.testing.assert_array_equal(np.asarray(batch["label"]), np.asarray(w.data["train_y"])[epoch0[0]])


@pytest.mark.parametrize("n", [1, 2, 3, 40, 1000, 8000, 65537])
def test_permuted_is_a_keyed_permutation(n):
    f = jax.jit(mnist.permuted, static_argnums=2)
    a = np.asarray(f(jax.random.PRNGKey(1), jnp.arange(n), n))
    assert sorted(a.tolist()) == list(range(n))
    if n >= 1000:
        b = np.asarray(f(jax.random.PRNGKey(2), jnp.arange(n), n))
        assert (a != b).mean() > 0.99
        assert abs(np.corrcoef(np.arange(n), a)[0, 1]) < 0.05  # no trace of the input order
        part = np.asarray(f(jax.random.PRNGKey(1), jnp.arange(10, 20), n))
        np.testing.assert_array_equal(part, a[10:20])


def test_sliced_eval_matches_a_direct_computation():
    w = tiny_workload(n_train=40, n_test=13, train_examples=17, slice_=5)
    params, state = w.init(jax.random.PRNGKey(0))
    got = jax.jit(w.evaluate)(params, state, w.data)
    net = mnist_model.CNN(**TINY)

    @jax.jit
    def direct_sums(x, y):
        logits = net.apply({"params": params}, x)
        return jnp.mean(mnist_model.cross_entropy(logits, y)), jnp.mean(mnist_model.correct(logits, y))

    def direct(x, y):
        loss, acc = direct_sums(x, y)
        return float(loss), float(acc)

    subset = mnist.eval_subset(40, 17, seed=0)
    tr_loss, tr_acc = direct(w.data["train_x"][subset], w.data["train_y"][subset])
    te_loss, te_acc = direct(w.data["test_x"], w.data["test_y"])
    assert float(got["train_loss"]) == pytest.approx(tr_loss, rel=1e-5)
    assert float(got["test_loss"]) == pytest.approx(te_loss, rel=1e-5)
    assert float(got["train_accuracy"]) == pytest.approx(tr_acc, abs=1e-6)
    assert float(got["test_accuracy"]) == pytest.approx(te_acc, abs=1e-6)


def test_tiny_cnn_learns_with_adam():
    w = tiny_workload(n_train=40, n_test=13)
    tx = optax.adam(0.03)
    key = jax.random.PRNGKey(1)
    params, _ = w.init(key)
    state = tx.init(params)

    @jax.jit
    def step(params, state, s):
        batch = w.sample_batch(w.data, key, s, 10)
        loss, grads = jax.value_and_grad(train_loss, argnums=1)(w, params, w.data, batch)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    before = jax.jit(w.evaluate)(params, {}, w.data)
    for s in range(100):
        params, state, loss = step(params, state, s)
    after = jax.jit(w.evaluate)(params, {}, w.data)
    assert float(after["train_loss"]) < 0.5 * float(before["train_loss"])
    assert float(after["train_accuracy"]) > 0.8


def test_strategy_per_backend():
    assert mnist.choose_strategy("cpu") == Strategy(scan=True, vmap_replicates=False)
    assert mnist.choose_strategy("gpu") == Strategy(scan=True, vmap_replicates=True)
    assert mnist.choose_strategy("tpu").label == "scan+vmap"


def test_batch_larger_than_the_training_set_is_refused():
    w = tiny_workload(n_train=40)
    with pytest.raises(ValueError, match="exceeds the 40 training images"):
        w.sample_batch(w.data, jax.random.PRNGKey(0), 0, 41)


@pytest.mark.slow
def test_every_engine_strategy_gives_the_same_run():
    from optui.engine import core

    w = tiny_workload(n_train=40, n_test=13)
    hp = {"learning_rate": np.array([0.03, 0.01, 0.02]), "b1": np.full(3, 0.9),
          "b2": np.full(3, 0.999), "eps": np.full(3, 1e-8)}
    keys = core.member_keys(0, 3)
    runs = {}
    for scan in (False, True):
        for vmap in (False, True):
            runner = core.GroupRunner(w, "adam", 10, Strategy(scan, vmap))
            outs = [out for out, _ in core.run_group(runner, keys, hp, 12, 3)]
            runs[(scan, vmap)] = (np.concatenate([o.minibatch_loss for o in outs], axis=1),
                                  outs[-1].eval["test_loss"])
    ref_losses, ref_eval = runs[(False, False)]
    assert ref_losses.shape == (3, 12) and np.isfinite(ref_losses).all()
    assert not np.allclose(ref_losses[0], ref_losses[1])  # members really differ
    for losses, test_loss in runs.values():
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(test_loss, ref_eval, rtol=1e-5)
