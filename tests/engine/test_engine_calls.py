"""Device calls of several eval blocks: one program per group whatever the step count and the
blocks per call, member buckets whose padding is never recorded, checkpoints by time, programs
compiled ahead, and the persistent compile cache beside the store."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from optui.engine import compile_cache, core
from optui.engine.checkpoints import state_from_bytes
from optui.engine.core import GroupRunner, Pacer, member_keys, run_calls
from optui.engine.events import ChunkDone
from optui.engine.executor import CheckpointClock, Unit, member_bucket, train_group
from optui.engine.sink import MemorySink
from optui.workloads import twnet
from optui.workloads.base import Strategy
from optui.workloads.twnet_data import synthetic

from support.common import ROOT, tiny_preset_text

BATCH = 8


@pytest.fixture(scope="module")
def runner():
    workload = twnet.make_workload(synthetic(20, 120, 3, seed=1))
    return GroupRunner(workload, "adam", BATCH, Strategy(scan=True, vmap_replicates=True))


def hparams(n: int, lr: float = 0.02) -> dict[str, np.ndarray]:
    return {"learning_rate": np.full(n, lr, np.float32), "b1": np.full(n, 0.9, np.float32),
            "b2": np.full(n, 0.999, np.float32), "eps": np.full(n, 1e-8, np.float32)}


def unit(name: str, index: int, members: int = 1, lr: float = 0.02) -> Unit:
    return Unit(name, member_keys(5, members, index), {"learning_rate": lr, "b1": 0.9, "b2": 0.999, "eps": 1e-8})


def flatten(calls):
    return [o for outs, _ in calls for o in outs]


def test_one_program_whatever_the_remainder_and_the_blocks_per_call(runner):
    keys = member_keys(0, 2)
    # 13 steps in 4 chunks of 3, 3, 4 and 3 steps: one program (blocks of 4 step slots), whatever
    # the chunk lengths and however many blocks a call holds.
    before = runner._blocks._cache_size()
    one = flatten(run_calls(runner, keys, hparams(2), 13, 4, pacer=Pacer(fixed=1)))
    after_one = runner._blocks._cache_size()
    three = flatten(run_calls(runner, keys, hparams(2), 13, 4, pacer=Pacer(fixed=3)))
    assert runner._blocks._cache_size() == after_one == before + 1
    assert [(o.step_start, o.step_end) for o in one] == [(0, 0), (0, 3), (3, 6), (6, 10), (10, 13)]
    for a, b in zip(one, three):  # results do not depend on how chunks are grouped into calls
        np.testing.assert_array_equal(a.minibatch_loss, b.minibatch_loss)
        np.testing.assert_array_equal(a.eval["test_loss"], b.eval["test_loss"])
    assert all(o.minibatch_loss.shape == (2, o.step_end - o.step_start) for o in one)
    assert np.isfinite(np.concatenate([o.minibatch_loss for o in one], axis=1)).all()


def test_a_paced_run_groups_chunks_into_few_calls(runner):
    calls = list(run_calls(runner, member_keys(0, 2), hparams(2), 40, 20))
    chunks = [o.chunk_index for outs, _ in calls for o in outs]
    assert chunks == list(range(-1, 20))
    assert len(calls) < len(chunks) and len(calls[0][0]) == 1  # the first call (it compiles) is short


def test_pacer_sizes_calls_by_measured_time():
    pacer = Pacer(target=0.5)
    assert pacer.next(100) == 1  # the first call compiles
    assert pacer.next(100) == 4
    pacer.observe(4, 4 / 64, host_was_late=False)  # 1/64 s a block: 32 blocks make 0.5 s
    assert pacer.next(100) == 32
    pacer.observe(32, 32 / 256, host_was_late=False)  # 1/256 s a block: 128, but at most 64
    assert pacer.next(100) == 64 and pacer.next(7) == 7
    pacer.observe(64, 8.0, host_was_late=True)  # a late host measured nothing new: no shrinking
    assert pacer.next(100) == 64
    pacer.observe(64, 8.0, host_was_late=False)  # 1/8 s a block
    assert pacer.next(100) == 4
    assert Pacer(target=0.0).next(100) == 1


def test_member_buckets():
    assert [member_bucket(n) for n in (1, 2, 3, 4, 5, 8, 9, 17, 20)] == [1, 2, 4, 4, 8, 8, 16, 24, 24]


def test_bucket_padding_is_never_recorded(runner):
    units = [unit("a", 0), unit("b", 1, lr=0.05), unit("c", 2, members=1, lr=0.01)]  # 3 members: width 4
    plain, padded = MemorySink(), MemorySink()
    train_group(runner, units, 12, 3, plain)
    bucketed = GroupRunner(runner.workload, "adam", BATCH, runner.strategy)  # no width compiled yet
    train_group(bucketed, units, 12, 3, padded, bucket_members=True, until_chunk=1)
    assert set(bucketed.programs) == {(4, core.block_length(12, 3))}
    for u in units:
        for out in padded.chunks[u.name].values():
            assert out.minibatch_loss.shape[0] == 1 and all(v.shape == (1,) for v in out.eval.values())
        # The checkpoint holds the unit's own member only.
        _, blob = padded.checkpoints[u.name]
        template = runner.init(u.keys, {k: np.full(1, v, np.float32) for k, v in u.hparams.items()})
        restored = state_from_bytes(template, blob)
        assert np.shape(restored.params)[0] == 1
    train_group(bucketed, units, 12, 3, padded, bucket_members=True)  # resumed at width 4 again
    assert set(bucketed.programs) == {(4, core.block_length(12, 3))}
    for u in units:
        assert sorted(padded.chunks[u.name]) == sorted(plain.chunks[u.name])
        for i, out in plain.chunks[u.name].items():
            np.testing.assert_array_equal(padded.chunks[u.name][i].minibatch_loss, out.minibatch_loss)
            np.testing.assert_array_equal(padded.chunks[u.name][i].eval["test_loss"], out.eval["test_loss"])


def test_bucketed_groups_reuse_a_wider_program(runner):
    fresh = GroupRunner(runner.workload, "adam", BATCH, runner.strategy)
    length = core.block_length(12, 3)
    assert fresh.width_for(3, length) == 4  # nothing compiled: the bucket
    fresh.programs[(4, length)] += 1  # as if a group of 4 had trained
    assert fresh.width_for(1, length) == 4 and fresh.width_for(3, length) == 4
    assert fresh.width_for(5, length) == 8  # nothing compiled at 5..20: the bucket
    assert fresh.width_for(1, length + 1) == 1  # another block length is another program


def test_cancel_records_every_announced_chunk_and_checkpoints_the_last(runner, monkeypatch):
    monkeypatch.setattr(core, "TARGET_CALL_SECONDS", 0.0)  # one block per call
    cancel = threading.Event()
    announced = []

    def emit(e):
        if isinstance(e, ChunkDone):
            announced.append((e.unit, e.chunk_index))
            if e.chunk_index == 1:
                cancel.set()

    sink = MemorySink()
    units = [unit("a", 0, members=2)]
    outcome = train_group(runner, units, 12, 6, sink, cancel=cancel, emit=emit, checkpoint_seconds=3600)
    assert not outcome.finished
    assert announced == [("a", i) for i in sorted(sink.chunks["a"])]  # nothing announced unrecorded
    # The call already trained when the stop came is kept too; stopping always checkpoints.
    assert sink.checkpoints["a"][0] == max(sink.chunks["a"]) in (1, 2)


def test_checkpoint_clock_is_by_time():
    clock = CheckpointClock(3600.0)
    assert not clock.due(final=False, stopping=False)
    assert clock.due(final=False, stopping=True)
    assert not clock.due(final=True, stopping=True)  # a finished unit needs none
    always = CheckpointClock(0.0)
    assert always.due(final=False, stopping=False)


def test_a_program_compiled_ahead_gives_the_same_results(runner):
    fresh = GroupRunner(runner.workload, "adam", BATCH, Strategy(scan=True, vmap_replicates=True))
    keys = member_keys(3, 2)
    names = list(hparams(2))
    fresh.compile_ahead(2, core.block_length(12, 4), names)
    fresh._ahead[(2, core.block_length(12, 4))].result(timeout=300)
    ahead = flatten(run_calls(fresh, keys, hparams(2), 12, 4))
    assert fresh._blocks._cache_size() == 0  # the jit path never compiled
    jitted = flatten(run_calls(runner, keys, hparams(2), 12, 4))
    for a, b in zip(ahead, jitted):
        np.testing.assert_array_equal(a.minibatch_loss, b.minibatch_loss)
        np.testing.assert_array_equal(a.eval["train_loss"], b.eval["train_loss"])


def test_compile_cache_location_and_opt_out(monkeypatch, tmp_path):
    monkeypatch.delenv(compile_cache.ENV, raising=False)
    assert compile_cache.location(tmp_path) == tmp_path / "jax-cache"
    monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "elsewhere"))
    assert compile_cache.location(tmp_path) == tmp_path / "elsewhere"
    for off in ("0", "off", "false"):
        monkeypatch.setenv(compile_cache.ENV, off)
        assert compile_cache.location(tmp_path) is None


RUN_TWICE = """
import json, sys
from optui.study import presets
from optui.service import StudyRunner
from optui.store import Store
store = Store.open(sys.argv[2])
StudyRunner(presets.load(sys.argv[1]), store).run()
print(json.dumps(store.run_info(store.list_runs()[-1]["id"])["meta"]["compile_seconds"]))
"""


@pytest.mark.parametrize("setting", ["", pytest.param("0", marks=pytest.mark.slow)])
def test_a_repeated_study_loads_its_programs_from_the_store_cache(tmp_path, setting):
    preset = tmp_path / "tiny.toml"
    preset.write_text(tiny_preset_text(iterations=8, points=2, replicates=2), encoding="utf-8")
    env = {"PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin",
           compile_cache.ENV: setting}
    store = tmp_path / "runs"

    def once() -> float:
        proc = subprocess.run([sys.executable, "-c", RUN_TWICE, str(preset), str(store)], env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])

    first, second = once(), once()
    cache = store / "jax-cache"
    if setting == "0":
        assert not cache.exists()
        assert second > 0.3 * first  # compiled again
    else:
        assert any(cache.iterdir())
        assert second < 0.3 * first  # loaded, not compiled
