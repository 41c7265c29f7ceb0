"""Quasi-hyperbolic momentum as an optui optimiser plug-in."""

from .qhm import qhm, quasi_hyperbolic

__all__ = ["qhm", "quasi_hyperbolic"]
