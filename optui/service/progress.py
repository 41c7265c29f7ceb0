"""One progress model for every view of a run: a pure reducer from events to a progress state.

The headless printers and the session all fold the same events through `reduce` and render the
state they get; what they keep themselves is only how they draw it (bars, logged lines). A unit's live histories are its chunks, assembled
by `UnitResult.from_chunks` like a stored unit's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..results import UnitResult
from ..search import TrialScored, TrialsPlanned
from ..status import FINISHED, Status
from .events import ChunkDone, RunFailed, RunFinished, RunStarted, UnitFinished, UnitStarted

WAITING, COMPILING, NOT_RUN = "waiting", "compiling", "not run"  # shown states of no stored status


def _finite_mean(values: Any) -> float | None:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else None


@dataclass(frozen=True)
class UnitProgress:
    """One config or trial as its events have told it so far."""

    name: str
    total_steps: int
    replicates: int
    spec: dict[str, Any] = field(default_factory=dict)
    steps_done: int = 0
    status: str = WAITING
    chunks: tuple[ChunkDone, ...] = ()
    diverged: int = 0
    last_eval: dict[str, float | None] = field(default_factory=dict)  # metric -> mean of the last eval
    elapsed_s: float = 0.0
    params: dict[str, float] = field(default_factory=dict)  # a trial's hyperparameters
    trial: int = 0
    objective: float | None = None

    def last_value(self, metric: str) -> float | None:
        return self.last_eval.get(metric)

    @property
    def has_data(self) -> bool:
        return bool(self.chunks)

    @property
    def fraction(self) -> float:
        return self.steps_done / max(self.total_steps, 1)

    def as_unit(self) -> UnitResult:
        return UnitResult.from_chunks(self.name, self.spec, self.replicates, self.chunks, status=self.status,
                                      total_steps=self.total_steps)


@dataclass(frozen=True)
class RunProgress:
    """A run (study, search or confirmation) as its events have told it so far."""

    run_id: str = ""
    study: str = ""
    kind: str = ""
    device: str = ""
    strategy: str = ""
    resumed: bool = False
    status: str = WAITING
    error: str | None = None
    wall_time_s: float = 0.0
    units: dict[str, UnitProgress] = field(default_factory=dict)
    # searches: the space, its objective, how the budget was set, and the groups in run order
    space: str = ""
    objective: str = ""
    budget: str = ""
    groups: tuple[tuple[str, int, tuple[str, ...]], ...] = ()

    @property
    def finished_units(self) -> int:
        return sum(u.status in FINISHED or u.status == Status.FAILED for u in self.units.values())


def _unit(state: RunProgress, name: str, **changes: Any) -> RunProgress:
    unit = state.units.get(name) or UnitProgress(name, changes.get("total_steps", 0), changes.get("replicates", 0))
    return dataclasses.replace(state, units={**state.units, name: dataclasses.replace(unit, **changes)})


def reduce(state: RunProgress, event: Any, specs: dict[str, dict[str, Any]] | None = None) -> RunProgress:
    """The progress after `event`; `state` is left as it was. specs: unit name -> its settings."""
    if isinstance(event, RunStarted):
        units = {name: UnitProgress(name, steps, reps, (specs or {}).get(name, {}))
                 for name, (steps, reps) in event.units.items()}
        return dataclasses.replace(state, run_id=event.run_id, study=event.study, kind=event.kind,
                                   device=event.device, strategy=event.strategy, resumed=event.resumed,
                                   status=Status.RUNNING, error=None, units=units)
    if isinstance(event, TrialsPlanned):
        state = dataclasses.replace(state, space=event.space, objective=event.objective, budget=event.budget,
                                    groups=tuple(event.groups))
        for t in event.trials:
            state = _unit(state, t["name"], total_steps=t["steps"], replicates=t["replicates"],
                          params=dict(t["params"]), trial=t["trial"], objective=t.get("objective"),
                          status=t["status"] if t["status"] in FINISHED else WAITING)
        return state
    if isinstance(event, UnitStarted):
        # A resumed unit keeps the chunks already told (its stored history) up to where it resumes.
        unit = state.units.get(event.unit)
        kept = tuple(c for c in (unit.chunks if unit else ()) if c.step_end <= event.steps_done)
        return _unit(state, event.unit, total_steps=event.total_steps, replicates=event.replicates,
                     steps_done=event.steps_done, status=COMPILING, chunks=kept)
    if isinstance(event, ChunkDone):
        unit = state.units.get(event.unit)
        chunks = (unit.chunks if unit else ()) + (event,)
        diverged = int((np.asarray(event.diverged_at) >= 0).sum()) if event.diverged_at is not None else 0
        last_eval = {**(unit.last_eval if unit else {}), **{k: _finite_mean(v) for k, v in event.eval.items()}}
        return _unit(state, event.unit, steps_done=event.step_end, total_steps=event.total_steps,
                     status=Status.RUNNING, chunks=chunks, diverged=diverged, last_eval=last_eval,
                     elapsed_s=event.elapsed_s)
    if isinstance(event, UnitFinished):
        changes: dict[str, Any] = {"status": event.status}
        if event.diverged >= 0:
            changes["diverged"] = event.diverged
        return _unit(state, event.unit, **changes)
    if isinstance(event, TrialScored):
        return _unit(state, event.unit, status=event.status, objective=event.objective, params=dict(event.params))
    if isinstance(event, RunFinished):
        units = {n: (dataclasses.replace(u, status=NOT_RUN) if u.status == WAITING else u)
                 for n, u in state.units.items()}
        return dataclasses.replace(state, status=event.status, wall_time_s=event.wall_time_s, units=units)
    if isinstance(event, RunFailed):
        return dataclasses.replace(state, status=Status.FAILED, error=event.error)
    return state
