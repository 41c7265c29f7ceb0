"""Checkpoints of a member group's state, stored leaf by leaf under each leaf's tree path.

A stored leaf is named by its path in the state (`.params['Dense_0']['kernel']`), so a layout
that no longer matches (another model, another optimiser) is refused naming the leaf, instead
of being refilled by position. Checkpoints written before paths were recorded (numbered leaves
`arr_0`, `arr_1`, ...) are still read by position when their count matches.
"""

from __future__ import annotations

import io
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


class CheckpointMismatch(ValueError):
    """A stored checkpoint does not fit the state this run trains."""


def _named_leaves(state: Any) -> list[tuple[str, Any]]:
    flat, _ = jax.tree_util.tree_flatten_with_path(state)
    return [(jax.tree_util.keystr(path), leaf) for path, leaf in flat]


def state_to_bytes(state: Any) -> bytes:
    """The state as an .npz whose members are named by tree path."""
    buf = io.BytesIO()
    np.savez(buf, **{name: np.asarray(leaf) for name, leaf in _named_leaves(state)})
    return buf.getvalue()


def state_from_bytes(template: Any, blob: bytes) -> Any:
    """Refill a freshly initialised state (the template) with a checkpoint's leaves."""
    named = _named_leaves(template)
    treedef = jax.tree.structure(template)
    with np.load(io.BytesIO(blob)) as z:
        stored = {name: z[name] for name in z.files}
    if _is_positional(stored) and len(stored) == len(named):  # an older checkpoint
        values = [stored[f"arr_{i}"] for i in range(len(named))]
    else:
        values = []
        for name, leaf in named:
            if name not in stored:
                raise CheckpointMismatch(f"checkpoint does not match this run's state layout: no leaf {name}; it holds "
                                         f"{', '.join(sorted(stored)[:5])}{' ...' if len(stored) > 5 else ''}")
            values.append(stored[name])
        extra = sorted(set(stored) - {n for n, _ in named})
        if extra:
            raise CheckpointMismatch(f"checkpoint does not match this run's state layout: leaf {extra[0]} is not part of it")
    out = []
    for (name, leaf), value in zip(named, values):
        if tuple(value.shape) != tuple(np.shape(leaf)):
            raise CheckpointMismatch(f"checkpoint does not match this run's state layout: leaf {name} has shape "
                                     f"{tuple(value.shape)}, this run's state has {tuple(np.shape(leaf))}")
        out.append(jnp.asarray(value, dtype=leaf.dtype))
    return jax.tree.unflatten(treedef, out)


def _is_positional(stored: dict[str, np.ndarray]) -> bool:
    return all(name.startswith("arr_") and name[4:].isdigit() for name in stored)
