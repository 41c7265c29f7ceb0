"""The report's MNIST CNN (Flax linen) with its loss and accuracy.

Conv32 3x3, relu, avg_pool 2x2/2, Conv64 3x3, relu, avg_pool 2x2/2, flatten, Dense256, relu,
Dense10. Widths are settings so tests can build a tiny copy that compiles in a moment.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn

N_CLASSES = 10
IMAGE_SHAPE = (28, 28, 1)


class CNN(nn.Module):
    conv1: int = 32
    conv2: int = 64
    dense: int = 256

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.Conv(features=self.conv1, kernel_size=(3, 3))(x)
        x = nn.relu(x)
        x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
        x = nn.Conv(features=self.conv2, kernel_size=(3, 3))(x)
        x = nn.relu(x)
        x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
        x = x.reshape((x.shape[0], -1))
        x = nn.Dense(features=self.dense)(x)
        x = nn.relu(x)
        return nn.Dense(features=N_CLASSES)(x)


def init_params(model: CNN, key: jax.Array):
    return model.init(key, jnp.zeros((1, *IMAGE_SHAPE), jnp.float32))["params"]


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example softmax cross-entropy against integer labels."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def correct(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example 1.0 where the top class is the label."""
    return (jnp.argmax(logits, -1) == labels).astype(jnp.float32)


def count_params(params) -> int:
    return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))


def flops_per_example(conv1: int = 32, conv2: int = 64, dense: int = 256) -> float:
    """Forward multiply-adds x2 for one 28x28 image (SAME padding); ~9.3 MFLOP for the report's net."""
    c1 = 28 * 28 * conv1 * 9 * 1 * 2
    c2 = 14 * 14 * conv2 * 9 * conv1 * 2
    d1 = 7 * 7 * conv2 * dense * 2
    d2 = dense * N_CLASSES * 2
    return float(c1 + c2 + d1 + d2)
