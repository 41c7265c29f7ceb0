"""Running a plug-in's code (its import, its factory, its build) without letting it change the rest.

A workload or optimiser plug-in runs in optui's own process, so global state it changes would
change everything else: a plug-in that enables `jax_enable_x64` changes the built-in SGD's and
Adam's numbers, one that calls `os.chdir` sends the store and exports elsewhere. `guarded(who)`
puts the working folder back (with a warning) and refuses a change to JAX's global configuration
with a PresetError naming the plug-in and the setting, after putting the setting back.
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from typing import Any, Iterator

from ..errors import PresetError

# JAX settings that do not decide results (caches, logging, tracebacks): a plug-in may set them.
_HARMLESS_PREFIXES = ("jax_compilation_cache", "jax_persistent_cache", "jax_enable_compilation_cache",
                      "jax_raise_persistent_cache", "jax_log_", "jax_explain_cache", "jax_traceback",
                      "jax_include_full_tracebacks", "jax_source_url", "jax_hlo_source_file",
                      "jax2tf_")


def jax_settings() -> dict[str, str]:
    """JAX's global settings that can change results, as their reprs."""
    import jax

    return {name: repr(value) for name, value in jax.config.values.items()
            if not name.startswith(_HARMLESS_PREFIXES)}


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # the folder was removed under us
        return None


@contextmanager
def guarded(who: str) -> Iterator[None]:
    """Run plug-in code; afterwards the working folder is as it was, and JAX's global
    configuration unchanged (else PresetError naming `who`, with the setting put back)."""
    cwd = _cwd()
    before = jax_settings()
    try:
        yield
    finally:
        now = _cwd()
        if cwd is not None and now != cwd:
            os.chdir(cwd)
            warnings.warn(f"{who} changed the working folder (to {now}) when it ran; optui put it back "
                          f"to {cwd}, where the store and exports are")
    after = jax_settings()
    changed = [name for name in before if after.get(name) != before[name]]
    if changed:
        _restore(changed, before)
        name = changed[0]
        raise PresetError(f"{who} changed JAX's global setting {name} (from {before[name]} to "
                          f"{after[name]}) when it ran, which would change every other result in this "
                          f"process; refused. Leave global settings to the user (e.g. JAX_ENABLE_X64 "
                          f"in the environment)")


def _restore(names: list[str], before: dict[str, str]) -> None:
    import ast

    import jax

    for name in names:
        try:
            jax.config.update(name, ast.literal_eval(before[name]))
        except (ValueError, SyntaxError, Exception):  # noqa: BLE001 - a value with no literal form
            pass

