"""What the engine needs from a workload: pure JAX functions over device-resident data.

A workload never closes over its data: `data` is a pytree of device arrays passed to every
function, so one compiled step serves every replicate, trial and hyperparameter value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import jax

Params = Any
Data = Any
Batch = Any


@dataclass(frozen=True)
class Strategy:
    """How the engine executes training steps.

    scan: True runs each chunk as one jit-compiled lax.scan; False dispatches one jitted step
      per call from Python (faster for conv nets on XLA's CPU runtime, see the benchmarks).
    vmap_replicates: True runs all replicates (or trials) of a shape as one vmapped program;
      False runs them one after another.
    max_members: see below.
    """

    scan: bool = True
    vmap_replicates: bool = True
    # With vmap: at most this many members per compiled call (0 = all). Fewer members per call
    # need less device memory for activations; state and results are the same.
    max_members: int = 0

    @property
    def label(self) -> str:
        label = f"{'scan' if self.scan else 'step'}+{'vmap' if self.vmap_replicates else 'sequential'}"
        return label + (f" x{self.max_members}" if self.vmap_replicates and self.max_members else "")


@dataclass(frozen=True)
class Workload:
    name: str
    data: Data
    n_train: int
    # Names of the numbers `evaluate` returns, e.g. ("train_loss", "test_loss", "train_accuracy").
    eval_metrics: tuple[str, ...]
    init_params: Callable[[jax.Array], Params]
    # Scalar minibatch loss; batch comes from sample_batch.
    loss: Callable[[Params, Data, Batch], jax.Array]
    # (data, key, step, batch_size) -> batch; batch_size is a static Python int.
    sample_batch: Callable[[Data, jax.Array, jax.Array, int], Batch]
    # Full-dataset metrics of one parameter set.
    evaluate: Callable[[Params, Data], dict[str, jax.Array]]
    # Preferred execution strategy for a JAX backend name ("cpu", "gpu", "tpu").
    choose_strategy: Callable[[str], Strategy] = lambda backend: Strategy()
    info: dict[str, Any] = field(default_factory=dict)
