"""Optional packages (tensorboardX, pandas, ray): imported when a feature needs them, with the install
command in the error when they are missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import UsageError

# module -> (optui extra that installs it, the package's own name on PyPI)
EXTRAS = {"tensorboardX": ("tensorboard", "tensorboardX"), "pandas": ("notebook", "pandas"),
          "optuna": ("search", "optuna"), "cmaes": ("search", "cmaes"),
          "ray": ("ray", "ray"),
          "textual_serve.server": ("serve", "textual-serve")}


class MissingDependency(UsageError, ImportError):
    """An optional package a feature needs is not installed; the message says how to install it
    (a usage error: the CLI exits 2)."""


def install_hint(module: str) -> str:
    extra, package = EXTRAS[module]
    return f"pip install 'optui[{extra}]'  (or: pip install {package})"


def require(module: str, purpose: str) -> ModuleType:
    """Import module, or raise MissingDependency naming purpose and the install command."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependency(f"{purpose} needs the optional package {module}: "
                                f"{install_hint(module)}") from None
