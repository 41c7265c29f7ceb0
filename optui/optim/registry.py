"""The optimiser registry: names and plug-in references -> optax transformations whose numeric
hyperparameters are traced data.

The engine builds the transformation inside the compiled step from a dict of arrays, so a new
learning rate (or a batch of trial values, vmapped) never triggers a recompile. A config's
hyperparameters are the optimiser's own (declared with defaults, ranges and help) plus optional
chain elements shared by every optimiser: a learning-rate schedule sized from the run's budget,
gradient clipping and decoupled weight decay.

    spec = resolve("adam", file, "configs.a.optimizer")   # built-in, entry point or module:factory
    hp = settle(spec, values, file, "configs.a")           # validated numbers, schedule encoded
    tx = build(spec.name, hp_arrays)                       # inside the traced step
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import optax

from ..errors import OptuiError, PresetError
from . import chain, optax_contrib, optax_main, plugins, schedules
from .spec import ENGINE_INPUTS, MEMBER_SEED, TOTAL_STEPS, OptimizerSpec
from ..schema import Field, where

Hyperparam = Field  # what a plug-in may use to declare a hyperparameter

__all__ = ["ENTRY_POINT_GROUP", "EXTRA_FIELDS", "Hyperparam", "OPTIMIZERS", "OptimizerSpec", "REFUSED",
           "build", "config_fields", "display", "engine_inputs", "eval_params", "hyperparam_names",
           "known", "label", "lookup", "resolve", "settle", "toml_value"]

ENTRY_POINT_GROUP = plugins.GROUP

OPTIMIZERS: dict[str, OptimizerSpec] = {s.name: s for s in (*optax_main.CATALOGUE, *optax_contrib.CATALOGUE)}
REFUSED: dict[str, str] = {**optax_main.REFUSED, **optax_contrib.REFUSED}

# Chain elements every config may set; absent unless set (weight_decay is the optimiser's own
# where it declares one).
EXTRA_FIELDS: dict[str, Field] = {**schedules.FIELDS, **chain.ELEMENT_FIELDS}
RESERVED = {"optimizer", "batch_size", *schedules.KEYS, chain.CLIP_NORM, chain.CLIP_VALUE, *ENGINE_INPUTS}

_PLUGINS: dict[str, OptimizerSpec] = {}  # canonical name -> spec, for references resolved so far
_REFS: dict[tuple[str, str], str] = {}  # (reference as written, folder) -> canonical name


def known() -> str:
    return ", ".join(OPTIMIZERS)


# -- finding an optimiser -------------------------------------------------------------------------

def resolve_table(raw: Any, file: str | None, key: str) -> OptimizerSpec:
    """The optimiser that the preset table at `key` names in its (required) `optimizer` key."""
    if not isinstance(raw, dict):
        raise PresetError(f"{where(file, key)} must be a table, got {raw!r}")
    if raw.get("optimizer") is None:
        raise PresetError(f"{where(file, key + '.optimizer')} is required: a name from `optui optimizers` "
                          f"(e.g. \"adam\"), an installed plug-in or \"module:factory\"")
    return resolve(raw["optimizer"], file, key + ".optimizer")


def resolve(name: Any, file: str | None, key: str) -> OptimizerSpec:
    """The optimiser a preset names at `key`: built-in, entry point, module:attr or file.py:attr.

    Raises PresetError naming the file, the key and what was tried.
    """
    loc = where(file, key)
    if not isinstance(name, str) or not name.strip():
        raise PresetError(f"{loc} must be an optimiser name ({known()}), an installed plug-in or "
                          f"'module:factory', got {name!r}")
    if name in OPTIMIZERS:
        return OPTIMIZERS[name]
    if name in REFUSED:
        raise PresetError(f"{loc}: {name!r} is not offered: {REFUSED[name]}")
    base_dir = _preset_dir(file)
    cached = _REFS.get((name, str(base_dir)))
    if cached is not None:
        return _PLUGINS[cached]
    try:
        obj, canonical, origin = plugins.locate(name, base_dir)
        spec = _PLUGINS.get(canonical) or plugins.to_spec(obj, canonical, origin, RESERVED)
    except PresetError as exc:  # the plug-in changed global state when it ran (plugin_guard)
        raise PresetError(f"{loc}: {exc}") from None
    except plugins.NotFound as exc:
        if plugins.is_reference(name):
            raise PresetError(f"{loc}: cannot load optimizer {name!r}: {exc}") from None
        raise PresetError(f"{loc}: cannot use optimizer {name!r}"
                          f"{plugins.suggestions(name, [*OPTIMIZERS, *plugins.entry_point_names()])}: {exc}; "
                          f"the built-in ones: "
                          f"{known()} (`optui optimizers` describes them)") from None
    _PLUGINS[canonical] = spec
    _REFS[(name, str(base_dir))] = canonical
    return spec


def label(name: str) -> str:
    """A short display name: a file reference by its file name (qhm.py:qhm), others as they are."""
    if plugins.is_reference(name) and ("/" in name or "\\" in name):
        path, attr = name.rsplit(":", 1)
        return f"{Path(path).name}:{attr}"
    return name


def _preset_dir(file: str | None) -> Path | None:
    if not file:
        return None
    p = Path(file)
    return p.parent.resolve() if p.parent.is_dir() else None


def lookup(name: str) -> OptimizerSpec:
    """The spec of a built-in or canonical plug-in name (resolving it in this process if needed)."""
    if name in OPTIMIZERS:
        return OPTIMIZERS[name]
    if name in _PLUGINS:
        return _PLUGINS[name]
    try:
        return resolve(name, None, "optimizer")
    except PresetError as exc:
        raise OptuiError(str(exc)) from None


def cached(name: Any, file: str | None = None) -> OptimizerSpec | None:
    """The spec if known without importing anything (for the UI thread), else None."""
    if not isinstance(name, str):
        return None
    if name in OPTIMIZERS:
        return OPTIMIZERS[name]
    canonical = _REFS.get((name, str(_preset_dir(file)))) or name
    return _PLUGINS.get(canonical)


# -- a config's hyperparameters -------------------------------------------------------------------

def config_fields(spec: OptimizerSpec) -> dict[str, Field]:
    """Every setting a config of this optimiser takes: its own, then the chain elements."""
    fields = dict(spec.hyperparams)
    for name, field in EXTRA_FIELDS.items():
        if name not in fields:
            fields[name] = field
    return fields


def hyperparam_names(optimizer: str) -> list[str]:
    """Names a config of this optimiser may carry, in display order."""
    return list(config_fields(lookup(optimizer)))


def settle(spec: OptimizerSpec, values: dict[str, Any], file: str | None, key: str,
           searched: tuple[str, ...] = ()) -> dict[str, float]:
    """Checked values (None = not set) -> the numbers a member trains with.

    Fills the schedule's defaults for its kind, refuses fractions the kind does not read, encodes
    the kind as a number and drops chain elements that are not set. `searched` names settings a
    search space draws (they count as set, their values come later).
    """
    for name, value in values.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            check_float32(value, file, f"{key}.{name}")
    present = {k for k, v in values.items() if v is not None} | set(searched)
    out: dict[str, float] = {k: float(values[k]) for k in spec.hyperparams if values.get(k) is not None}
    for name in (chain.CLIP_NORM, chain.CLIP_VALUE, chain.WEIGHT_DECAY):
        if name not in spec.hyperparams and values.get(name) is not None:
            out[name] = float(values[name])
    sched_keys = [k for k in schedules.KEYS if k in present]
    if not sched_keys:
        return out
    if schedules.SCHEDULE in searched:
        raise PresetError(f"{where(file, key + '.schedule')} is a choice, not a number: fix it in the "
                          f"space (one of {', '.join(schedules.KINDS)}) and search its fractions")
    kind = values.get(schedules.SCHEDULE) or "constant"
    if spec.schedule_param is None:
        raise PresetError(f"{where(file, key + '.' + sched_keys[0])}: {spec.name} takes no learning-rate "
                          f"schedule ({spec.note or 'it has no step size to schedule'})")
    reads = schedules.DEFAULTS[kind]
    for k in sched_keys:
        if k != schedules.SCHEDULE and k not in reads:
            readers = [n for n, d in schedules.DEFAULTS.items() if k in d]
            raise PresetError(f"{where(file, key + '.' + k)} does not apply to schedule = {kind!r}; "
                              f"it is read by {', '.join(readers)}")
    if kind == "exponential" and values.get("final_fraction") == 0.0:
        raise PresetError(f"{where(file, key + '.final_fraction')} must be > 0 for an exponential "
                          f"schedule (it decays towards it), got 0")
    plain = kind == "constant" and "warmup_fraction" not in searched and not values.get("warmup_fraction")
    if plain:  # the report's constant step: no schedule element at all
        return out
    out[schedules.SCHEDULE] = schedules.code(kind)
    for k, default in reads.items():
        if k in searched:
            continue
        out[k] = float(values[k]) if values.get(k) is not None else default
    return out


def check_float32(value: float, file: str | None, key: str) -> None:
    """Hyperparameters train as float32: refuse values that overflow it or vanish to zero."""
    with np.errstate(over="ignore", under="ignore"):
        f32 = np.float32(value)
    if not np.isfinite(f32) or (value != 0 and f32 == 0):
        raise PresetError(f"{where(file, key)} = {value!r} does not fit a 32-bit float, which training "
                          f"uses (magnitudes from about 1e-38 to 3e38)")


def display(hyperparams: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameters as a person writes them: the schedule's kind by name."""
    return {k: toml_value(k, v) for k, v in hyperparams.items()}


def toml_value(name: str, value: Any) -> Any:
    """The preset value of a stored hyperparameter (the schedule kind travels as a number)."""
    if name == schedules.SCHEDULE and isinstance(value, (int, float)) and not isinstance(value, bool):
        return schedules.kind_of(float(value))
    return value


def encode(name: str, value: Any) -> float:
    """A fixed search-space value as a number (a schedule kind becomes its code)."""
    if name == schedules.SCHEDULE and isinstance(value, str):
        return schedules.code(value)
    return float(value)


# -- inside the engine ----------------------------------------------------------------------------

def build(optimizer: str, hyperparams: dict[str, Any]) -> optax.GradientTransformationExtraArgs:
    """The config's transformation; hyperparams may be Python floats or traced scalars.

    Its update takes the minibatch loss as `value=` (optimisers with Polyak-type steps use it).
    """
    return chain.assemble(lookup(optimizer), hyperparams)


def eval_params(optimizer: str, opt_state: Any, params: Any) -> Any:
    """The parameters to evaluate: the averaged point for schedule-free methods, else params."""
    spec = lookup(optimizer)
    return params if spec.eval_params is None else spec.eval_params(opt_state, params)


def engine_inputs(optimizer: str, hparams: dict[str, np.ndarray], total_steps: int,
                  keys: np.ndarray) -> dict[str, np.ndarray]:
    """hparams plus the values the engine supplies: the run's step count where a schedule or
    the optimiser reads it, and a per-member seed where the optimiser draws noise."""
    spec = lookup(optimizer)
    n = len(keys)
    out = dict(hparams)
    if schedules.SCHEDULE in hparams or TOTAL_STEPS in spec.inputs:
        out[TOTAL_STEPS] = np.full(n, float(total_steps), np.float32)
    if MEMBER_SEED in spec.inputs:
        # Below 2**24, so float32 carries it exactly; distinct per replicate key.
        words = np.asarray(keys, np.uint32).reshape(n, -1)
        out[MEMBER_SEED] = (words[:, -1] % (1 << 24)).astype(np.float32)
    return out
