"""A faithful re-implementation of the report's own TwNet training loop, as the baseline to beat.

Like the report's notebook: a Python for-loop over iterations, `random.choice` edge batches,
`grad` of a jitted loss taken afresh at every step, hand-written SGD / Adam updates, and the full
train and test loss computed from Python at every 1% of the run by gathering every edge's pair of
word vectors. The model is optui's (per-edge cosine similarity, cosine distance to the strengths),
so both sides do the same work.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import grad, jit, random, vmap


def make_loss(counts: np.ndarray, pairs: np.ndarray, strength: np.ndarray):
    data_wv = jnp.asarray(counts)
    data_m = jnp.asarray(pairs)
    data_gt = jnp.asarray(strength)

    def cos_pair(v):
        v1, v2 = v[0], v[1]
        return jnp.sum(v1 * v2) / (jnp.sqrt(jnp.sum(v1 ** 2)) * jnp.sqrt(jnp.sum(v2 ** 2)) + 1e-9)

    vcos = vmap(cos_pair)

    @jit
    def loss_cos(x, m):
        a1 = data_m[m]  # (batch, 2) user indices
        a2 = data_wv[a1]  # (batch, 2, vocab): the whole edge set is ~1 GB at full eval
        sims = vcos(a2 * x)
        gt = data_gt[m]
        return 1.0 - jnp.sum(sims * gt) / (jnp.sqrt(jnp.sum(sims ** 2)) * jnp.sqrt(jnp.sum(gt ** 2)) + 1e-9)

    return loss_cos


def report_style_run(data, optimizer: str, hyperparams: dict, batch_size: int, iterations: int,
                     key, eval_points: int = 100):
    """One replicate; returns (train losses, test losses, minibatch losses) like the report's."""
    loss_cos = make_loss(data.counts / max(float(data.counts.max()), 1.0), data.edges, data.strength)
    m_train = jnp.asarray(data.train)
    m_test = jnp.asarray(data.test)
    x = jnp.ones(data.counts.shape[1])
    f_train, f_test, minibatch = [], [], []
    p = -1
    lr = hyperparams["learning_rate"]
    if optimizer == "adam":
        b1, b2 = hyperparams["b1"], hyperparams["b2"]
        am = jnp.zeros_like(x)
        av = jnp.zeros_like(x)
        ak = 1
    for i in range(iterations):
        p2 = round(i / iterations * eval_points)
        if p2 > p:  # the report's monitor: full train and test loss at every 1%
            p = p2
            f_train.append(float(loss_cos(x, m_train)))
            f_test.append(float(loss_cos(x, m_test)))
        key, sub = random.split(key)
        m = random.choice(sub, m_train, [batch_size])
        value = loss_cos(x, m)
        g = grad(loss_cos)(x, m)
        minibatch.append(float(value))
        if optimizer == "sgd":
            x = x - lr * g
        else:
            am = b1 * am + (1 - b1) * g
            av = b2 * av + (1 - b2) * g ** 2
            mhat = am / (1 - b1 ** ak)
            vhat = av / (1 - b2 ** ak)
            x = x - lr * (mhat / (jnp.sqrt(vhat) + 1e-8))
            ak += 1
    f_train.append(float(loss_cos(x, m_train)))
    f_test.append(float(loss_cos(x, m_test)))
    return np.array(f_train), np.array(f_test), np.array(minibatch)


def report_style_replicates(data, optimizer, hyperparams, batch_size, iterations, replicates,
                            eval_points=100, seed=0):
    """The report's run_multiple: replicates one after another with split keys."""
    seed_key = random.PRNGKey(seed)
    seed_key, sub = random.split(seed_key)
    out = []
    for _ in range(replicates):
        out.append(report_style_run(data, optimizer, hyperparams, batch_size, iterations, sub, eval_points))
        seed_key, sub = random.split(seed_key)
    return out


__all__ = ["report_style_run", "report_style_replicates", "make_loss"]
