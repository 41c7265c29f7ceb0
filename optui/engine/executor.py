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

# States up to this size are checkpointed after every chunk; larger ones every checkpoint_seconds.
SMALL_STATE_BYTES = 16 * 2**20


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
    """When to checkpoint: after every chunk while states are small, else every `every` seconds,
    and always when stopping part-way. Never after the final chunk (the unit is then done)."""

    def __init__(self, every: float):
        self.every = every
        self.last = time.monotonic()
        self.small: bool | None = None  # unknown until the first state is measured

    def blobs(self, parts: Callable[[], list[bytes]], final: bool, cancelled: bool) -> list[bytes] | None:
        due = time.monotonic() - self.last >= self.every
        if final or not (self.small is not False or due or cancelled):
            return None
        blobs = parts()
        self.small = sum(map(len, blobs)) <= SMALL_STATE_BYTES
        if not (self.small or due or cancelled):
            return None
        self.last = time.monotonic()
        return blobs


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
                until_chunk: int | None = None) -> GroupOutcome:
    """Train `units` for `steps` steps with `eval_points` evals, from their last checkpoint if any.

    Every chunk goes to the sink (per unit) before its ChunkDone event; cancel is checked after
    each chunk, so a cancelled group has lost nothing it trained.

    until_chunk: stop after that chunk (not the last), checkpointing every unit there, and return
    paused. Calling again with any subset of the units continues them from that chunk as a
    smaller group: members dropped in between use no more compute (early stopping).
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
    for out, state in core.run_group(runner, keys, hparams, steps, eval_points, resume):
        cancelled = cancel.is_set()
        final = out.chunk_index == out.chunks_total - 1
        pause = until_chunk is not None and out.chunk_index == until_chunk and not final
        saved = clock.blobs(lambda: [state_to_bytes(part(state, sl)) for sl in slices], final,
                            cancelled or pause)
        elapsed = time.perf_counter() - t0
        for u, sl, blob in zip(units, slices, saved or [None] * len(units)):
            mine = ChunkOutput(out.chunk_index, out.step_start, out.step_end, out.minibatch_loss[sl],
                               {k: v[sl] for k, v in out.eval.items()}, out.diverged_at[sl], out.chunks_total)
            sink.chunk(u.name, mine, blob)
            diverged[u.name] = mine.diverged_at
            emit(ChunkDone(u.name, mine.chunk_index, mine.chunks_total, mine.step_end, steps,
                           mine.minibatch_loss, mine.step_end, mine.eval, mine.diverged_at, elapsed))
        if pause:
            return GroupOutcome(False, time.perf_counter() - t0, diverged, paused=True)
        if cancelled and not final:
            return GroupOutcome(False, time.perf_counter() - t0, diverged)
    return GroupOutcome(True, time.perf_counter() - t0, diverged)
