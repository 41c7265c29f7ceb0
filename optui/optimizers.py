"""Optimiser names -> optax transformations whose numeric hyperparameters are traced data.

The engine builds the transformation inside the compiled step from a dict of arrays, so a
new learning rate (or a batch of trial values, vmapped) never triggers a recompile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import optax

from .schema import Field

_LR = Field("float", low=0.0, low_open=True, help="step size (alpha)")
_DECAY = Field("float", 0.9, low=0.0, high=1.0, high_open=True)
_EPS = Field("float", 1e-8, low=0.0)


@dataclass(frozen=True)
class OptimizerSpec:
    name: str
    summary: str
    hyperparams: dict[str, Field]
    build: Callable[[dict[str, Any]], optax.GradientTransformation]


def _spec(name: str, summary: str, build, **fields: Field) -> OptimizerSpec:
    return OptimizerSpec(name, summary, {"learning_rate": _LR, **fields}, build)


OPTIMIZERS: dict[str, OptimizerSpec] = {
    s.name: s
    for s in (
        _spec("sgd", "constant step size (the report's 'Constant')",
              lambda h: optax.sgd(h["learning_rate"])),
        _spec("momentum", "heavy-ball momentum",
              lambda h: optax.sgd(h["learning_rate"], momentum=h["momentum"]),
              momentum=_DECAY),
        _spec("nesterov", "Nesterov momentum",
              lambda h: optax.sgd(h["learning_rate"], momentum=h["momentum"], nesterov=True),
              momentum=_DECAY),
        _spec("adam", "Adam",
              lambda h: optax.adam(h["learning_rate"], b1=h["b1"], b2=h["b2"], eps=h["eps"]),
              b1=_DECAY, b2=Field("float", 0.999, low=0.0, high=1.0, high_open=True), eps=_EPS),
        _spec("adamw", "Adam with decoupled weight decay",
              lambda h: optax.adamw(h["learning_rate"], b1=h["b1"], b2=h["b2"], eps=h["eps"],
                                    weight_decay=h["weight_decay"]),
              b1=_DECAY, b2=Field("float", 0.999, low=0.0, high=1.0, high_open=True), eps=_EPS,
              weight_decay=Field("float", 1e-4, low=0.0)),
        _spec("rmsprop", "RMSProp",
              lambda h: optax.rmsprop(h["learning_rate"], decay=h["decay"], eps=h["eps"],
                                      momentum=h["momentum"]),
              decay=_DECAY, eps=_EPS, momentum=Field("float", 0.0, low=0.0, high=1.0, high_open=True)),
        _spec("adagrad", "AdaGrad",
              lambda h: optax.adagrad(h["learning_rate"],
                                      initial_accumulator_value=h["initial_accumulator_value"],
                                      eps=h["eps"]),
              initial_accumulator_value=Field("float", 0.1, low=0.0), eps=Field("float", 1e-7, low=0.0)),
        _spec("adamax", "AdaMax",
              lambda h: optax.adamax(h["learning_rate"], b1=h["b1"], b2=h["b2"], eps=h["eps"]),
              b1=_DECAY, b2=Field("float", 0.999, low=0.0, high=1.0, high_open=True), eps=_EPS),
        _spec("lion", "Lion",
              lambda h: optax.lion(h["learning_rate"], b1=h["b1"], b2=h["b2"]),
              b1=_DECAY, b2=Field("float", 0.99, low=0.0, high=1.0, high_open=True)),
    )
}


def known() -> str:
    return ", ".join(OPTIMIZERS)


def hyperparam_names(optimizer: str) -> list[str]:
    return list(OPTIMIZERS[optimizer].hyperparams)


def build(optimizer: str, hyperparams: dict[str, Any]) -> optax.GradientTransformation:
    """The optax transformation; hyperparams may be Python floats or traced scalars."""
    return OPTIMIZERS[optimizer].build(hyperparams)
