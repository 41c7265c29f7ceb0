"""Learning-rate schedules as traced data, sized from each member's budget.

A config picks a kind (`schedule = "cosine"`) and its fractions; the engine supplies the member's
total step count. Everything, the kind included, is an array inside the compiled step: a search
over warm-up fractions, or configs with different schedules, share one program.

Each kind equals one of optax's schedule functions (tests compare them at sampled steps):
    multiplier(t) = t / W                                    for t < W (warm-up from 0)
                  = decay(t - W) over D = T - W steps         afterwards
with W = round(warmup_fraction * T) and decay one of
    constant       1                                          (optax.constant_schedule)
    cosine         f + (1 - f) (1 + cos(pi s / D)) / 2        (optax.cosine_decay_schedule, alpha=f)
    linear         1 + (f - 1) s / D                          (optax.linear_schedule to f)
    exponential    f ** (s / D)                               (optax.exponential_decay, rate f over D)
    step           r ** floor(s / (e D))                      (optax.exponential_decay, staircase)
    warmup_cosine  cosine with a 5% warm-up by default        (optax.warmup_cosine_decay_schedule)
where f = final_fraction, e = step_every, r = step_factor, s = min(t - W, D).
"""

from __future__ import annotations

from typing import Any, Callable

import jax.numpy as jnp

from ..schema import Field

KINDS = ("constant", "cosine", "linear", "exponential", "step", "warmup_cosine")
SCHEDULE = "schedule"
PARAMS = ("warmup_fraction", "final_fraction", "step_every", "step_factor")
KEYS = (SCHEDULE, *PARAMS)

# Which fractions a kind reads, with its defaults.
DEFAULTS: dict[str, dict[str, float]] = {
    "constant": {"warmup_fraction": 0.0},
    "cosine": {"warmup_fraction": 0.0, "final_fraction": 0.0},
    "linear": {"warmup_fraction": 0.0, "final_fraction": 0.0},
    "exponential": {"warmup_fraction": 0.0, "final_fraction": 0.01},
    "step": {"warmup_fraction": 0.0, "step_every": 1.0 / 3.0, "step_factor": 0.1},
    "warmup_cosine": {"warmup_fraction": 0.05, "final_fraction": 0.0},
}

FIELDS: dict[str, Field] = {
    SCHEDULE: Field("str", None, choices=KINDS,
                    help="learning-rate schedule over the run (constant: the report's fixed step)"),
    "warmup_fraction": Field("float", None, low=0.0, high=1.0, high_open=True,
                             help="fraction of the run spent warming up linearly from 0"),
    "final_fraction": Field("float", None, low=0.0, high=1.0,
                            help="learning rate at the end, as a fraction of the peak"),
    "step_every": Field("float", None, low=0.0, high=1.0, low_open=True,
                        help="step schedule: fraction of the decay phase between drops"),
    "step_factor": Field("float", None, low=0.0, high=1.0, low_open=True,
                         help="step schedule: the learning rate is multiplied by this at each drop"),
}


def code(kind: str) -> float:
    """The number a kind travels as (hyperparameters are float arrays)."""
    return float(KINDS.index(kind))


def kind_of(value: float) -> str:
    return KINDS[int(round(value))]


def multiplier(count: Any, hp: dict[str, Any], total_steps: Any) -> Any:
    """The schedule's factor on the learning rate at step `count` (0-based), as a traced scalar."""
    t = jnp.asarray(count, jnp.float32)
    total = jnp.maximum(jnp.asarray(total_steps, jnp.float32), 1.0)
    warm = jnp.round(hp.get("warmup_fraction", 0.0) * total)
    span = jnp.maximum(total - warm, 1.0)
    s = jnp.clip(t - warm, 0.0, span)
    final = hp.get("final_fraction", 0.0)
    every = jnp.maximum(hp.get("step_every", 1.0) * span, 1e-6)
    factor = hp.get("step_factor", 1.0)
    kind = jnp.round(hp[SCHEDULE])
    cosine = final + (1.0 - final) * 0.5 * (1.0 + jnp.cos(jnp.pi * s / span))
    decays = [
        jnp.ones_like(t),                                  # constant
        cosine,                                            # cosine
        1.0 + (final - 1.0) * s / span,                    # linear
        jnp.power(final, s / span),                        # exponential
        jnp.power(factor, jnp.floor(s / every)),           # step
        cosine,                                            # warmup_cosine
    ]
    decayed = jnp.select([kind == i for i in range(len(KINDS))], decays, jnp.ones_like(t))
    ramp = jnp.where(warm > 0, jnp.minimum(t / jnp.maximum(warm, 1.0), 1.0), 1.0)
    return jnp.where(t < warm, ramp, decayed)


def scheduled(base: Any, hp: dict[str, Any], total_steps: Any) -> Callable[[Any], Any]:
    """A step-count -> learning-rate function, which optax accepts wherever a learning rate goes."""
    return lambda count: base * multiplier(count, hp, total_steps)
