"""Quasi-hyperbolic momentum (QHM; Ma & Yarats, "Quasi-hyperbolic momentum and Adam for deep
learning", ICLR 2019), written with optax's building blocks.

QHM steps along a weighted average of the plain gradient and a momentum buffer:

    g_t   = beta * g_{t-1} + (1 - beta) * grad_t        (an exponential moving average)
    theta = theta - lr * ((1 - nu) * grad_t + nu * g_t)

nu = 0 is plain SGD, nu = 1 is (normalised) momentum SGD; the authors recommend nu = 0.7 and
beta = 0.999 as a starting point.

The module needs nothing from optui: optui reads the factory's `hyperparams` attribute (defaults,
ranges, help) and calls it inside its compiled training step with every hyperparameter as a
traced scalar, so the factory uses them only in arithmetic.
"""

from __future__ import annotations

from typing import Any

import jax
import optax


def quasi_hyperbolic(beta: Any, nu: Any) -> optax.GradientTransformation:
    """Replace each gradient by (1 - nu) * gradient + nu * its moving average (decay beta)."""
    average = optax.ema(decay=beta, debias=False)

    def init(params):
        return average.init(params)

    def update(grads, state, params=None):
        del params
        buffer, state = average.update(grads, state)
        mixed = jax.tree.map(lambda g, b: (1.0 - nu) * g + nu * b, grads, buffer)
        return mixed, state

    return optax.GradientTransformation(init, update)


def qhm(hp: dict[str, Any]) -> optax.GradientTransformation:
    """QHM: quasi-hyperbolic momentum (Ma & Yarats, 2019)."""
    # learning_rate may be a number or, when the preset sets a schedule, a function of the step
    # count: scale_by_learning_rate takes either.
    return optax.chain(quasi_hyperbolic(hp["beta"], hp["nu"]), optax.scale_by_learning_rate(hp["learning_rate"]))


qhm.summary = "QHM: quasi-hyperbolic momentum (Ma & Yarats, 2019)"
qhm.hyperparams = {
    "learning_rate": {"low": 0, "low_open": True, "help": "step size"},
    "beta": {"default": 0.999, "low": 0, "high": 1, "high_open": True,
             "help": "decay of the momentum buffer (the authors' default)"},
    "nu": {"default": 0.7, "low": 0, "high": 1,
           "help": "weight of the momentum buffer against the plain gradient (0: SGD, 1: momentum)"},
}
