"""Workload registry. Modules are imported lazily: MNIST pulls in Flax, TwNet does not."""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import PresetError

WORKLOADS = {
    "twnet": "optui.workloads.twnet",
    "mnist": "optui.workloads.mnist",
}


def module(name: str, file: str | None = None) -> ModuleType:
    """The workload module. Each exposes validate_settings(raw, file) and build(study)."""
    if name not in WORKLOADS:
        loc = f"{file}: workload" if file else "workload"
        raise PresetError(f"{loc} must be one of {', '.join(repr(w) for w in WORKLOADS)}, got {name!r}")
    return importlib.import_module(WORKLOADS[name])
