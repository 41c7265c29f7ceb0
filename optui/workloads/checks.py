"""Checks of a built workload before any training: the shapes its functions return (traced with
jax.eval_shape, nothing compiled for them) and finite initial values.

A plug-in that breaks the contract gets a PresetError naming the function and what it returned,
instead of an error deep inside a vmapped, scanned program (or NaN histories) minutes later.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import PresetError
from .base import Strategy, Workload, WorkloadSpec
from .registry import _short

CHECK_BATCH = 8  # batch size for the traced sample_batch/loss check (at most n_train)


def _describe(value: Any) -> str:
    if isinstance(value, tuple):
        return f"a tuple of {len(value)}"
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"an array of shape {tuple(value.shape)} and dtype {value.dtype}"
    return type(value).__name__


def _path(path: Any) -> str:
    return jax.tree_util.keystr(path) or "(the whole tree)"


def _traced(loc: str, what: str, fn, *args) -> Any:
    try:
        return jax.eval_shape(fn, *args)
    except Exception as exc:
        raise PresetError(f"{loc}: {what} failed: {_short(exc)}") from None


def check_built(w: Any, spec: WorkloadSpec, loc: str) -> None:
    """Raise PresetError (prefixed with loc) where the built workload breaks the contract."""
    if not isinstance(w, Workload):
        raise PresetError(f"{loc}: build returned {type(w).__name__}, expected optui.workloads.Workload")
    if isinstance(w.n_train, bool) or not isinstance(w.n_train, (int, np.integer)) or w.n_train < 1:
        raise PresetError(f"{loc}: n_train must be a positive integer (training examples), got {w.n_train!r}")
    for name in ("init", "sample_batch", "loss", "evaluate", "choose_strategy"):
        if not callable(getattr(w, name)):
            raise PresetError(f"{loc}: {name} must be a function, got {type(getattr(w, name)).__name__}")
    for backend in ("cpu", "gpu", "tpu"):
        try:
            strategy = w.choose_strategy(backend)
        except Exception as exc:
            raise PresetError(f"{loc}: choose_strategy({backend!r}) failed: {_short(exc)}") from None
        if not isinstance(strategy, Strategy):
            raise PresetError(f"{loc}: choose_strategy({backend!r}) must return an optui.workloads.Strategy, "
                              f"got {type(strategy).__name__}")
    key = jax.random.PRNGKey(0)
    out = _traced(loc, "init(key)", w.init, key)
    if not (isinstance(out, tuple) and len(out) == 2):
        raise PresetError(f"{loc}: init(key) must return (params, model_state), got {_describe(out)}")
    params, state = out
    leaves = jax.tree_util.tree_leaves_with_path(params)
    if not leaves:
        raise PresetError(f"{loc}: init(key) returned no parameters")
    for path, leaf in leaves:
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            raise PresetError(f"{loc}: parameter {_path(path)} has dtype {leaf.dtype}; parameters "
                              f"must be float arrays (keep integer state in model_state)")
    batch_size = int(min(CHECK_BATCH, w.n_train))
    batch = _traced(loc, f"sample_batch(data, key, step, {batch_size})",
                    lambda d, k, s: w.sample_batch(d, k, s, batch_size), w.data, key, jnp.int32(0))
    out = _traced(loc, "loss(params, model_state, data, batch, key)", w.loss, params, state, w.data, batch, key)
    if not (isinstance(out, tuple) and len(out) == 2):
        raise PresetError(f"{loc}: loss(...) must return (scalar loss, new model_state), got {_describe(out)}")
    loss, new_state = out
    if getattr(loss, "shape", None) != () or not jnp.issubdtype(loss.dtype, jnp.floating):
        raise PresetError(f"{loc}: loss(...) must return a scalar float loss first, got {_describe(loss)} "
                          f"(for a batch of {batch_size})")
    _same_state(loc, state, new_state)
    metrics = _traced(loc, "evaluate(params, model_state, data)", w.evaluate, params, state, w.data)
    if not isinstance(metrics, dict):
        raise PresetError(f"{loc}: evaluate(...) must return a dict of metrics, got {_describe(metrics)}")
    declared = set(spec.metric_names)
    if set(metrics) != declared:
        missing, extra = sorted(declared - set(metrics)), sorted(set(metrics) - declared)
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + ([f"undeclared {', '.join(map(str, extra))}"]
                                                                          if extra else [])
        raise PresetError(f"{loc}: evaluate(...) must return exactly the declared metrics "
                          f"({', '.join(spec.metric_names)}): {'; '.join(parts)}")
    for name, value in metrics.items():
        if getattr(value, "shape", None) != ():
            raise PresetError(f"{loc}: evaluate(...)[{name!r}] must be a scalar, got {_describe(value)}")
    _finite_init(loc, w, key)


def _same_state(loc: str, before: Any, after: Any) -> None:
    a, tree_a = jax.tree_util.tree_flatten(before)
    b, tree_b = jax.tree_util.tree_flatten(after)
    if tree_a != tree_b:
        raise PresetError(f"{loc}: loss(...) must return a model_state with the same structure as "
                          f"init's: got {tree_b}, expected {tree_a}")
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(before), b):
        if x.shape != y.shape or x.dtype != y.dtype:
            raise PresetError(f"{loc}: loss(...) changed model_state{_path(path)} from "
                              f"{x.shape} {x.dtype} to {y.shape} {y.dtype}")


def _finite_init(loc: str, w: Workload, key: jax.Array) -> None:
    try:
        params, state = jax.jit(w.init)(key)
    except Exception as exc:
        raise PresetError(f"{loc}: init(key) failed: {_short(exc)}") from None
    for what, tree in (("parameter", params), ("model_state", state)):
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
            arr = np.asarray(leaf)
            if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
                bad = int((~np.isfinite(arr)).sum())
                raise PresetError(f"{loc}: init(key) gave {bad} NaN or inf value(s) in {what} "
                                  f"{_path(path)}; training would diverge at once")
