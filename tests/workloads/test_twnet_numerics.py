"""TwNet numerics: cosines against a naive reference, gradients against finite differences, and no
NaN at the zero cases (a user with no tokens, all-zero weights, a batch of non-edges)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optui.workloads import twnet
from optui.workloads.twnet_data import TwNetData, all_pairs, split_edges

N_USERS, N_VOCAB = 7, 9


def small_data(seed: int = 0, empty_user: int | None = 2) -> TwNetData:
    rng = np.random.default_rng(seed)
    counts = rng.poisson(1.5, size=(N_USERS, N_VOCAB)).astype(np.float32)
    if empty_user is not None:
        counts[empty_user] = 0.0  # this user has no tokens
    pairs = all_pairs(N_USERS)
    strength = rng.choice(np.array([0.0, 0.5, 1.0], np.float32), size=len(pairs))
    train, test = split_edges(len(pairs), 0.75, seed)
    return TwNetData(counts, pairs, strength, train, test)


def naive_similarity(x: np.ndarray, counts: np.ndarray, a: int, b: int) -> float:
    u, v = counts[a] * x, counts[b] * x
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    return 0.0 if nu == 0 or nv == 0 else float(u @ v / (nu * nv))


def weights(seed=1):
    return np.random.default_rng(seed).uniform(0.2, 2.0, size=N_VOCAB).astype(np.float32)


def test_edge_similarity_equals_naive_cosine():
    d = small_data()
    x = weights()
    got = np.asarray(twnet.edge_similarity(jnp.asarray(x), jnp.asarray(d.counts), jnp.asarray(d.edges)))
    want = [naive_similarity(x, d.counts, a, b) for a, b in d.edges]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # The user with no tokens is similar to nobody.
    touches_empty = (d.edges == 2).any(axis=1)
    assert np.all(got[touches_empty] == 0.0) and np.all(got[~touches_empty] > 0.0)


def test_edge_similarity_with_negative_weights_is_the_cosine_of_weighted_vectors():
    # Only x**2 enters the cosine of (counts * x) vectors with non-negative counts.
    d = small_data(empty_user=None)
    x = weights() * np.where(np.arange(N_VOCAB) % 2 == 0, 1.0, -1.0).astype(np.float32)
    got = np.asarray(twnet.edge_similarity(jnp.asarray(x), jnp.asarray(d.counts), jnp.asarray(d.edges)))
    want = [naive_similarity(x, d.counts, a, b) for a, b in d.edges]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_all_similarities_agrees_with_edge_similarity():
    d = small_data()
    x, counts = jnp.asarray(weights(3)), jnp.asarray(d.counts)
    sims = np.asarray(twnet.all_similarities(x, counts))
    edge = np.asarray(twnet.edge_similarity(x, counts, jnp.asarray(d.edges)))
    np.testing.assert_allclose(sims[d.edges[:, 0], d.edges[:, 1]], edge, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sims, sims.T, rtol=1e-6, atol=1e-7)
    diag = np.diag(sims)
    assert diag[2] == 0.0
    np.testing.assert_allclose(np.delete(diag, 2), 1.0, rtol=1e-5)


def test_cosine_distance_and_mse():
    p = jnp.array([0.2, 0.0, 0.9])
    t = jnp.array([0.5, 0.0, 1.0])
    want = 1.0 - float(np.dot(p, t) / (np.linalg.norm(p) * np.linalg.norm(t)))
    assert float(twnet.cosine_distance(p, t)) == pytest.approx(want, rel=1e-6)
    assert float(twnet.mse(p, t)) == pytest.approx(np.mean((np.asarray(p) - np.asarray(t)) ** 2), rel=1e-6)
    # Zero vectors: distance 1, never NaN.
    assert float(twnet.cosine_distance(jnp.zeros(3), t)) == 1.0
    assert float(twnet.cosine_distance(p, jnp.zeros(3))) == 1.0


def test_evaluate_agrees_with_the_minibatch_loss_over_each_split():
    d = small_data()
    for loss in ("cosine", "mse"):
        w = twnet.make_workload(d, loss=loss)
        x = jnp.asarray(weights(4))
        ev = w.evaluate(x, {}, w.data)
        for split in ("train", "test"):
            full = minibatch_loss(w, x, w.data, w.data[split])
            assert float(ev[f"{split}_loss"]) == pytest.approx(float(full), rel=1e-5), (loss, split)


def test_init_is_all_ones_and_batches_are_training_edges():
    d = small_data()
    w = twnet.make_workload(d)
    x, model_state = w.init(jax.random.PRNGKey(0))
    assert model_state == {}  # a linear model keeps no state
    assert x.shape == (N_VOCAB,) and x.dtype == jnp.float32 and bool(jnp.all(x == 1.0))
    key = jax.random.PRNGKey(7)
    batch = np.asarray(w.sample_batch(w.data, key, jnp.int32(3), 64))
    assert batch.shape == (64,)
    assert set(batch.tolist()) <= set(d.train.tolist())
    again = np.asarray(w.sample_batch(w.data, key, jnp.int32(3), 64))
    other = np.asarray(w.sample_batch(w.data, key, jnp.int32(4), 64))
    assert np.array_equal(batch, again) and not np.array_equal(batch, other)


# --- no NaN at the zero cases -------------------------------------------------------------------

def minibatch_loss(w, x, data, edges):
    """The workload's training loss (no model state; its key is unused)."""
    loss, state = w.loss(x, {}, data, edges, jax.random.PRNGKey(0))
    assert state == {}
    return loss


def loss_and_grad(w, x, edges):
    loss, grad = jax.value_and_grad(minibatch_loss, argnums=1)(w, jnp.asarray(x), w.data, jnp.asarray(edges))
    return float(loss), np.asarray(grad)


@pytest.mark.parametrize("loss", ["cosine", "mse"])
def test_user_without_tokens_gives_finite_loss_and_gradient(loss):
    d = small_data(empty_user=2)
    w = twnet.make_workload(d, loss=loss)
    edges = np.flatnonzero((d.edges == 2).any(axis=1))  # only edges of the empty user
    value, grad = loss_and_grad(w, weights(), edges)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    value, grad = loss_and_grad(w, weights(), np.arange(len(d.edges)))
    assert np.isfinite(value) and np.all(np.isfinite(grad)) and np.any(grad != 0)


@pytest.mark.parametrize("loss", ["cosine", "mse"])
def test_all_zero_weights_give_finite_loss_and_gradient(loss):
    d = small_data()
    w = twnet.make_workload(d, loss=loss, init=0.0)
    x, _ = w.init(jax.random.PRNGKey(0))
    value, grad = loss_and_grad(w, x, np.arange(len(d.edges)))
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    if loss == "cosine":
        assert value == 1.0  # every similarity is 0
    ev = w.evaluate(x, {}, w.data)
    assert all(np.isfinite(float(v)) for v in ev.values())


@pytest.mark.parametrize("loss", ["cosine", "mse"])
def test_batch_of_non_edges_gives_finite_loss_and_gradient(loss):
    d = small_data()
    d.strength[:] = np.where(np.arange(len(d.strength)) < 5, 0.0, d.strength)
    w = twnet.make_workload(d, loss=loss)
    value, grad = loss_and_grad(w, weights(), np.arange(5))  # all strengths 0
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    if loss == "cosine":
        assert value == 1.0


def test_eval_with_an_empty_user_is_finite():
    d = small_data(empty_user=0)
    w = twnet.make_workload(d)
    ev = w.evaluate(jnp.asarray(weights()), {}, w.data)
    assert all(np.isfinite(float(v)) for v in ev.values())


# --- gradients against finite differences, in float64 ------------------------------------------

@pytest.mark.parametrize("loss", ["cosine", "mse"])
def test_gradient_matches_central_differences(loss):
    d = small_data(seed=5, empty_user=4)
    w = twnet.make_workload(d, loss=loss)
    edges = np.array([0, 3, 5, 8, 11, 12, 15, 17, 20], np.int32)  # includes edges of the empty user
    x0 = np.random.default_rng(2).uniform(0.3, 1.7, size=N_VOCAB)
    # Scoped: x64 must not leak into other tests.
    with jax.enable_x64(True):
        data = {
            "counts": jnp.asarray(d.counts / d.counts.max(), jnp.float64),
            "pairs": jnp.asarray(d.edges),
            "strength": jnp.asarray(d.strength, jnp.float64),
        }
        e = jnp.asarray(edges)
        f = lambda x: minibatch_loss(w, x, data, e)
        x = jnp.asarray(x0, jnp.float64)
        grad = np.asarray(jax.grad(f)(x))
        assert grad.dtype == np.float64
        h = 1e-6
        numeric = np.empty(N_VOCAB)
        for k in range(N_VOCAB):
            dx = np.zeros(N_VOCAB)
            dx[k] = h
            numeric[k] = (float(f(jnp.asarray(x0 + dx))) - float(f(jnp.asarray(x0 - dx)))) / (2 * h)
    assert np.abs(grad).max() > 1e-4  # not trivially zero
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)
    assert jnp.ones(2).dtype == jnp.float32  # the x64 context did not leak


def test_overflowing_weights_give_a_non_finite_loss():
    d = small_data()
    w = twnet.make_workload(d)
    x = jnp.full((N_VOCAB,), 1e30, jnp.float32)  # x * x overflows float32
    value = float(minibatch_loss(w, x, w.data, jnp.arange(len(d.edges))))
    assert not np.isfinite(value)
