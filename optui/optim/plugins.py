"""Your own optimiser: found by entry point or by reference, checked against the contract.

A preset's `optimizer` may name
  - an installed plug-in: an entry point in the group `optui.optimizers` (`optimizer = "qhm"`),
  - a module attribute: `optimizer = "package.module:factory"` (imported like any module),
  - a file: `optimizer = "./my_opt.py:make"` (relative to the preset's folder, then the current one).

The referenced object is a factory `make(hp) -> optax.GradientTransformation` whose attribute
`hyperparams` declares every hyperparameter it reads:

    make.hyperparams = {
        "learning_rate": {"low": 0, "low_open": True, "help": "step size"},   # no default: required
        "beta": {"default": 0.9, "low": 0, "high": 1, "high_open": True, "help": "momentum"},
    }

(values may also be optui.optim.registry.Hyperparam objects). Optional attributes: `summary` (one
line; else the docstring's first line), `schedule_param` (the hyperparameter a schedule multiplies;
default "learning_rate" when declared), `eval_params(opt_state, params)`, `inputs` (engine values
the factory reads: "total_steps", "member_seed"), `uses_loss`, `note`. An OptimizerSpec object
works too.

The contract is checked when a preset is validated: declarations are well formed, defaults lie in
their ranges, and the factory's init and update trace with abstract hyperparameters (a Python `if`
on a hyperparameter, which would need a recompile per value, fails here with a clear message).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import importlib
import importlib.metadata
import importlib.util
import math
import sys
from pathlib import Path
from typing import Any

from ..errors import PresetError
from ..system.plugin_guard import guarded
from ..schema import Field, check_value
from .spec import ENGINE_INPUTS, OptimizerSpec

GROUP = "optui.optimizers"
FIELD_KEYS = ("default", "low", "high", "low_open", "high_open", "help", "kind")
OPTIONAL_ATTRS = ("summary", "schedule_param", "eval_params", "inputs", "uses_loss", "note", "reference")


class NotFound(Exception):
    """The reference could not be loaded; the message says what was tried."""


def is_reference(name: str) -> bool:
    return ":" in name


def entry_points() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=GROUP))


def entry_point_names() -> list[str]:
    return sorted({ep.name for ep in entry_points()})


# -- finding the object ---------------------------------------------------------------------------

def _load_entry_point(name: str) -> tuple[Any, str]:
    matches = [ep for ep in entry_points() if ep.name == name]
    if not matches:
        installed = entry_point_names()
        listing = ", ".join(installed) if installed else "none installed"
        raise NotFound(f"not a built-in optimiser, and no entry point {name!r} in group {GROUP!r} "
                       f"({listing})")
    values = sorted({ep.value for ep in matches})
    if len(values) > 1:
        raise NotFound(f"entry point {name!r} in group {GROUP!r} is declared by several packages "
                       f"({', '.join(values)}); write the reference itself, e.g. {values[0]!r}")
    ep = matches[0]
    try:
        with guarded(f"optimizer plug-in {ep.value}"):
            obj = ep.load()
    except PresetError:
        raise
    except Exception as exc:  # the plug-in's own import failed: say how
        raise NotFound(f"entry point {name!r} ({ep.value}) in group {GROUP!r} failed to load: "
                       f"{type(exc).__name__}: {exc}") from None
    dist = getattr(ep, "dist", None)
    where = f"entry point {ep.value}" + (f" of {dist.name} {dist.version}" if dist else "")
    return obj, where


def _attribute(module: Any, attr: str, described: str) -> Any:
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = sorted(n for n in dir(module) if not n.startswith("_"))[:20]
            raise NotFound(f"{described} has no attribute {attr!r}"
                           + (f" (it has: {', '.join(public)})" if public else ""))
        obj = getattr(obj, part)
    return obj


def _load_module_ref(module_name: str, attr: str) -> tuple[Any, str]:
    try:
        with guarded(f"optimizer module {module_name}"):
            module = importlib.import_module(module_name)
    except PresetError:
        raise
    except Exception as exc:
        raise NotFound(f"tried importing module {module_name!r}: {type(exc).__name__}: {exc}") from None
    return _attribute(module, attr, f"module {module_name!r}"), f"module {module_name}"


def _file_candidates(path_text: str, base_dir: Path | None) -> list[Path]:
    """The preset's folder first, then the current one (optui.file_refs, as for workloads)."""
    from ..file_refs import candidates

    return candidates(path_text, base_dir)


def _load_file_ref(path_text: str, attr: str, base_dir: Path | None) -> tuple[Any, Path]:
    candidates = _file_candidates(path_text, base_dir)
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        other = next((c for c in candidates if c.exists()), None)
        if other is not None:  # a FIFO, a folder, a device: there, but nothing to import
            from ..workloads.registry import kind_of_file

            raise NotFound(f"{other} is {kind_of_file(other)}, not a Python file")
        tried = " and ".join(str(c) for c in candidates)
        raise NotFound(f"no such file: tried {tried}")
    module_name = "optui_plugin_" + hashlib.sha1(str(found).encode()).hexdigest()[:12]
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, found)
        if spec is None or spec.loader is None:
            raise NotFound(f"{found} is not a Python file that can be imported")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            with guarded(f"optimizer file {found}"):
                spec.loader.exec_module(module)
        except PresetError:
            del sys.modules[module_name]
            raise
        except BaseException as exc:  # a SyntaxError or SystemExit in the plug-in is still its error
            del sys.modules[module_name]
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise NotFound(f"tried running {found}: {type(exc).__name__}: {exc}") from None
    return _attribute(module, attr, str(found)), found


def locate(ref: str, base_dir: Path | None) -> tuple[Any, str, str]:
    """(object, canonical name, where it came from). Raises NotFound saying what was tried.

    The canonical name finds the same object again in any process: entry-point names and module
    references as written, file references with an absolute path.
    """
    if not is_reference(ref):
        obj, where = _load_entry_point(ref)
        return obj, ref, where
    left, attr = ref.rsplit(":", 1)
    if not left or not attr or not all(part.isidentifier() for part in attr.split(".")):
        raise NotFound(f"expected 'package.module:factory' or './file.py:factory', got {ref!r}")
    if left.endswith(".py") or "/" in left or "\\" in left or left.startswith((".", "~")):
        obj, path = _load_file_ref(left, attr, base_dir)
        return obj, f"{path}:{attr}", f"file {path}"
    if not all(part.isidentifier() for part in left.split(".")):
        raise NotFound(f"{left!r} is neither a module name (dotted identifiers) nor a .py file")
    obj, where = _load_module_ref(left, attr)
    return obj, ref, where


# -- checking the contract ------------------------------------------------------------------------

def _field(name: str, decl: Any, who: str) -> Field:
    if isinstance(decl, Field):
        field = decl
    elif isinstance(decl, dict):
        unknown = sorted(set(decl) - set(FIELD_KEYS))
        if unknown:
            raise NotFound(f"{who}: hyperparams[{name!r}] has unknown key {unknown[0]!r}; "
                           f"allowed: {', '.join(FIELD_KEYS)}")
        kind = decl.get("kind", "float")
        if kind not in ("float", "int"):
            raise NotFound(f"{who}: hyperparams[{name!r}].kind must be 'float' or 'int' "
                           f"(hyperparameters are traced numbers), got {kind!r}")
        bounds = {}
        for key in ("low", "high"):
            v = decl.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                  or not math.isfinite(v)):
                raise NotFound(f"{who}: hyperparams[{name!r}].{key} must be a finite number, got {v!r}")
            bounds[key] = None if v is None else float(v)
        flags = {k: decl.get(k, False) for k in ("low_open", "high_open")}
        for k, v in flags.items():
            if not isinstance(v, bool):
                raise NotFound(f"{who}: hyperparams[{name!r}].{k} must be true or false, got {v!r}")
        help_text = decl.get("help", "")
        if not isinstance(help_text, str):
            raise NotFound(f"{who}: hyperparams[{name!r}].help must be a string")
        kwargs: dict[str, Any] = dict(low=bounds["low"], high=bounds["high"], help=help_text, **flags)
        field = Field(kind, decl["default"], **kwargs) if "default" in decl else Field(kind, **kwargs)
    else:
        raise NotFound(f"{who}: hyperparams[{name!r}] must be a dict such as {{'default': 0.9, 'low': 0, "
                       f"'high': 1}} or an optui.optim.registry.Hyperparam, got {type(decl).__name__}")
    if field.kind not in ("float", "int"):
        raise NotFound(f"{who}: hyperparams[{name!r}] must be numeric (kind float or int): "
                       f"hyperparameters are traced numbers")
    if field.low is not None and field.high is not None and field.low > field.high:
        raise NotFound(f"{who}: hyperparams[{name!r}] has low {field.low:g} above high {field.high:g}")
    if not field.required:
        try:
            check_value(field.default, field, None, f"hyperparams[{name!r}].default")
        except PresetError as exc:
            raise NotFound(f"{who}: {exc}") from None
    return field


def _sample_value(field: Field) -> float:
    """A value the field allows, to trace a factory whose hyperparameter has no default."""
    if not field.required:
        return float(field.default)
    lo, hi = field.low, field.high
    if lo is not None and hi is not None:
        return (lo + hi) / 2
    if lo is not None:
        return lo + 1.0
    if hi is not None:
        return hi - 1.0
    return 1.0


def to_spec(obj: Any, canonical: str, where: str, reserved: set[str]) -> OptimizerSpec:
    """The plug-in's OptimizerSpec, its declarations checked. Raises NotFound on a breach."""
    who = f"{canonical} ({where})"
    if isinstance(obj, OptimizerSpec):
        spec = dataclasses.replace(obj, name=canonical, source=f"plug-in: {where}")
        _check_fields(spec.hyperparams, who, reserved)
        _trace(spec, who)
        return spec
    if not callable(obj):
        raise NotFound(f"{who} is a {type(obj).__name__}; expected a factory function "
                       f"make(hp) -> optax.GradientTransformation with a `hyperparams` attribute")
    decls = getattr(obj, "hyperparams", None)
    if not isinstance(decls, dict):
        raise NotFound(f"{who}: the factory needs a `hyperparams` attribute: a dict of declared "
                       f"hyperparameters, e.g. make.hyperparams = {{'learning_rate': {{'low': 0, "
                       f"'low_open': True}}}}")
    fields = {}
    for name, decl in decls.items():
        if not isinstance(name, str):
            raise NotFound(f"{who}: hyperparameter names must be strings, got {name!r}")
        fields[name] = _field(name, decl, who)
    _check_fields(fields, who, reserved)
    options: dict[str, Any] = {}
    doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
    options["summary"] = getattr(obj, "summary", None) or (doc[0] if doc else "plug-in optimiser")
    if not isinstance(options["summary"], str):
        raise NotFound(f"{who}: summary must be a string")
    default_param = "learning_rate" if "learning_rate" in fields else None
    sp = getattr(obj, "schedule_param", default_param)
    if sp is not None and sp not in fields:
        raise NotFound(f"{who}: schedule_param {sp!r} is not a declared hyperparameter "
                       f"({', '.join(fields) or 'none declared'})")
    options["schedule_param"] = sp
    ev = getattr(obj, "eval_params", None)
    if ev is not None and not callable(ev):
        raise NotFound(f"{who}: eval_params must be a function (opt_state, params) -> params")
    options["eval_params"] = ev
    inputs = tuple(getattr(obj, "inputs", ()) or ())
    bad = [i for i in inputs if i not in ENGINE_INPUTS]
    if bad:
        raise NotFound(f"{who}: inputs may name {', '.join(ENGINE_INPUTS)}, got {bad[0]!r}")
    options["inputs"] = inputs
    options["uses_loss"] = bool(getattr(obj, "uses_loss", False))
    options["note"] = str(getattr(obj, "note", "") or "")
    options["reference"] = str(getattr(obj, "reference", "") or "")
    spec = OptimizerSpec(canonical, options.pop("summary"), fields, obj, f"plug-in: {where}", **options)
    _trace(spec, who)
    return spec


def _check_fields(fields: dict[str, Field], who: str, reserved: set[str]) -> None:
    for name in fields:
        if not name.isidentifier():
            raise NotFound(f"{who}: hyperparameter name {name!r} must be an identifier")
        if name in reserved:
            raise NotFound(f"{who}: hyperparameter name {name!r} is reserved by optui "
                           f"({', '.join(sorted(reserved))})")


def _trace(spec: OptimizerSpec, who: str) -> None:
    """Trace init and update with abstract hyperparameters on a small parameter tree (no compile)."""
    import jax
    import jax.numpy as jnp

    hp_values = {k: jnp.float32(_sample_value(f)) for k, f in spec.hyperparams.items()}
    hp_values.update({k: jnp.float32(1.0) for k in spec.inputs})
    params = {"w": jnp.zeros((3, 2), jnp.float32), "b": jnp.zeros((2,), jnp.float32)}

    def one_step(hp):
        tx = spec.build(hp)
        if not (hasattr(tx, "init") and hasattr(tx, "update")):
            raise TypeError(f"the factory returned {type(tx).__name__}, not an optax.GradientTransformation")
        state = tx.init(params)
        if spec.uses_loss:
            updates, state = tx.update(params, state, params, value=jnp.float32(1.0))
        else:
            updates, state = tx.update(params, state, params)
        return updates, state

    try:
        _, state = jax.eval_shape(one_step, hp_values)
    except jax.errors.ConcretizationTypeError:
        raise NotFound(f"{who}: the factory uses a hyperparameter's value in Python (an `if`, a "
                       f"shape, float(...)); hyperparameters are traced arrays, so use jnp.where "
                       f"and arithmetic instead") from None
    except Exception as exc:
        raise NotFound(f"{who}: tried building it with the declared defaults and taking one step "
                       f"on a small parameter tree: {type(exc).__name__}: {exc}") from None
    # Checkpoints store the state as plain arrays: a typed PRNG key (jax.random.key) cannot be.
    if any(jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key) for leaf in jax.tree.leaves(state)):
        raise NotFound(f"{who}: its state holds a typed PRNG key (jax.random.key); keep a raw key "
                       f"(jax.random.PRNGKey) so checkpoints can store it")


def suggestions(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
