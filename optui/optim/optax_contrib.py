"""optax.contrib's optimisers that people compare today, with hyperparameters as traced data.

Schedule-free methods are evaluated where their authors evaluate: at the averaged point x, not at
the point y where gradients are taken (OptimizerSpec.eval_params). AdEMAMix warms its slow
momentum and mixing weight up over the run, as its paper prescribes, sized from the budget.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from optax import contrib

from .spec import (TOTAL_STEPS, OptimizerSpec, decay, eps, nonneg, positive, spec, step_size,
                   weight_decay)
from ..schema import Field

SOURCE = "optax.contrib"
_B1 = decay(0.9, "decay of the first-moment (gradient) average")
_B2 = decay(0.999, "decay of the second-moment average")


def schedule_free_eval_params(opt_state: Any, params: Any) -> Any:
    """The averaged iterate x that schedule-free methods evaluate (Defazio et al., 2024).

    The schedule-free state may sit anywhere in a chain (after clipping, before weight decay),
    so it is found by type.
    """
    found = [s for s in jax.tree.leaves(opt_state, is_leaf=lambda s: isinstance(s, contrib.ScheduleFreeState))
             if isinstance(s, contrib.ScheduleFreeState)]
    if not found:
        return params
    return contrib.schedule_free_eval_params(found[0], params)


def _ademamix(h: dict[str, Any]) -> optax.GradientTransformation:
    """AdEMAMix with the paper's warm-up of alpha (linear) and b3 (from b1, in half-life terms)
    over `mix_warmup` of the run; 0 switches the warm-up off."""
    b1, b3, alpha = h["b1"], h["b3"], h["alpha"]
    horizon = h["mix_warmup"] * h.get(TOTAL_STEPS, 1.0)

    def progress(count):
        return jnp.where(horizon > 0, jnp.minimum(count / jnp.maximum(horizon, 1.0), 1.0), 1.0)

    def alpha_t(count):
        return progress(count) * alpha

    def b3_t(count):
        t = progress(count)
        lb1, lb3 = jnp.log(b1), jnp.log(b3)
        # Interpolates the half-life (1/log b) linearly between b1's and b3's.
        mixed = jnp.exp(lb1 * lb3 / ((1.0 - t) * lb3 + t * lb1))
        return jnp.minimum(mixed, b3)

    return contrib.ademamix(h["learning_rate"], b1=b1, b2=h["b2"], b3=b3_t, alpha=alpha_t, eps=h["eps"],
                            weight_decay=h["weight_decay"])


def _mechanize(h: dict[str, Any]) -> optax.GradientTransformation:
    base = optax.adam(h["learning_rate"], b1=h["b1"], b2=h["b2"])
    return contrib.mechanize(base, weight_decay=h["weight_decay"], eps=h["eps"], s_init=h["s_init"])


_LR_FREE = "multiplier of the learned step size (1 = as the method finds it)"

CATALOGUE: tuple[OptimizerSpec, ...] = (
    spec("schedule_free_adamw", "schedule-free AdamW (Defazio et al., 2024)",
         lambda h: contrib.schedule_free_adamw(h["learning_rate"], b1=h["b1"], b2=h["b2"], eps=h["eps"],
                                               weight_decay=h["weight_decay"],
                                               weight_lr_power=h["weight_lr_power"]),
         SOURCE, learning_rate=step_size(0.0025, "step size (the authors' default)"),
         b1=decay(0.9, "interpolation between the average x and the base sequence z"), b2=_B2,
         eps=eps(1e-8), weight_decay=weight_decay(0.0),
         weight_lr_power=nonneg(2.0, "the average weights steps by learning_rate**power"),
         eval_params=schedule_free_eval_params,
         note="evaluated at the averaged parameters x; the authors pair it with a short warm-up "
              "(schedule = \"constant\" with warmup_fraction)"),
    spec("schedule_free_sgd", "schedule-free SGD (Defazio et al., 2024)",
         lambda h: contrib.schedule_free_sgd(h["learning_rate"], b1=h["b1"], weight_decay=h["weight_decay"],
                                             weight_lr_power=h["weight_lr_power"]),
         SOURCE, learning_rate=step_size(1.0, "step size (the authors' default)"),
         b1=decay(0.9, "interpolation between the average x and the base sequence z"),
         weight_decay=weight_decay(0.0, "weight decay added to the gradient"),
         weight_lr_power=nonneg(2.0, "the average weights steps by learning_rate**power"),
         eval_params=schedule_free_eval_params,
         note="evaluated at the averaged parameters x"),
    spec("prodigy", "Prodigy: distance-adaptive step size (Mishchenko & Defazio, 2024)",
         lambda h: contrib.prodigy(h["learning_rate"], betas=(h["b1"], h["b2"]), eps=h["eps"],
                                   estim_lr0=h["estim_lr0"], estim_lr_coef=h["estim_lr_coef"],
                                   weight_decay=h["weight_decay"]),
         SOURCE, learning_rate=step_size(1.0, _LR_FREE), b1=_B1, b2=_B2, eps=eps(1e-8),
         estim_lr0=positive(1e-6, "initial estimate of the distance to a solution"),
         estim_lr_coef=positive(1.0, "multiplier of the distance estimate"),
         weight_decay=weight_decay(0.0),
         note="beta3 stays optax's default, sqrt(b2)"),
    spec("muon", "Muon: orthogonalised momentum for matrices (Jordan et al., 2024)",
         lambda h: contrib.muon(h["learning_rate"], beta=h["beta"], eps=h["eps"], weight_decay=h["weight_decay"],
                                adam_b1=h["adam_b1"], adam_b2=h["adam_b2"],
                                adam_weight_decay=h["adam_weight_decay"]),
         SOURCE, learning_rate=step_size(0.02, "step size (the authors' default)"),
         beta=decay(0.95, "momentum decay"), eps=eps(1e-8), weight_decay=weight_decay(0.0),
         adam_b1=decay(0.9, "Adam's b1 for parameters that are not matrices"),
         adam_b2=decay(0.999, "Adam's b2 for parameters that are not matrices"),
         adam_weight_decay=weight_decay(0.0, "weight decay for parameters that are not matrices"),
         note="Newton-Schulz (5 steps, Nesterov) on 2-D weights; other parameters (biases, conv "
              "kernels, TwNet's weight vector) use Adam at the same learning rate"),
    spec("adopt", "ADOPT: Adam that converges for any b2 (Taniguchi et al., 2024)",
         lambda h: contrib.adopt(h["learning_rate"], b1=h["b1"], b2=h["b2"], eps=h["eps"]),
         SOURCE, learning_rate=step_size(1e-3, "step size (the authors' default)"), b1=_B1,
         b2=decay(0.9999, "decay of the second-moment average"), eps=eps(1e-6),
         note="with the authors' clipping of the early normalised gradient"),
    spec("ademamix", "AdEMAMix: a fast and a slow momentum mixed (Pagliardini et al., 2024)",
         _ademamix,
         SOURCE, learning_rate=step_size(help="step size; the paper uses AdamW's"), b1=_B1, b2=_B2,
         b3=decay(0.9999, "decay of the slow momentum"),
         alpha=nonneg(5.0, "weight of the slow momentum"), eps=eps(1e-8), weight_decay=weight_decay(0.0),
         mix_warmup=Field("float", 1.0, low=0.0, high=1.0,
                          help="fraction of the run over which alpha and b3 warm up (paper: all of it)"),
         inputs=(TOTAL_STEPS,)),
    spec("dadapt_adamw", "D-Adaptation AdamW (Defazio & Mishchenko, 2023)",
         lambda h: contrib.dadapt_adamw(h["learning_rate"], betas=(h["b1"], h["b2"]), eps=h["eps"],
                                        estim_lr0=h["estim_lr0"], weight_decay=h["weight_decay"]),
         SOURCE, learning_rate=step_size(1.0, _LR_FREE), b1=_B1, b2=_B2, eps=eps(1e-8),
         estim_lr0=positive(1e-6, "initial estimate of the distance to a solution"),
         weight_decay=weight_decay(0.0)),
    spec("dog", "DoG: distance over gradients (Ivgi et al., 2023)",
         lambda h: contrib.dog(h["learning_rate"], init_step=("heuristic", h["reps_rel"]), eps=h["eps"],
                               weight_decay=h["weight_decay"]),
         SOURCE, learning_rate=step_size(1.0, _LR_FREE),
         reps_rel=positive(1e-6, "first step's distance relative to the initial parameters' norm"),
         eps=eps(1e-8), weight_decay=weight_decay(0.0, "weight decay added to the gradient"),
         note="the authors recommend parameter averaging, which optui does not add"),
    spec("dowg", "DoWG: distance over weighted gradients (Khaled et al., 2023)",
         lambda h: contrib.dowg(h["learning_rate"], eps=h["eps"], weight_decay=h["weight_decay"]),
         SOURCE, learning_rate=step_size(1.0, _LR_FREE), eps=eps(1e-4),
         weight_decay=weight_decay(0.0, "weight decay added to the gradient")),
    spec("cocob", "COCOB-Backprop: coin betting, no step size (Orabona & Tommasi, 2017)",
         lambda h: contrib.cocob(h["learning_rate"], alpha=h["alpha"], eps=h["eps"],
                                 weight_decay=h["weight_decay"]),
         SOURCE, learning_rate=step_size(1.0, _LR_FREE), alpha=positive(100.0, "bounds the early bets"),
         eps=eps(1e-8), weight_decay=weight_decay(0.0)),
    spec("mechanize", "Mechanic: a learned scale on Adam's steps (Cutkosky et al., 2023)",
         _mechanize,
         SOURCE, learning_rate=step_size(1.0, "Adam's step size; Mechanic learns the scale (authors: 1)"),
         b1=_B1, b2=_B2, weight_decay=weight_decay(0.01, "Mechanic's own weight decay"),
         eps=eps(1e-8), s_init=positive(1e-6, "initial scale")),
    spec("madgrad", "MADGRAD: momentumised dual averaging (Defazio & Jelassi, 2021)",
         lambda h: contrib.madgrad(h["learning_rate"], momentum=h["momentum"], weight_decay=h["weight_decay"],
                                   eps=h["eps"]),
         SOURCE, learning_rate=step_size(1e-2, "step size (the authors' default)"),
         momentum=decay(0.9, "momentum"), weight_decay=weight_decay(0.0), eps=eps(1e-6)),
    spec("momo", "MoMo: momentum with model-based Polyak steps (Schaipp et al., 2024)",
         lambda h: contrib.momo(h["learning_rate"], beta=h["beta"], lower_bound=h["lower_bound"],
                                weight_decay=h["weight_decay"]),
         SOURCE, learning_rate=step_size(1.0, "upper bound on the step size"), beta=decay(0.9, "momentum"),
         lower_bound=Field("float", 0.0, help="a lower bound on the loss"), weight_decay=weight_decay(0.0),
         uses_loss=True, note="the step uses each minibatch's loss, which the engine passes"),
    spec("momo_adam", "MoMo-Adam: Adam with model-based Polyak steps (Schaipp et al., 2024)",
         lambda h: contrib.momo_adam(h["learning_rate"], b1=h["b1"], b2=h["b2"], eps=h["eps"],
                                     lower_bound=h["lower_bound"], weight_decay=h["weight_decay"]),
         SOURCE, learning_rate=step_size(1e-2, "upper bound on the step size"), b1=_B1, b2=_B2, eps=eps(1e-8),
         lower_bound=Field("float", 0.0, help="a lower bound on the loss"), weight_decay=weight_decay(0.0),
         uses_loss=True, note="the step uses each minibatch's loss, which the engine passes"),
)

REFUSED = {
    "sam": "SAM takes its gradient at a perturbed point, a second forward and backward pass the "
           "engine's one-gradient step does not make",
    "sophia": "Sophia's Hessian estimate needs the loss as a function to differentiate again",
    "dpsgd": "DP-SGD needs per-example gradients; the engine computes one per minibatch",
    "reduce_on_plateau": "not an optimiser but a step-size rule on a monitored loss; use a schedule",
}
