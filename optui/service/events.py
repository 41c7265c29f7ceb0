"""The events of a run, as the views receive them: the run's own (started, a unit finished, the
run finished or failed), stamped with its id here, and the engine's (a unit started, a chunk
done), which the service stamps with the run id before passing them on. A search adds two of its
own (optui.search.events).

Plain dataclasses of numpy arrays and Python numbers: safe to hand to another thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engine import ChunkDone, UnitStarted
from ..status import Status

__all__ = ["ChunkDone", "Event", "RunFailed", "RunFinished", "RunStarted", "UnitFinished", "UnitStarted"]


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    study: str
    kind: str  # "study" | "search" | "confirm"
    units: dict[str, tuple[int, int]]  # unit name -> (total steps, replicates)
    device: str
    strategy: str
    resumed: bool = False


@dataclass(frozen=True)
class UnitFinished:
    run_id: str
    unit: str
    status: Status  # how the unit ended: done, pruned, diverged, failed or interrupted
    diverged: int
    wall_time_s: float


@dataclass(frozen=True)
class RunFinished:
    run_id: str
    status: Status  # done | interrupted
    wall_time_s: float


@dataclass(frozen=True)
class RunFailed:
    run_id: str
    error: str


Event = RunStarted | UnitStarted | ChunkDone | UnitFinished | RunFinished | RunFailed
