"""A store run's life around its executor, shared by studies and searches.

An executor trains a run's groups of units: `LocalExecutor` here, chunk by chunk through
`engine.train_group`; `service.ray_executor.RayExecutor` as Ray tasks. Both implement `Executor`
and report to a `Recorder`: the run's sink, its events, and how each stretch of a group's training
ended. `RunDriver` is the recorder of a stored run: it records how each unit ended (scored by the
caller: a study's config is done, a search's trial is scored by its objective), counts the
training programs compiled, and records how the run ended whatever happens (done, interrupted, or
failed with the reason).
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np

from ..engine import (GroupOutcome, GroupRunner, Placement, Sink, Unit, block_length, compile_cache, describe,
                      for_user, train_group)
from ..optim import registry as optimizers
from ..errors import OptuiError, RunLostError, StoreError
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


@dataclass(frozen=True)
class RunContext:
    """What every executor trains a run's groups with."""

    workload: Workload
    eval_points: int
    checkpoint_seconds: float
    cancel: threading.Event
    data_hash: str | None = None  # the run's data fingerprint, for workers elsewhere to check


class Recorder(Protocol):
    """What an executor reports to: where chunks go, the events, and how groups ended."""

    sink: Sink

    def emit(self, event: Any) -> None:
        """An engine event of the run (the recorder stamps it with the run's id)."""

    def trained(self, group: list[UnitPlan], outcome: GroupOutcome,
                ended: dict[str, tuple[Status, dict[str, Any]]] | None = None) -> bool:
        """A stretch of a group's training: each unit gets its share of the time; the units in
        `ended` end as it says (None: all of them, scored if the group finished, else
        interrupted). Returns whether the group finished."""

    def failed(self, group: list[UnitPlan], message: str) -> None:
        """Every unit of a group that raised fails, with the reason."""

    def programs_used(self, plan: UnitPlan, used: Counter) -> None:
        """The training programs a group of plan's shape used: (members, steps per call) -> calls."""

    def note(self, **meta: Any) -> None:
        """Facts about the run worth keeping with it (the devices its workers had)."""


class Executor(Protocol):
    """Trains a run's groups, reporting to a recorder; returns (run status, first error)."""

    label: str | None  # where it trains, for the run's record (None: this process's devices)
    pauses: bool  # whether it can pause a group at a rung (early stopping)

    def train(self, groups: list[list[UnitPlan]], recorder: Recorder, context: RunContext, *,
              isolate_failures: bool = False, early_stop: EarlyStop | None = None) -> tuple[Status, str | None]:
        ...


class LocalExecutor:
    """Trains each group in turn in this process, on the devices of its placement."""

    label = None
    pauses = True

    def __init__(self, strategy: Strategy, compiled: CompiledGroups | None = None,
                 placement: Placement | None = None, bucket_members: bool = False):
        self.strategy = strategy
        self.compiled = compiled or CompiledGroups()
        self.placement = placement
        self.bucket_members = bucket_members

    def train(self, groups: list[list[UnitPlan]], recorder: Recorder, context: RunContext, *,
              isolate_failures: bool = False, early_stop: EarlyStop | None = None) -> tuple[Status, str | None]:
        """Train each group in turn; (run status, first error). Cancel stops after a chunk.

        isolate_failures: a group that raises fails its own units and the others go on (a
        search); otherwise the exception ends the run (a study).
        early_stop: pause each group at its rungs and drop the units it says stop.
        """
        errors: list[str] = []
        for group in groups[1:]:  # the first compiles here at once; the others meanwhile
            self._compile_ahead(group, context)
        for group in groups:
            if context.cancel.is_set():
                return Status.INTERRUPTED, None
            try:
                finished = self._train_group(group, recorder, context, early_stop)
            except (StoreError, OptuiError):
                raise
            except Exception as exc:
                message = describe(exc)  # e.g. out of memory: the other groups may still fit
                if not isolate_failures:
                    recorder.failed(group, message)  # the group that raised, even before its first chunk
                    raise
                errors.append(message)
                recorder.failed(group, message)
                continue
            if not finished:
                return Status.INTERRUPTED, None
        if errors:
            return Status.FAILED, f"{len(errors)} group(s) of trials failed: {errors[0]}"
        return Status.DONE, None

    def _compile_ahead(self, group: list[UnitPlan], context: RunContext) -> None:
        """Start compiling the program `group` will train with, on a background thread."""
        first = group[0]
        runner = self.compiled.runner(context.workload, first.optimizer, first.batch_size, self.strategy,
                                      self.placement)
        members = sum(p.replicates for p in group)
        length = block_length(first.steps, context.eval_points)
        width = runner.slots(runner.width_for(members, length) if self.bucket_members else members)
        keys = np.zeros((width, 2), np.uint32)
        names = optimizers.engine_inputs(first.optimizer, {n: np.zeros(width, np.float32) for n in first.hyperparams},
                                         first.steps, keys)
        runner.compile_ahead(width, length, list(names))

    def _train_group(self, group: list[UnitPlan], recorder: Recorder, context: RunContext,
                     early_stop: EarlyStop | None = None) -> bool:
        first = group[0]
        runner = self.compiled.runner(context.workload, first.optimizer, first.batch_size, self.strategy,
                                      self.placement)
        calls = Counter(runner.programs)
        live = list(group)
        saved = recorder.sink.checkpoint(first.name)  # a resumed group: rungs before it were decided
        rungs = [r for r in (early_stop.rungs(first) if early_stop else []) if saved is None or r >= saved[0]]
        for until in [*rungs, None]:
            outcome = train_group(runner, [p.unit for p in live], first.steps, context.eval_points, recorder.sink,
                                  cancel=context.cancel, checkpoint_seconds=context.checkpoint_seconds,
                                  emit=recorder.emit, until_chunk=until, bucket_members=self.bucket_members)
            if not outcome.paused:
                break
            stopped = early_stop.decide(live, until)
            recorder.trained(live, outcome, stopped)
            live = [p for p in live if p.name not in stopped]
            if not live:
                recorder.programs_used(first, runner.programs - calls)
                return True
            if context.cancel.is_set():
                outcome = dataclasses.replace(outcome, paused=False, finished=False, seconds=0.0)
                break
        recorder.programs_used(first, runner.programs - calls)
        return recorder.trained(live, outcome)


def _done(name: str) -> tuple[Status, dict[str, Any]]:
    return Status.DONE, {}


class RunDriver:
    """Trains one stored run's units through an executor and records their ends and the run's:
    the Recorder of a stored run."""

    def __init__(self, store: Store, run_id: str, workload: Workload, strategy: Strategy, *,
                 eval_points: int, checkpoint_seconds: float, emit: Listener,
                 cancel: threading.Event, compiled: CompiledGroups | None = None,
                 placement: Placement | None = None, executor: Executor | None = None,
                 bucket_members: bool = False):
        self.store = store
        self.run_id = run_id
        self.workload = workload
        self.strategy = strategy
        self.eval_points = eval_points
        self.checkpoint_seconds = checkpoint_seconds
        self.listener = emit
        self.cancel = cancel
        # None trains here (a LocalExecutor); else one that trains elsewhere (RayExecutor).
        # bucket_members: groups train at a few member widths, so a search's groups and rounds
        # reuse their programs (see engine.executor.member_bucket).
        self.executor = executor or LocalExecutor(strategy, compiled, placement, bucket_members)
        # The store's persistent compile cache, and the compile seconds this run adds.
        compile_cache.enable(store.path.parent)
        self._compile_base = compile_cache.compile_seconds()
        self.sink = StoreSink(store, run_id)
        # Training programs used, (optimizer, batch, members per call[, steps per call]), and how
        # many of them had to be compiled (the others were already in `compiled`).
        self.compiled_groups = compiled or getattr(self.executor, "compiled", None) or CompiledGroups()
        self.programs: set[tuple] = set()
        self.compiles = 0
        self._recorded = 0
        self._score: Scorer = _done
        self._on_finished: Callable[[UnitPlan, Status, dict[str, Any]], None] = lambda plan, status, extra: None

    def emit(self, event: Any) -> None:
        """Pass an event on to the listener, stamped with this run's id (the engine knows no run)."""
        if getattr(event, "run_id", None) == "":
            event = dataclasses.replace(event, run_id=self.run_id)
        self.listener(event)

    # -- units ---------------------------------------------------------------------------------
    def train(self, groups: list[list[UnitPlan]], score: Scorer = _done, *, isolate_failures: bool = False,
              on_finished: Callable[[UnitPlan, Status, dict[str, Any]], None] | None = None,
              early_stop: EarlyStop | None = None) -> tuple[Status, str | None]:
        """Train each group through the executor; (run status, first error). Cancel stops after a
        chunk. isolate_failures: a group that raises fails its own units and the others go on (a
        search). early_stop: pause each group at its rungs and drop the units it says stop."""
        self._score = score
        self._on_finished = on_finished or (lambda plan, status, extra: None)
        if early_stop is not None and not self.executor.pauses:
            # rungs pause a group in this process: not across workers yet
            raise OptuiError("a search with a pruner trains in this process; drop --ray (or "
                             "executor = \"ray\"), or set pruner = \"none\" to train on Ray")
        context = RunContext(self.workload, self.eval_points, self.checkpoint_seconds, self.cancel,
                             self._data_hash())
        return self.executor.train(groups, self, context, isolate_failures=isolate_failures, early_stop=early_stop)

    def _data_hash(self) -> str | None:
        meta = self.store.run_info(self.run_id)["meta"]
        return ((meta.get("fingerprint") or {}).get("data") or {}).get("hash")

    def failed(self, group: list[UnitPlan], message: str) -> None:
        """Record every unit of a group that raised as failed, with the reason."""
        for plan in group:
            self.store.finish_unit(self.run_id, plan.name, Status.FAILED, 0.0, {"error": message})
            self.emit(UnitFinished(self.run_id, plan.name, Status.FAILED, 0, 0.0))
            self._on_finished(plan, Status.FAILED, {"error": message})

    def trained(self, group: list[UnitPlan], outcome: GroupOutcome,
                ended: dict[str, tuple[Status, dict[str, Any]]] | None = None) -> bool:
        """Record a stretch of a group's training (Recorder.trained); whether the group finished."""
        # A unit's wall time is its share of its group's: the group trains as one program.
        share = outcome.seconds / len(group)
        for plan in group:
            self.store.add_unit_time(self.run_id, plan.name, share)
        if ended is None:
            ended = {p.name: self._score(p.name) if outcome.finished else (Status.INTERRUPTED, {}) for p in group}
        for plan in group:
            if plan.name in ended:
                self._finish(plan, *ended[plan.name], outcome.finished or outcome.paused, share, outcome)
        return outcome.finished

    def _finish(self, plan: UnitPlan, status: Status, extra: dict[str, Any], finished: bool, share: float,
                outcome: GroupOutcome) -> None:
        """Record how a unit ended (finished: trained as far as it will go) and tell listeners."""
        wall = self._unit_wall(plan.name)
        self.store.finish_unit(self.run_id, plan.name, status, wall, extra)
        diverged = extra.get("diverged", int((np.asarray(outcome.diverged_at[plan.name]) >= 0).sum()))
        self.emit(UnitFinished(self.run_id, plan.name, status, diverged, wall if finished else share))
        self._on_finished(plan, status, extra)

    def programs_used(self, plan: UnitPlan, used: Counter) -> None:
        """Count the training programs a group used, and those of them compiled for this run."""
        for members, length in used:
            program = ((plan.optimizer, plan.batch_size, members, length) if self.strategy.scan
                       else (plan.optimizer, plan.batch_size, members))
            self.programs.add(program)
            if program not in self.compiled_groups.programs:
                self.compiled_groups.programs.add(program)
                self.compiles += 1

    def note(self, **meta: Any) -> None:
        self.store.update_run_meta(self.run_id, **meta)

    def _unit_wall(self, name: str) -> float:
        return self.store.unit_row(self.run_id, name)["wall_time_s"]  # one row: O(1) in the trial count

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
        spent = compile_cache.compile_seconds() - self._compile_base
        self._compile_base += spent
        self.store.update_run_meta(self.run_id, compiles=int(meta.get("compiles") or 0) + self.compiles - self._recorded,
                                   programs=sorted(map(list, self.programs)),
                                   compile_seconds=round(float(meta.get("compile_seconds") or 0.0) + spent, 3))
        self._recorded = self.compiles


def end_run(store: Store, run_id: str, wall: float, exc: BaseException, emit: Callable[[Event], None]) -> None:
    """Record the run as interrupted (KeyboardInterrupt) or failed with the reason, if the store can."""
    interrupted = isinstance(exc, KeyboardInterrupt)
    message = None if interrupted else describe(exc)
    if isinstance(exc, RunLostError):  # taken over or deleted: the run is no longer this process's
        emit(RunFailed(run_id, message or "the run was lost"))
        return
    try:
        store.finish_run(run_id, Status.INTERRUPTED if interrupted else Status.FAILED, wall, message)
    except StoreError as store_exc:  # a full disk, say: the run then reads as interrupted
        message = f"{message or 'interrupted'}; the store could not record it either ({store_exc})"
    emit(RunFinished(run_id, Status.INTERRUPTED, wall) if interrupted else RunFailed(run_id, message))
