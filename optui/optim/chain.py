"""One config's full transformation: optional clipping, the optimiser with its (scheduled)
learning rate, optional decoupled weight decay. Every number is traced data.

Elements are present only when the config sets them, so a config without extras gets exactly
the optimiser's own transformation (same numbers and checkpoint layout as before extras existed).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from ..schema import Field
from . import schedules
from .spec import TOTAL_STEPS, OptimizerSpec

CLIP_NORM = "clip_norm"
CLIP_VALUE = "clip_value"
WEIGHT_DECAY = "weight_decay"

ELEMENT_FIELDS: dict[str, Field] = {
    CLIP_NORM: Field("float", None, low=0.0, low_open=True,
                     help="scale the gradient down to this global norm when it is larger"),
    CLIP_VALUE: Field("float", None, low=0.0, low_open=True,
                      help="clip every gradient entry to [-clip_value, clip_value]"),
    WEIGHT_DECAY: Field("float", None, low=0.0,
                        help="decoupled weight decay: parameters shrink by learning rate x this per step"),
}


class DecoupledDecayState(NamedTuple):
    count: jax.Array


def decoupled_weight_decay(rate: Any, step_size: Any) -> optax.GradientTransformation:
    """params -= step_size(t) * rate * params after the optimiser's update (as AdamW does).

    step_size is a number or a schedule; its own count keeps in step with the optimiser's.
    """

    def init(params):
        del params
        return DecoupledDecayState(jnp.zeros([], jnp.int32))

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("decoupled weight decay needs the parameters")
        lr = step_size(state.count) if callable(step_size) else step_size
        updates = jax.tree.map(lambda u, p: u - (lr * rate * p).astype(u.dtype), updates, params)
        return updates, DecoupledDecayState(optax.safe_increment(state.count))

    return optax.GradientTransformation(init, update)


def assemble(spec: OptimizerSpec, hp: dict[str, Any]) -> optax.GradientTransformationExtraArgs:
    """The config's transformation from its hyperparameters (traced scalars or numbers).

    hp holds the optimiser's own hyperparameters, the chain elements the config set
    (schedule and its fractions, clip_norm, clip_value, weight_decay when not the optimiser's
    own) and the engine inputs (total_steps, member_seed) when present.
    """
    own = {k: hp[k] for k in spec.hyperparams}
    own.update({k: hp[k] for k in spec.inputs if k in hp})
    step_size: Any = own.get(spec.schedule_param or "learning_rate", 1.0)
    if schedules.SCHEDULE in hp and spec.schedule_param is not None:
        # A template built without the engine's inputs (a checkpoint's shape) still has the
        # same state layout: the total only changes numbers.
        step_size = schedules.scheduled(own[spec.schedule_param], hp, hp.get(TOTAL_STEPS, 1.0))
        own[spec.schedule_param] = step_size
    tx = spec.build(own)
    before = []
    if CLIP_VALUE in hp:
        before.append(optax.clip(hp[CLIP_VALUE]))
    if CLIP_NORM in hp:
        before.append(optax.clip_by_global_norm(hp[CLIP_NORM]))
    after = []
    if WEIGHT_DECAY in hp and WEIGHT_DECAY not in spec.hyperparams:
        after.append(decoupled_weight_decay(hp[WEIGHT_DECAY], step_size))
    if before or after:
        tx = optax.chain(*before, tx, *after)
    # The engine passes the minibatch loss (value=...) to every update; plain transformations
    # ignore it, Polyak-type ones use it.
    return optax.with_extra_args_support(tx)
