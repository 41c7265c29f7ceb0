"""What an optimiser is to optui: a factory from traced hyperparameters to an optax transformation,
plus the hyperparameters it declares (defaults, allowed ranges, help).

The factory runs inside the compiled training step. Every value in its `hp` dict is a traced
scalar (float32; one value per replicate or trial once vmapped), so the factory must use the
values only in arithmetic, never in Python `if`s or as shapes. New values then never recompile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import optax

from ..schema import Field

Factory = Callable[[dict[str, Any]], optax.GradientTransformation]
EvalParams = Callable[[Any, Any], Any]

# Engine-supplied inputs a factory may ask for (see OptimizerSpec.inputs).
TOTAL_STEPS = "total_steps"  # the member's training steps: sizes schedules from the budget
MEMBER_SEED = "member_seed"  # a per-replicate integer (exact in float32): seeds optimiser noise
ENGINE_INPUTS = (TOTAL_STEPS, MEMBER_SEED)


@dataclass(frozen=True)
class OptimizerSpec:
    """One optimiser.

    name: what presets write (`optimizer = "adam"`); for plug-ins the reference they wrote.
    summary: one line for `optui optimizers`.
    hyperparams: name -> Field (default, range, help); all numeric, all traced.
    build: hp dict -> optax.GradientTransformation (hp values are traced scalars).
    source: "optax", "optax.contrib" or where a plug-in came from.
    schedule_param: the hyperparameter a learning-rate schedule multiplies (passed to the factory
      as a schedule function of the step count, which optax accepts wherever a learning rate
      goes); None when the optimiser takes no schedule.
    eval_params: (opt_state, params) -> the parameters to evaluate, for optimisers whose authors
      evaluate elsewhere than where gradients are taken (schedule-free); None: the parameters.
    inputs: engine inputs the factory reads from hp besides its hyperparameters
      (TOTAL_STEPS, MEMBER_SEED).
    uses_loss: the transformation's update needs the minibatch loss (`value=`), as Polyak's
      step size does; the engine always passes it.
    note: what the optimiser does differently here, or what stays fixed (shown by
      `optui optimizers NAME`).
    """

    name: str
    summary: str
    hyperparams: dict[str, Field]
    build: Factory
    source: str = "optax"
    schedule_param: str | None = "learning_rate"
    eval_params: EvalParams | None = None
    inputs: tuple[str, ...] = ()
    uses_loss: bool = False
    note: str = ""
    reference: str = ""


# -- declarations shared by the catalogue ---------------------------------------------------------

def step_size(default: float | None = None, help: str = "step size (alpha)") -> Field:
    """A learning rate: > 0; required unless the optimiser publishes a default."""
    if default is None:
        return Field("float", low=0.0, low_open=True, help=help)
    return Field("float", default, low=0.0, low_open=True, help=help)


def decay(default: float, help: str = "") -> Field:
    """An exponential decay rate in [0, 1)."""
    return Field("float", default, low=0.0, high=1.0, high_open=True, help=help)


def unit(default: float, help: str = "") -> Field:
    """A fraction in [0, 1]."""
    return Field("float", default, low=0.0, high=1.0, help=help)


def nonneg(default: float, help: str = "") -> Field:
    return Field("float", default, low=0.0, help=help)


def positive(default: float, help: str = "") -> Field:
    return Field("float", default, low=0.0, low_open=True, help=help)


def eps(default: float, help: str = "numerical stability term") -> Field:
    return Field("float", default, low=0.0, help=help)


def weight_decay(default: float, help: str = "decoupled weight decay rate") -> Field:
    return Field("float", default, low=0.0, help=help)


def spec(name: str, summary: str, build: Factory, source: str = "optax", **kwargs: Any) -> OptimizerSpec:
    """An OptimizerSpec with hyperparameters as keyword Fields (their order is kept)."""
    options = {k: kwargs.pop(k) for k in ("schedule_param", "eval_params", "inputs", "uses_loss",
                                           "note", "reference") if k in kwargs}
    return OptimizerSpec(name, summary, dict(kwargs), build, source, **options)
