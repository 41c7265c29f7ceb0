"""A store run's life around the executor, shared by studies and searches.

`RunDriver` trains a run's units group by group through `engine.executor.train_group` into the
store, records how each unit ended (scored by the caller: a study's config is done, a search's
trial is scored by its objective), counts the training programs compiled, and records how the
run ended whatever happens (done, interrupted, or failed with the reason).
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..engine import GroupRunner, Placement, Unit, describe, for_user, train_group
from ..errors import OptuiError, StoreError
from ..status import Status
from ..store import Store
from ..workloads.base import Strategy, Workload
from .events import Event, RunFailed, RunFinished, UnitFinished
from .store_sink import StoreSink

Listener = Callable[[Any], None]
# unit name -> (status, extra) for a unit trained to its last step
Scorer = Callable[[str], tuple[Status, dict[str, Any]]]


@dataclass(frozen=True)
class UnitPlan:
    """A unit of a run with what groups it: optimiser, batch size and steps."""

    unit: Unit
    optimizer: str
    batch_size: int
    steps: int

    @property
    def name(self) -> str:
        return self.unit.name

    @property
    def replicates(self) -> int:
        return self.unit.replicates

    @property
    def hyperparams(self) -> dict[str, float]:
        return self.unit.hparams


class CompiledGroups:
    """GroupRunners (and the programs they compiled) kept across runs on one workload, so a
    session that searches again, confirms or re-runs does not recompile a shape it has run."""

    def __init__(self) -> None:
        self.workload: Any = None
        self.runners: dict[tuple, GroupRunner] = {}
        self.programs: set[tuple] = set()

    def runner(self, workload: Workload, optimizer: str, batch_size: int, strategy: Strategy,
               placement: Placement | None = None) -> GroupRunner:
        if workload is not self.workload:  # compiled code belongs to one workload's functions
            self.workload, self.runners, self.programs = workload, {}, set()
        key = (optimizer, batch_size, strategy, placement.devices if placement else None)
        if key not in self.runners:
            self.runners[key] = GroupRunner(workload, optimizer, batch_size, strategy, placement)
        return self.runners[key]


@dataclass(frozen=True)
class EarlyStop:
    """Where a group pauses and which of its units then stop (early stopping, e.g. pruning).

    rungs(plan): the chunk indices at which a group of plan's shape pauses, ascending.
    decide(live units, chunk): the units that stop there, unit -> (status, extra). The others
    continue from that chunk as a smaller group (re-packed: stopped units use no more compute).
    """

    rungs: Callable[[UnitPlan], list[int]]
    decide: Callable[[list[UnitPlan], int], dict[str, tuple[Status, dict[str, Any]]]]


def _done(name: str) -> tuple[Status, dict[str, Any]]:
    return Status.DONE, {}


class RunDriver:
    """Trains one stored run's units and records their ends and the run's."""

    def __init__(self, store: Store, run_id: str, workload: Workload, strategy: Strategy, *,
                 eval_points: int, checkpoint_seconds: float, emit: Listener,
                 cancel: threading.Event, compiled: CompiledGroups | None = None,
                 placement: Placement | None = None, executor: Any = None):
        self.store = store
        self.run_id = run_id
        self.workload = workload
        self.strategy = strategy
        self.eval_points = eval_points
        self.checkpoint_seconds = checkpoint_seconds
        self.listener = emit
        self.cancel = cancel
        self.compiled = compiled or CompiledGroups()
        self.placement = placement
        # None trains here; else an object with train(driver, groups, score, isolate_failures,
        # on_finished) that trains the groups elsewhere (service.ray_executor.RayExecutor).
        self.executor = executor
        self.sink = StoreSink(store, run_id)
        # Training programs used, (optimizer, batch, members per call[, steps per call]), and how
        # many of them had to be compiled (the others were already in `compiled`).
        self.programs: set[tuple] = set()
        self.compiles = 0
        self._recorded = 0

    def emit(self, event: Any) -> None:
        """Pass an event on to the listener, stamped with this run's id (the engine knows no run)."""
        if getattr(event, "run_id", None) == "":
            event = dataclasses.replace(event, run_id=self.run_id)
        self.listener(event)

    # -- units ---------------------------------------------------------------------------------
    def train(self, groups: list[list[UnitPlan]], score: Scorer = _done, *, isolate_failures: bool = False,
              on_finished: Callable[[UnitPlan, Status, dict[str, Any]], None] | None = None,
              early_stop: EarlyStop | None = None) -> tuple[Status, str | None]:
        """Train each group in turn; (run status, first error). Cancel stops after a chunk.

        isolate_failures: a group that raises fails its own units and the others go on (a
        search); otherwise the exception ends the run (a study).
        early_stop: pause each group at its rungs and drop the units it says stop.
        """
        on_finished = on_finished or (lambda plan, status, extra: None)
        if self.executor is not None:
            if early_stop is not None:  # rungs pause a group in this process: not across workers yet
                raise OptuiError("a search with a pruner trains in this process; drop --ray (or "
                                 "executor = \"ray\"), or set pruner = \"none\" to train on Ray")
            return self.executor.train(self, groups, score, isolate_failures=isolate_failures,
                                       on_finished=on_finished)
        errors: list[str] = []
        for group in groups:
            if self.cancel.is_set():
                return Status.INTERRUPTED, None
            try:
                finished = self._train_group(group, score, on_finished, early_stop)
            except (StoreError, OptuiError):
                raise
            except Exception as exc:
                if not isolate_failures:
                    raise
                message = describe(exc)  # e.g. out of memory: the other groups may still fit
                errors.append(message)
                self.fail_group(group, message, on_finished)
                continue
            if not finished:
                return Status.INTERRUPTED, None
        if errors:
            return Status.FAILED, f"{len(errors)} group(s) of trials failed: {errors[0]}"
        return Status.DONE, None

    def fail_group(self, group: list[UnitPlan], message: str, on_finished: Callable) -> None:
        """Record every unit of a group that raised as failed, with the reason."""
        for plan in group:
            self.store.finish_unit(self.run_id, plan.name, Status.FAILED, 0.0, {"error": message})
            self.emit(UnitFinished(self.run_id, plan.name, Status.FAILED, 0, 0.0))
            on_finished(plan, Status.FAILED, {"error": message})

    def _train_group(self, group: list[UnitPlan], score: Scorer, on_finished: Callable,
                     early_stop: EarlyStop | None = None) -> bool:
        first = group[0]
        runner = self.compiled.runner(self.workload, first.optimizer, first.batch_size, self.strategy,
                                      self.placement)
        calls = Counter(runner.programs)
        live = list(group)
        saved = self.sink.checkpoint(first.name)  # a resumed group: rungs before it were decided
        rungs = [r for r in (early_stop.rungs(first) if early_stop else []) if saved is None or r >= saved[0]]
        for until in [*rungs, None]:
            outcome = train_group(runner, [p.unit for p in live], first.steps, self.eval_points, self.sink,
                                  cancel=self.cancel, checkpoint_seconds=self.checkpoint_seconds,
                                  emit=self.emit, until_chunk=until)
            if not outcome.paused:
                break
            # A unit's wall time is its share of its group's: the group trains as one program.
            share = outcome.seconds / len(live)
            for plan in live:
                self.store.add_unit_time(self.run_id, plan.name, share)
            stopped = early_stop.decide(live, until)
            for plan in live:
                if plan.name in stopped:
                    self._finish(plan, *stopped[plan.name], True, share, outcome, on_finished)
            live = [p for p in live if p.name not in stopped]
            if not live:
                self.count_programs(first, runner.programs - calls)
                return True
            if self.cancel.is_set():
                outcome = dataclasses.replace(outcome, paused=False, finished=False, seconds=0.0)
                break
        self.count_programs(first, runner.programs - calls)
        return self.finish_group(live, outcome, score, on_finished)

    def finish_group(self, group: list[UnitPlan], outcome: Any, score: Scorer, on_finished: Callable) -> bool:
        """Record how a trained group's units ended (an engine.executor.GroupOutcome); its finished."""
        # A unit's wall time is its share of its group's: the group trains as one program.
        share = outcome.seconds / len(group)
        for plan in group:
            self.store.add_unit_time(self.run_id, plan.name, share)
            status, extra = score(plan.name) if outcome.finished else (Status.INTERRUPTED, {})
            self._finish(plan, status, extra, outcome.finished, share, outcome, on_finished)
        return outcome.finished

    def _finish(self, plan: UnitPlan, status: Status, extra: dict[str, Any], finished: bool, share: float,
                outcome: Any, on_finished: Callable) -> None:
        """Record how a unit ended (finished: trained as far as it will go) and tell listeners."""
        wall = self._unit_wall(plan.name)
        self.store.finish_unit(self.run_id, plan.name, status, wall, extra)
        diverged = extra.get("diverged", int((np.asarray(outcome.diverged_at[plan.name]) >= 0).sum()))
        self.emit(UnitFinished(self.run_id, plan.name, status, diverged, wall if finished else share))
        on_finished(plan, status, extra)

    def count_programs(self, plan: UnitPlan, used: Counter) -> None:
        for members, length in used:
            program = ((plan.optimizer, plan.batch_size, members, length) if self.strategy.scan
                       else (plan.optimizer, plan.batch_size, members))
            self.programs.add(program)
            if program not in self.compiled.programs:
                self.compiled.programs.add(program)
                self.compiles += 1

    def _unit_wall(self, name: str) -> float:
        return next(r["wall_time_s"] for r in self.store.unit_rows(self.run_id) if r["name"] == name)

    # -- the run -------------------------------------------------------------------------------
    def conclude(self, work: Callable[[], tuple[Status, str | None]], prior_wall: float) -> Status:
        """Run work() and record how the run ended (done, interrupted, failed), whatever happens."""
        started = time.perf_counter()
        try:
            status, error = work()
        except BaseException as exc:
            with contextlib.suppress(StoreError):
                self._record_programs()
            end_run(self.store, self.run_id, prior_wall + time.perf_counter() - started, exc, self.emit)
            user_exc = for_user(exc, self.run_id)
            if user_exc is exc:
                raise
            raise user_exc from None
        wall = prior_wall + time.perf_counter() - started
        self._record_programs()
        self.store.finish_run(self.run_id, status, wall, error)
        if status == Status.FAILED:
            self.emit(RunFailed(self.run_id, error or "some units failed"))
        else:
            self.emit(RunFinished(self.run_id, status, wall))
        return status

    def _record_programs(self) -> None:
        meta = self.store.run_info(self.run_id)["meta"]
        # Summed over the sessions that ran this run (a resumed run compiles afresh).
        self.store.update_run_meta(self.run_id, compiles=int(meta.get("compiles") or 0) + self.compiles - self._recorded,
                                   programs=sorted(map(list, self.programs)))
        self._recorded = self.compiles


def end_run(store: Store, run_id: str, wall: float, exc: BaseException, emit: Callable[[Event], None]) -> None:
    """Record the run as interrupted (KeyboardInterrupt) or failed with the reason, if the store can."""
    interrupted = isinstance(exc, KeyboardInterrupt)
    message = None if interrupted else describe(exc)
    try:
        store.finish_run(run_id, Status.INTERRUPTED if interrupted else Status.FAILED, wall, message)
    except StoreError as store_exc:  # a full disk, say: the run then reads as interrupted
        message = f"{message or 'interrupted'}; the store could not record it either ({store_exc})"
    emit(RunFinished(run_id, Status.INTERRUPTED, wall) if interrupted else RunFailed(run_id, message))
