"""The report's MNIST CNN (Flax linen) with its loss and accuracy.

Conv32 3x3, relu, avg_pool 2x2/2, Conv64 3x3, relu, avg_pool 2x2/2, flatten, Dense256, relu,
Dense10. Widths are settings so tests can build a tiny copy that compiles in a moment.

The two 3x3 convolutions have two interchangeable implementations with the same parameters
(names, shapes, initialisers of flax's nn.Conv) and the same maths:
  "xla"      lax.conv_general_dilated, XLA's own convolution;
  "patches"  the 9 shifted copies of the input side by side, times the kernel as one matrix.
On XLA's CPU runtime the conv *gradient* is slow, and slower still inside lax.scan or vmap,
while a matrix product and its gradient are fast everywhere; the forward conv alone is fastest
as "xla". So on a CPU the workload trains with "patches" and evaluates with "xla"
(benchmarks/bench_mnist.py --kernels measures all four).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn

N_CLASSES = 10
IMAGE_SHAPE = (28, 28, 1)


def shifted_patches(x: jax.Array) -> jax.Array:
    """(n, h, w, c) -> (n, h, w, 9c): each pixel's 3x3 neighbourhood (zero-padded, SAME)."""
    _, h, w, _ = x.shape
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return jnp.concatenate([padded[:, i:i + h, j:j + w, :] for i in range(3) for j in range(3)], -1)


class Conv3x3(nn.Module):
    """A 3x3 SAME convolution with nn.Conv's parameters, computed by `implementation`."""

    features: int
    implementation: str = "xla"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c_in = x.shape[-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (3, 3, c_in, self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        if self.implementation == "patches":
            y = shifted_patches(x) @ kernel.reshape(9 * c_in, self.features)
        else:
            y = jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME",
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + bias


def avg_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2 average pool, stride 2, on even sizes; as a reshape its gradient is a broadcast."""
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


class CNN(nn.Module):
    conv1: int = 32
    conv2: int = 64
    dense: int = 256
    conv: str = "xla"  # "xla" or "patches"; parameters are the same for both

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = Conv3x3(self.conv1, self.conv, name="Conv_0")(x)
        x = avg_pool_2x2(nn.relu(x))
        x = Conv3x3(self.conv2, self.conv, name="Conv_1")(x)
        x = avg_pool_2x2(nn.relu(x))
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(features=self.dense)(x))
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
