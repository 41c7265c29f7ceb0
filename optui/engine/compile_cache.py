"""JAX's persistent compilation cache beside the run store, and the seconds spent compiling.

A study or search compiles a few XLA programs (one per shape: optimiser, batch size, member
width, block length). With the cache on, each compiled program is also written to
`<store>/jax-cache/`, so a resumed run, a repeated study or a search re-run in a new process
loads it instead of compiling again. OPTUI_COMPILE_CACHE=0 turns it off; OPTUI_COMPILE_CACHE=DIR
puts it in DIR. A cache the user set for JAX (JAX_COMPILATION_CACHE_DIR) is left as it is.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import jax

DIR_NAME = "jax-cache"
ENV = "OPTUI_COMPILE_CACHE"
OFF = {"0", "off", "false", "no", "none"}
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"

_lock = threading.Lock()
_ours: str | None = None  # the folder this module set, so a user's own setting is never replaced
_seconds = 0.0
_listening = False


def location(store_root: str | Path) -> Path | None:
    """Where the cache of a store in `store_root` lives, or None when OPTUI_COMPILE_CACHE turns it off."""
    setting = os.environ.get(ENV, "").strip()
    if setting.lower() in OFF:
        return None
    return Path(setting) if setting else Path(store_root) / DIR_NAME


def enable(store_root: str | Path) -> Path | None:
    """Use the persistent cache of the store in `store_root` from the next compile on; returns
    its folder (None: off, or JAX already caches where its user said)."""
    global _ours
    from jax.experimental.compilation_cache import compilation_cache as cc

    where = location(store_root)
    with _lock:
        current = jax.config.jax_compilation_cache_dir
        if current and current != _ours:
            return None  # the user's own cache
        if where is None:
            if _ours is not None:
                jax.config.update("jax_compilation_cache_dir", None)
                cc.reset_cache()
                _ours = None
            return None
        try:
            where.mkdir(parents=True, exist_ok=True)
        except OSError:
            return None  # an unwritable folder: compile as usual
        if str(where) != current:
            jax.config.update("jax_compilation_cache_dir", str(where))
            # Every program, however quick to compile: a repeated run should compile nothing.
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
            cc.reset_cache()
            _ours = str(where)
    return where


def _listen(event: str, duration: float, **_: object) -> None:
    global _seconds
    if event == _COMPILE_EVENT:
        with _lock:
            _seconds += duration


def compile_seconds() -> float:
    """Seconds this process has spent in XLA compiles (or loading them from the cache) so far."""
    global _listening
    with _lock:
        if not _listening:
            jax.monitoring.register_event_duration_secs_listener(_listen)
            _listening = True
        return _seconds
