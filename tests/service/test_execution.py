"""The executor seam: LocalExecutor trains groups and reports only to a narrow Recorder; the
engine's events carry no run id until the service stamps them; memory that does not fit is refused
with the numbers."""

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


def test_a_cancelled_executor_stops_after_a_chunk_and_says_interrupted(workload):
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
        self.batch_size, self.steps, self.replicates = 8, STEPS, replicates


def test_memory_that_does_not_fit_is_refused_with_the_numbers_before_any_training(workload):
    strategy = Strategy(scan=True, vmap_replicates=True)
    free = (10_000, 10**12, "test device")
    with pytest.raises(engine.DoesNotFit) as info:
        engine.fit(strategy, workload, [Need(1000)], POINTS, "p.toml", free=free)
    assert isinstance(info.value, PresetError)  # a preset asking for too much: exit 2, nothing stored
    assert str(info.value).startswith("p.toml: config sgd with 1,000 replicates needs about ")
    assert "memory" in str(info.value) and "free" in str(info.value)
    assert engine.fit(strategy, workload, [Need(2)], POINTS, "p.toml", free=(10**12, 10**12, "test")) is strategy
