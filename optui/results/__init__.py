"""What runs produced, in memory: histories (`runs`), the metrics a workload declares
(`metrics`) and statistics over replicates (`stats`). Plain data and numpy; imports nothing of
optui above it.
"""

from .runs import RunResult, UnitResult

__all__ = ["RunResult", "UnitResult"]
