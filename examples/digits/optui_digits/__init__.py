"""optui-digits: an example workload plug-in for optui (see README.md)."""

from .workload import workload

__all__ = ["workload"]
