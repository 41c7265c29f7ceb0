"""The executor seam: LocalExecutor trains groups and reports only to a narrow Recorder; the
engine's events carry no run id until the service stamps them; memory planning's numbers are the
engine's, worded for the user by the service."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from optui import engine
from optui.engine import ChunkDone, MemorySink, Unit, UnitStarted, member_keys
from optui.errors import PresetError
from optui.service.execution import LocalExecutor, RunContext, RunDriver, UnitPlan
from optui.status import Status
from optui.workloads.base import Strategy
from support import tinywork

STEPS, POINTS = 8, 2


class ListRecorder:
    """A Recorder that keeps what it is told: the whole of what an executor may report to."""

    def __init__(self) -> None:
        self.sink = MemorySink()
        self.events: list = []
        self.stretches: list = []
        self.failures: list = []
        self.programs: Counter = Counter()
        self.notes: dict = {}

    def emit(self, event) -> None:
        self.events.append(event)

    def trained(self, group, outcome, ended=None) -> bool:
        self.stretches.append(([p.name for p in group], outcome, ended))
        return outcome.finished

    def failed(self, group, message) -> None:
        self.failures.append(([p.name for p in group], message))

    def programs_used(self, plan, used) -> None:
        self.programs.update(used)

    def note(self, **meta) -> None:
        self.notes.update(meta)


def plan(name: str, index: int, lr: float) -> UnitPlan:
    return UnitPlan(Unit(name, member_keys(0, 2, index), {"learning_rate": lr}), "sgd", 8, STEPS)


@pytest.fixture(scope="module")
def workload():
    return tinywork.make()


def context(workload, cancel: threading.Event | None = None) -> RunContext:
    return RunContext(workload, POINTS, 60.0, cancel or threading.Event())


def test_local_executor_reports_chunks_events_and_each_groups_end_to_its_recorder(workload):
    recorder = ListRecorder()
    executor = LocalExecutor(Strategy(scan=True, vmap_replicates=True))
    groups = [[plan("a", 0, 0.1), plan("b", 1, 0.05)], [plan("c", 2, 0.01)]]
    status, error = executor.train(groups, recorder, context(workload))
    assert (status, error) == (Status.DONE, None)
    assert [names for names, _, _ in recorder.stretches] == [["a", "b"], ["c"]]
    assert all(outcome.finished and ended is None for _, outcome, ended in recorder.stretches)
    assert {u: sorted(c) for u, c in recorder.sink.chunks.items()} == {u: [-1, 0, 1] for u in "abc"}  # -1: step 0
    started = [e for e in recorder.events if isinstance(e, UnitStarted)]
    chunks = [e for e in recorder.events if isinstance(e, ChunkDone)]
    assert [e.unit for e in started] == ["a", "b", "c"] and len(chunks) == 9
    assert {e.run_id for e in recorder.events} == {""}  # the engine knows no run
    assert sum(recorder.programs.values()) > 0 and recorder.failures == []


def test_a_cancelled_executor_stops_after_a_chunk_and_says_interrupted(workload, monkeypatch):
    from optui.engine import core

    monkeypatch.setattr(core, "TARGET_CALL_SECONDS", 0.0)  # one eval block per device call
    recorder, cancel = ListRecorder(), threading.Event()
    recorder.emit = lambda e: cancel.set() if isinstance(e, ChunkDone) else None
    status, _ = LocalExecutor(Strategy(scan=True, vmap_replicates=True)).train(
        [[plan("a", 0, 0.1)], [plan("b", 1, 0.1)]], recorder, context(workload, cancel))
    assert status == Status.INTERRUPTED
    assert [names for names, _, _ in recorder.stretches] == [["a"]]  # b never started
    assert not recorder.stretches[0][1].finished


def test_a_group_that_raises_fails_alone_when_failures_are_isolated(workload, monkeypatch):
    import optui.service.execution as execution

    real = execution.train_group

    def on_fire(runner, units, *args, **kwargs):
        if units[0].name == "bad":
            raise RuntimeError("device on fire")
        return real(runner, units, *args, **kwargs)

    monkeypatch.setattr(execution, "train_group", on_fire)
    recorder = ListRecorder()
    status, error = LocalExecutor(Strategy(scan=True, vmap_replicates=True)).train(
        [[plan("bad", 0, 0.1)], [plan("ok", 1, 0.1)]], recorder, context(workload), isolate_failures=True)
    assert (status, error) == (Status.FAILED, "1 group(s) of trials failed: RuntimeError: device on fire")
    assert [names for names, _ in recorder.failures] == [["bad"]]
    assert [names for names, _, _ in recorder.stretches] == [["ok"]]


def test_the_run_driver_stamps_the_engines_events_with_its_run(tmp_path):
    from optui.store import Store

    store = Store.open(tmp_path / "runs")
    run_id = store.create_run("s", "tiny", "study", "", None, {})
    seen: list = []
    driver = RunDriver(store, run_id, None, Strategy(), eval_points=POINTS, checkpoint_seconds=60.0,
                       emit=seen.append, cancel=threading.Event())
    driver.emit(UnitStarted("a", STEPS, 2))
    assert seen == [UnitStarted("a", STEPS, 2, run_id=run_id)]
    store.finish_run(run_id, "done", 0.0)
    store.close()


class Need:
    def __init__(self, replicates: int):
        self.name, self.optimizer, self.hyperparams = "sgd", "sgd", {"learning_rate": 0.1}
        self.steps, self.replicates = STEPS, replicates


def test_memory_that_does_not_fit_is_the_engines_numbers_and_the_services_words(workload, monkeypatch):
    from optui.service.studies import fit_memory

    strategy = Strategy(scan=True, vmap_replicates=True)
    free = (10_000, 10**12, "test device")
    # The compile reserve is measured by earlier plans in the process: none here, so the numbers
    # below are this block's alone.
    monkeypatch.setattr("optui.engine.memory.reserve_bytes", lambda: 0)
    with pytest.raises(engine.DoesNotFit) as info:
        engine.fit(strategy, workload, [Need(1000)], POINTS, free=free)
    e = info.value
    assert (e.memory, e.block, e.members, e.free) == ("device", "sgd", 1000, 10_000)
    assert e.needed > e.free and 0 <= e.most_members < 1000 and e.per_member > 0

    class Study:
        eval_points, path, spec = POINTS, "p.toml", None

    monkeypatch.setattr("optui.engine.memory.free_memory", lambda: free)
    with pytest.raises(PresetError, match=rf"p.toml: config sgd with 1,000 replicates needs about .* train at "
                                          rf"most {e.most_members} replicates per run \(replicates.count or --replicates\)"):
        fit_memory(strategy, workload, [Need(1000)], Study())
