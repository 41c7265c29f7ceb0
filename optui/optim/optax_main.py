"""optax's main optimisers, each with its hyperparameters declared as traced data.

Defaults are optax's, which follow each method's paper unless a note says otherwise. Settings
that change the program's structure (booleans, dtypes, integer loop counts) stay at their
defaults; the notes say which.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from .spec import (MEMBER_SEED, OptimizerSpec, decay, eps, nonneg, positive, spec, step_size,
                   weight_decay)
from ..schema import Field

_B2 = decay(0.999, "decay of the second-moment (squared gradient) average")
_B1 = decay(0.9, "decay of the first-moment (gradient) average")
_MOMENTUM = decay(0.9, "momentum (decay of the velocity)")


class GradientNoiseState(NamedTuple):
    count: jax.Array
    key: jax.Array  # a raw uint32 key: checkpoints store it as plain numbers


def gradient_noise(eta: Any, gamma: Any, seed: Any) -> optax.GradientTransformation:
    """Gaussian noise with variance eta / t**gamma added to the gradient (Neelakantan et al.).

    optax's own add_noise keeps a typed PRNG key in its state; this keeps a raw one, seeded per
    replicate, so replicates draw independent noise and checkpoints stay plain arrays.
    """

    def init(params):
        del params
        return GradientNoiseState(jnp.zeros([], jnp.int32),
                                  jax.random.PRNGKey(jnp.asarray(seed).astype(jnp.uint32)))

    def update(updates, state, params=None):
        del params
        count = optax.safe_increment(state.count)
        std = jnp.sqrt(eta / count.astype(jnp.float32) ** gamma)
        key, sample = jax.random.split(state.key)
        leaves, treedef = jax.tree.flatten(updates)
        keys = jax.random.split(sample, max(len(leaves), 1))
        noisy = [u + (std * jax.random.normal(k, u.shape, jnp.float32)).astype(u.dtype)
                 for u, k in zip(leaves, keys)]
        return treedef.unflatten(noisy), GradientNoiseState(count, key)

    return optax.GradientTransformation(init, update)


def _noisy_sgd(h: dict[str, Any]) -> optax.GradientTransformation:
    return optax.chain(gradient_noise(h["eta"], h["gamma"], h.get(MEMBER_SEED, 0.0)),
                       optax.scale_by_learning_rate(h["learning_rate"]))


def _sm3(h: dict[str, Any]) -> optax.GradientTransformation:
    # optax.sm3 scales by a constant; the same chain with scale_by_learning_rate takes a schedule.
    return optax.chain(optax.scale_by_sm3(h["momentum"]), optax.scale_by_learning_rate(h["learning_rate"]))


def _optimistic_adam(h: dict[str, Any]) -> optax.GradientTransformation:
    return optax.optimistic_adam_v2(h["learning_rate"], alpha=h["alpha"], beta=h["beta"], b1=h["b1"],
                                    b2=h["b2"], eps=h["eps"])


CATALOGUE: tuple[OptimizerSpec, ...] = (
    spec("sgd", "constant step size (the report's 'Constant')",
         lambda h: optax.sgd(h["learning_rate"]),
         learning_rate=step_size()),
    spec("momentum", "heavy-ball momentum (Polyak)",
         lambda h: optax.sgd(h["learning_rate"], momentum=h["momentum"]),
         learning_rate=step_size(), momentum=_MOMENTUM),
    spec("nesterov", "Nesterov momentum",
         lambda h: optax.sgd(h["learning_rate"], momentum=h["momentum"], nesterov=True),
         learning_rate=step_size(), momentum=_MOMENTUM),
    spec("adam", "Adam (Kingma & Ba, 2015)",
         lambda h: optax.adam(h["learning_rate"], b1=h["b1"], b2=h["b2"], eps=h["eps"]),
         learning_rate=step_size(help="step size (alpha); the paper suggests 0.001"),
         b1=_B1, b2=_B2, eps=eps(1e-8, "added to the denominator's square root")),
    spec("adamw", "Adam with decoupled weight decay (Loshchilov & Hutter, 2019)",
         lambda h: optax.adamw(h["learning_rate"], b1=h["b1"], b2=h["b2"], eps=h["eps"],
                               weight_decay=h["weight_decay"]),
         learning_rate=step_size(), b1=_B1, b2=_B2, eps=eps(1e-8),
         weight_decay=weight_decay(1e-4, "decoupled weight decay, multiplied by the step size")),
    spec("rmsprop", "RMSProp (Hinton's lecture 6e)",
         lambda h: optax.rmsprop(h["learning_rate"], decay=h["decay"], eps=h["eps"],
                                 momentum=h["momentum"]),
         learning_rate=step_size(), decay=decay(0.9, "decay of the squared-gradient average"),
         eps=eps(1e-8), momentum=decay(0.0, "momentum on the scaled update; 0 = none")),
    spec("adagrad", "AdaGrad (Duchi et al., 2011)",
         lambda h: optax.adagrad(h["learning_rate"],
                                 initial_accumulator_value=h["initial_accumulator_value"], eps=h["eps"]),
         learning_rate=step_size(),
         initial_accumulator_value=nonneg(0.1, "starting value of the squared-gradient sums"),
         eps=eps(1e-7)),
    spec("adamax", "AdaMax: Adam with the infinity norm (Kingma & Ba, 2015)",
         lambda h: optax.adamax(h["learning_rate"], b1=h["b1"], b2=h["b2"], eps=h["eps"]),
         learning_rate=step_size(help="step size; the paper suggests 0.002"), b1=_B1,
         b2=decay(0.999, "decay of the infinity-norm estimate"), eps=eps(1e-8)),
    spec("lion", "Lion: sign of an interpolated momentum (Chen et al., 2023)",
         lambda h: optax.lion(h["learning_rate"], b1=h["b1"], b2=h["b2"], weight_decay=h["weight_decay"]),
         learning_rate=step_size(help="step size; the paper uses 3-10x less than AdamW's"),
         b1=decay(0.9, "interpolation between momentum and gradient for the update"),
         b2=decay(0.99, "decay of the momentum"),
         weight_decay=weight_decay(1e-3, "decoupled weight decay (optax's default)")),
    spec("adabelief", "AdaBelief: Adam scaled by the belief in the gradient (Zhuang et al., 2020)",
         lambda h: optax.adabelief(h["learning_rate"], b1=h["b1"], b2=h["b2"], eps=h["eps"],
                                   eps_root=h["eps_root"]),
         learning_rate=step_size(), b1=_B1, b2=_B2, eps=eps(1e-16), eps_root=eps(1e-16, "added inside the square root")),
    spec("adadelta", "AdaDelta (Zeiler, 2012)",
         lambda h: optax.adadelta(h["learning_rate"], rho=h["rho"], eps=h["eps"], weight_decay=h["weight_decay"]),
         learning_rate=step_size(1.0, "multiplier of the AdaDelta step (the paper has none: 1)"),
         rho=decay(0.9, "decay of both running averages"), eps=eps(1e-6),
         weight_decay=weight_decay(0.0, "weight decay added to the gradient")),
    spec("adafactor", "Adafactor: factored second moments (Shazeer & Stern, 2018)",
         lambda h: optax.adafactor(h["learning_rate"], decay_rate=h["decay_rate"], decay_offset=h["decay_offset"],
                                   clipping_threshold=h["clipping_threshold"], momentum=h["momentum"],
                                   weight_decay_rate=h["weight_decay_rate"], eps=h["eps"]),
         learning_rate=step_size(0.01, "relative step size (the paper's min(1e-2, 1/sqrt(t)) is 0.01 "
                                       "for the first 10,000 steps)"),
         decay_rate=positive(0.8, "second-moment decay is 1 - t**(-decay_rate)"),
         decay_offset=nonneg(0.0, "steps added to t in that decay"),
         clipping_threshold=positive(1.0, "update clipping threshold d"),
         momentum=decay(0.0, "momentum on the update; 0 = none, as the paper"),
         weight_decay_rate=nonneg(0.0, "weight decay on the update"),
         eps=eps(1e-30, "regularises the factored second moment"),
         note="factored second moments for matrices with both sides >= 128, parameter-scaled steps"),
    spec("adamaxw", "AdaMax with decoupled weight decay",
         lambda h: optax.adamaxw(h["learning_rate"], b1=h["b1"], b2=h["b2"], eps=h["eps"],
                                 weight_decay=h["weight_decay"]),
         learning_rate=step_size(), b1=_B1, b2=decay(0.999, "decay of the infinity-norm estimate"),
         eps=eps(1e-8), weight_decay=weight_decay(1e-4)),
    spec("adan", "Adan: adaptive Nesterov momentum (Xie et al., 2022)",
         lambda h: optax.adan(h["learning_rate"], b1=h["b1"], b2=h["b2"], b3=h["b3"], eps=h["eps"],
                              eps_root=h["eps_root"], weight_decay=h["weight_decay"]),
         learning_rate=step_size(), b1=decay(0.98, "decay of the gradient average"),
         b2=decay(0.92, "decay of the gradient-difference average"),
         b3=decay(0.99, "decay of the second-moment average"), eps=eps(1e-8),
         eps_root=eps(1e-8, "added inside the square root"), weight_decay=weight_decay(0.0)),
    spec("amsgrad", "AMSGrad: Adam with a non-decreasing second moment (Reddi et al., 2018)",
         lambda h: optax.amsgrad(h["learning_rate"], b1=h["b1"], b2=h["b2"], eps=h["eps"]),
         learning_rate=step_size(), b1=_B1, b2=_B2, eps=eps(1e-8)),
    spec("fromage", "Fromage: steps relative to each layer's norm (Bernstein et al., 2020)",
         lambda h: optax.fromage(h["learning_rate"], min_norm=h["min_norm"]),
         learning_rate=step_size(help="relative step size; the paper suggests 0.01"),
         min_norm=positive(1e-6, "smallest norm used for a layer")),
    spec("lamb", "LAMB: layer-wise trust ratio on Adam (You et al., 2020)",
         lambda h: optax.lamb(h["learning_rate"], b1=h["b1"], b2=h["b2"], eps=h["eps"],
                              weight_decay=h["weight_decay"]),
         learning_rate=step_size(), b1=_B1, b2=_B2, eps=eps(1e-6), weight_decay=weight_decay(0.0)),
    spec("lars", "LARS: layer-wise trust ratio on momentum SGD (You et al., 2017)",
         lambda h: optax.lars(h["learning_rate"], weight_decay=h["weight_decay"],
                              trust_coefficient=h["trust_coefficient"], eps=h["eps"], momentum=h["momentum"]),
         learning_rate=step_size(), weight_decay=weight_decay(0.0, "weight decay added to the gradient"),
         trust_coefficient=positive(1e-3, "scale of the layer-wise trust ratio"), eps=eps(0.0),
         momentum=_MOMENTUM),
    spec("nadam", "NAdam: Adam with Nesterov momentum (Dozat, 2016)",
         lambda h: optax.nadam(h["learning_rate"], b1=h["b1"], b2=h["b2"], eps=h["eps"]),
         learning_rate=step_size(help="step size; the paper suggests 0.002"), b1=_B1, b2=_B2, eps=eps(1e-8)),
    spec("nadamw", "NAdam with decoupled weight decay",
         lambda h: optax.nadamw(h["learning_rate"], b1=h["b1"], b2=h["b2"], eps=h["eps"],
                                weight_decay=h["weight_decay"]),
         learning_rate=step_size(), b1=_B1, b2=_B2, eps=eps(1e-8), weight_decay=weight_decay(1e-4)),
    spec("noisy_sgd", "SGD with annealed Gaussian gradient noise (Neelakantan et al., 2015)",
         _noisy_sgd,
         learning_rate=step_size(), eta=nonneg(0.01, "noise variance at step 1"),
         gamma=nonneg(0.55, "the variance decays as t**(-gamma)"),
         inputs=(MEMBER_SEED,), note="each replicate draws its own noise"),
    spec("novograd", "NovoGrad: layer-wise second moments (Ginsburg et al., 2019)",
         lambda h: optax.novograd(h["learning_rate"], b1=h["b1"], b2=h["b2"], eps=h["eps"],
                                  weight_decay=h["weight_decay"]),
         learning_rate=step_size(), b1=_B1, b2=decay(0.25, "decay of the layer-wise second moment"),
         eps=eps(1e-6), weight_decay=weight_decay(0.0)),
    spec("optimistic_gradient_descent", "optimistic gradient descent (Mokhtari et al., 2019)",
         lambda h: optax.optimistic_gradient_descent(h["learning_rate"], alpha=h["alpha"], beta=h["beta"]),
         learning_rate=step_size(), alpha=nonneg(1.0, "weight of the current gradient"),
         beta=nonneg(1.0, "weight of the gradient difference (the optimism)")),
    spec("optimistic_adam", "optimistic Adam (Daskalakis et al., 2018)",
         _optimistic_adam,
         learning_rate=step_size(), alpha=nonneg(1.0, "weight of the current scaled gradient"),
         beta=nonneg(1.0, "weight of the change in the scaled gradient (the optimism)"),
         b1=_B1, b2=_B2, eps=eps(1e-8)),
    spec("polyak_sgd", "SGD with Polyak's step size (Loizou et al., 2021)",
         lambda h: optax.polyak_sgd(max_learning_rate=h["max_learning_rate"], scaling=h["scaling"],
                                    f_min=h["f_min"], eps=h["eps"]),
         max_learning_rate=positive(1.0, "upper bound on the Polyak step"),
         scaling=positive(1.0, "multiplier of the step (a schedule multiplies this)"),
         f_min=Field("float", 0.0, help="a lower bound on the loss (0 for models that interpolate)"),
         eps=eps(0.0, "added to the squared gradient norm"),
         schedule_param="scaling", uses_loss=True,
         note="the step uses each minibatch's loss, which the engine passes"),
    spec("radam", "RAdam: rectified Adam (Liu et al., 2020)",
         lambda h: optax.radam(h["learning_rate"], b1=h["b1"], b2=h["b2"], eps=h["eps"],
                               threshold=h["threshold"]),
         learning_rate=step_size(), b1=_B1, b2=_B2, eps=eps(1e-8),
         threshold=nonneg(5.0, "variance-tractability threshold")),
    spec("rprop", "Rprop: sign-based per-weight step sizes (Riedmiller & Braun, 1993)",
         lambda h: optax.rprop(h["learning_rate"], eta_minus=h["eta_minus"], eta_plus=h["eta_plus"],
                               min_step_size=h["min_step_size"], max_step_size=h["max_step_size"]),
         learning_rate=step_size(help="initial per-weight step size"),
         eta_minus=Field("float", 0.5, low=0.0, high=1.0, low_open=True, help="shrink factor on a sign change"),
         eta_plus=Field("float", 1.2, low=1.0, help="growth factor while the sign holds"),
         min_step_size=nonneg(1e-6, "smallest per-weight step"),
         max_step_size=positive(50.0, "largest per-weight step"),
         schedule_param=None,
         note="full-batch method; its learning_rate only starts the per-weight steps, so it takes no schedule"),
    spec("sign_sgd", "signSGD: the sign of the gradient (Bernstein et al., 2018)",
         lambda h: optax.sign_sgd(h["learning_rate"]),
         learning_rate=step_size()),
    spec("sm3", "SM3: memory-efficient adaptive steps (Anil et al., 2019)",
         _sm3,
         learning_rate=step_size(), momentum=_MOMENTUM),
    spec("yogi", "Yogi: additive second-moment updates (Zaheer et al., 2018)",
         lambda h: optax.yogi(h["learning_rate"], b1=h["b1"], b2=h["b2"], eps=h["eps"]),
         learning_rate=step_size(help="step size; the paper suggests 0.01"), b1=_B1, b2=_B2,
         eps=eps(1e-3)),
)

# optax optimisers that need more than a gradient step on a minibatch; a preset naming one is
# refused with the reason.
REFUSED = {
    "lbfgs": "L-BFGS needs the full objective as a function for its line search; optui trains on "
             "minibatches, where a line search on one batch's loss misleads",
}
