"""The workload contract: what a model and its data must provide for optui to train it.

A workload comes in two parts:

* a `WorkloadSpec`, cheap to create (no data loaded): its name, its declared metrics and default
  search objective, its preset settings (the `[data]`, `[model]` and `[eval]` tables) and a
  `build` function. Presets are validated, forms drawn and `optui workloads` listed from the
  spec alone.
* a `Workload`, what `spec.build(settings)` returns: the data on the device and pure JAX
  functions over it (init, sample_batch, loss, evaluate).

The engine trains many members (seed replicates, search trials) of one workload at once: it
`vmap`s and `jit`s the functions, so they must be pure and traceable. A workload never closes over
its data: `data` is a pytree of device arrays passed to every function, so one compiled program
serves every member and hyperparameter value. Keys are JAX PRNG keys in the raw uint32 form
(`jax.random.PRNGKey`); use them with jax.random.* or pass them to Flax as `rngs`.

How the engine uses the functions, for member key k:

    params, model_state = init(split(k)[0])                      # once
    batch = sample_batch(data, split(k)[1], step, batch_size)     # every step
    (loss, model_state), grads = value_and_grad(loss, has_aux=True)(
        params, model_state, data, batch, fold_in(fold_in(k, MODEL_STREAM), step))
    ... the optimiser updates params ...
    metrics = evaluate(params, model_state, data)                 # at every eval point

Mutable model state (BatchNorm's running statistics, or {} when the model has none) lives in the
member's state next to the parameters and the optimiser state: training steps update it, every
evaluation reads it, checkpoints save it and a resumed run restores it, so a resumed run equals an
uninterrupted one.

See README.md ("Your own workload") and examples/digits for a complete plug-in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..results.metrics import Metric
from ..schema import Field

if TYPE_CHECKING:  # the contract is importable without JAX: presets validate without it
    import jax

Params = Any  # a pytree of float arrays: what the optimiser updates
ModelState = Any  # a pytree of arrays the model updates itself (BatchNorm statistics), or {}
Data = Any  # a pytree of device arrays
Batch = Any  # whatever sample_batch returns: a pytree of arrays

# A setting of the preset's [data], [model] or [eval] table: its type ("int", "float", "str",
# "bool" or "path"), default (none: required), range (low/high, open or closed), choices and help.
Setting = Field

SECTIONS = ("data", "model", "eval")
# fold_in(key, MODEL_STREAM) separates the keys given to `loss` (dropout, augmentation) from the
# batch-sampling and init keys, so a workload that ignores its loss key trains exactly as before.
MODEL_STREAM = 0x6D6F6465


class SettingError(ValueError):
    """Raised by a spec's `check_settings` for a combination of settings it refuses.

    key: the dotted preset key to blame ("data.path"); message: the rest of the sentence
    ("is required when data.source = 'json'"). optui prefixes the preset file's name.
    """

    def __init__(self, key: str, message: str):
        super().__init__(f"{key} {message}")
        self.key = key
        self.message = message


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


def default_strategy(backend: str) -> Strategy:
    """Scan chunks and vmapped members on every backend: the usual winner."""
    return Strategy()


@dataclass(frozen=True)
class Settings:
    """The validated settings a spec's `build` (and `check_settings`) receives.

    data, model, eval: the preset's tables with every declared setting present (defaults filled).
    given: per section, the keys the preset itself wrote (to refuse a key that does not apply).
    seed: the preset's replicates.seed (for fixed choices such as an eval subset).
    preset: the preset file's path, or None; relative data paths are the user's to resolve.
    """

    data: Mapping[str, Any]
    model: Mapping[str, Any]
    eval: Mapping[str, Any]
    given: Mapping[str, frozenset[str]] = field(default_factory=dict)
    seed: int = 0
    preset: str | None = None


@dataclass(frozen=True)
class Workload:
    """A built workload: data on the device and pure functions over it.

    name: the workload's name (for messages and the run record).
    data: a pytree of device arrays, passed to every function below.
    n_train: training examples; budgets in epochs or examples and batch-size limits use it.
    init(key) -> (params, model_state): a member's starting parameters (a pytree of float
      arrays) and model state ({} when the model keeps none). Must be finite.
    sample_batch(data, key, step, batch_size) -> batch: the minibatch of a step. batch_size is a
      static Python int; step a traced int32. Draw from fold_in(key, step) (or one permutation
      per epoch) so that a step's batch depends on the key and the step only: that is what makes
      a resumed run equal an uninterrupted one.
    loss(params, model_state, data, batch, key) -> (scalar loss, new model_state): the training
      loss of one minibatch (train mode: dropout on, BatchNorm on batch statistics and updating
      its running averages). key is fresh for every step. The new state must have the same
      structure, shapes and dtypes as the old.
    evaluate(params, model_state, data) -> {metric name: scalar}: full-dataset metrics in eval
      mode (no dropout, BatchNorm on its running statistics), one entry per declared metric.
    choose_strategy(backend) -> Strategy: how to execute on "cpu", "gpu" or "tpu".
    info: facts about the data and model, recorded with each run (JSON-able values).
    """

    name: str
    data: Data
    n_train: int
    init: Callable[[jax.Array], tuple[Params, ModelState]]
    sample_batch: Callable[[Data, jax.Array, jax.Array, int], Batch]
    loss: Callable[[Params, ModelState, Data, Batch, jax.Array], tuple[jax.Array, ModelState]]
    evaluate: Callable[[Params, ModelState, Data], dict[str, jax.Array]]
    choose_strategy: Callable[[str], Strategy] = default_strategy
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkloadSpec:
    """A workload's declarations and its build function: what an `optui.workloads` entry point
    (or a `workload = "module:factory"` reference) returns.

    name: a short name for messages and `optui workloads` (the entry point's name is what
      presets use to select it).
    build(settings) -> Workload: load the data and make the functions; may be slow. Raise
      optui.errors.DataError for data that is missing or unusable (the user sees the message).
    metrics: what `evaluate` returns, in display order (see optui.results.metrics.Metric).
    objective: the name of the metric a search optimises by default ("final_<objective>").
    settings: per section ("data", "model", "eval") the settings the preset may give, each a
      Setting with type, default, range and help. The validator checks presets against them and
      the TUI's form lists them. [eval] always has `points` (evals per run, default 100) unless
      the workload declares its own.
    check_settings(settings): optional rules across settings; raise SettingError to refuse.
    description: one line for `optui workloads`.
    """

    name: str
    build: Callable[[Settings], Workload]
    metrics: tuple[Metric, ...]
    objective: str
    settings: Mapping[str, Mapping[str, Setting]] = field(default_factory=dict)
    check_settings: Callable[[Settings], None] | None = None
    description: str = ""

    def metric(self, name: str) -> Metric:
        return next(m for m in self.metrics if m.name == name)

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.metrics)
