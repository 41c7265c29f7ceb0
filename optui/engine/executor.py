"""The one training loop: a group of units trained together, chunk by chunk, into a sink.

A unit is a named block of members that share hyperparameters: a config's seed replicates, or
a search trial's. Units of one group share an optimiser, a batch size and a step count, so the
group trains as one compiled program (GroupRunner). A study trains one unit per group; a search
trains every trial of a batch size together. Both come through `train_group`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from .checkpoints import state_from_bytes, state_to_bytes
from . import core
from .core import ChunkOutput, GroupRunner, chunk_bounds
from .events import ChunkDone, EngineEvent, UnitStarted
from .sink import Sink

@dataclass(frozen=True)
class Unit:
    """A named block of members: their keys (members, 2) and the hyperparameters they share."""

    name: str
    keys: np.ndarray
    hparams: dict[str, float]

    @property
    def replicates(self) -> int:
        return len(self.keys)


@dataclass(frozen=True)
class GroupOutcome:
    """How a group's training ended: finished, cancelled after a recorded chunk, or paused at
    `until_chunk` with every unit checkpointed there (continue any subset of them)."""

    finished: bool
    seconds: float
    diverged_at: dict[str, np.ndarray]  # unit -> (members,), -1 where healthy
    paused: bool = False


class CheckpointClock:
    """When to checkpoint: every `every` seconds of training, and always when stopping part-way
    (cancelled or paused). Never after the final chunk (the unit is then done). So a kill re-does
    at most `every` seconds of training (plus the device call in flight)."""

    def __init__(self, every: float):
        self.every = every
        self.last = time.monotonic()

    def due(self, final: bool, stopping: bool) -> bool:
        if final:
            return False
        if stopping or time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            return True
        return False


def member_bucket(members: int) -> int:
    """The member width a group of `members` trains at when bucketed: the next power of two up
    to 8 (small groups cost little more at twice the width), then the next multiple of 8."""
    if members <= 8:
        return 1 << (members - 1).bit_length()
    return -(-members // 8) * 8


def record(sink: Sink, unit: str, outs: list[ChunkOutput], state: bytes | None) -> None:
    """Hand a device call's chunks of one unit to the sink (the state with the last of them):
    in one go where the sink can (one store transaction), else chunk by chunk."""
    many = getattr(sink, "chunk_batch", None)
    if many is not None:
        many(unit, outs, state)
        return
    for o in outs[:-1]:
        sink.chunk(unit, o, None)
    sink.chunk(unit, outs[-1], state)


def _resume_point(units: list[Unit], sink: Sink) -> tuple[int | None, list[bytes]]:
    saved = [sink.checkpoint(u.name) for u in units]
    chunks = {s[0] if s else None for s in saved}
    if len(chunks) != 1:
        raise ValueError("the units of one group must resume from the same chunk")
    chunk = chunks.pop()
    return chunk, [s[1] for s in saved] if chunk is not None else []


def train_group(runner: GroupRunner, units: list[Unit], steps: int, eval_points: int, sink: Sink, *,
                cancel: threading.Event | None = None, checkpoint_seconds: float = 10.0,
                emit: Callable[[EngineEvent], None] | None = None,
                until_chunk: int | None = None, bucket_members: bool = False) -> GroupOutcome:
    """Train `units` for `steps` steps with `eval_points` evals, from their last checkpoint if any.

    Every chunk goes to the sink (per unit) before its ChunkDone event; cancel is checked after
    each chunk, so a cancelled group has lost nothing it trained.

    until_chunk: stop after that chunk (not the last), checkpointing every unit there, and return
    paused. Calling again with any subset of the units continues them from that chunk as a
    smaller group: members dropped in between use no more compute (early stopping).

    bucket_members: train at a bucket width (member_bucket) so that groups of other sizes (a
    search's rounds and re-packed survivors) reuse one compiled program; padding is never recorded.
    """
    emit = emit or (lambda e: None)
    cancel = cancel or threading.Event()
    vmapped = runner.strategy.vmap_replicates
    keys = np.concatenate([u.keys for u in units])
    hparams = {n: np.concatenate([np.full(u.replicates, u.hparams[n], np.float32) for u in units])
               for n in units[0].hparams}
    ends = np.cumsum([0] + [u.replicates for u in units])
    slices = [slice(int(a), int(b)) for a, b in zip(ends[:-1], ends[1:])]

    def part(state: Any, sl: slice) -> Any:
        return jax.tree.map(lambda x: x[sl], state) if vmapped else state[sl]

    resume_chunk, blobs = _resume_point(units, sink)
    resume = None
    if resume_chunk is not None:
        template = runner.init(keys, hparams)
        parts = [state_from_bytes(part(template, sl), blob) for sl, blob in zip(slices, blobs)]
        state = (jax.tree.map(lambda *xs: jnp.concatenate(xs), *parts) if vmapped
                 else [s for p in parts for s in p])
        resume = (resume_chunk, state)
    if until_chunk is not None and resume_chunk is not None and resume_chunk >= until_chunk:
        return GroupOutcome(False, 0.0, {u.name: np.full(u.replicates, -1) for u in units}, paused=True)
    for u in units:
        sink.restart(u.name, resume_chunk if resume_chunk is not None else -2)
    done_steps = chunk_bounds(steps, eval_points)[resume_chunk + 1] if resume is not None else 0
    for u in units:
        emit(UnitStarted(u.name, steps, u.replicates, steps_done=done_steps))

    t0 = time.perf_counter()
    clock = CheckpointClock(checkpoint_seconds)
    diverged = {u.name: np.full(u.replicates, -1) for u in units}
    slots = (runner.width_for(len(keys), core.block_length(steps, eval_points))
             if bucket_members and vmapped else None)
    for outs, state in core.run_calls(runner, keys, hparams, steps, eval_points, resume,
                                      stop_after=until_chunk, slots=slots):
        cancelled = cancel.is_set()
        last = outs[-1]
        final = last.chunk_index == last.chunks_total - 1
        pause = until_chunk is not None and last.chunk_index == until_chunk and not final
        if clock.due(final, cancelled or pause):
            host = jax.device_get(state)  # slice on the host: no device program per unit shape
            saved = [state_to_bytes(part(host, sl)) for sl in slices]
        else:
            saved = [None] * len(units)
        elapsed = time.perf_counter() - t0
        for u, sl, blob in zip(units, slices, saved):
            mine = [ChunkOutput(o.chunk_index, o.step_start, o.step_end, o.minibatch_loss[sl],
                                {k: v[sl] for k, v in o.eval.items()}, o.diverged_at[sl], o.chunks_total)
                    for o in outs]
            record(sink, u.name, mine, blob)
            diverged[u.name] = mine[-1].diverged_at
            for m in mine:
                emit(ChunkDone(u.name, m.chunk_index, m.chunks_total, m.step_end, steps,
                               m.minibatch_loss, m.step_end, m.eval, m.diverged_at, elapsed))
        if pause:
            return GroupOutcome(False, time.perf_counter() - t0, diverged, paused=True)
        if cancelled and not final:
            return GroupOutcome(False, time.perf_counter() - t0, diverged)
    return GroupOutcome(True, time.perf_counter() - t0, diverged)
