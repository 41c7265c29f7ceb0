"""What the engine runs on, and the software it runs with, for the record of every run."""

from __future__ import annotations

import platform
from importlib import metadata


def describe() -> dict[str, str]:
    import jax

    dev = jax.devices()[0]
    kind = getattr(dev, "device_kind", "") or dev.platform
    return {
        "backend": jax.default_backend(),
        "device": f"{dev.platform}:{kind} x{jax.device_count()}",
    }


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("optui", "jax", "jaxlib", "optax", "flax", "numpy", "tensorflow-datasets"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out
