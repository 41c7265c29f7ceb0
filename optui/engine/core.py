"""Run a group of training members (seed replicates, or search trials of one shape) chunk by chunk.

A member is a pure function of its PRNG key and its hyperparameters. Members share one optimiser
and one batch size, so they run as a single compiled program: `vmap`ped over members, with the
steps of a chunk inside one `lax.scan` (or, where that measures slower, one jitted step per call).
Each chunk ends with a full-dataset eval; the host sees results only once per chunk.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..optim import registry as optimizers
from ..workloads.base import MODEL_STREAM, Strategy, Workload
from .placement import Placement, pad_members


def chunk_bounds(total_steps: int, points: int) -> list[int]:
    """Step boundaries of the chunks: eval point i (1-based) lands at round(i/points * total)."""
    points = max(1, min(points, total_steps))
    bounds = [round(total_steps * i / points) for i in range(points + 1)]
    return sorted(set(bounds))


@dataclass
class ChunkOutput:
    """What one chunk of a group produced: its minibatch losses, the eval after it, divergence."""

    chunk_index: int  # -1 is the eval before any training
    step_start: int
    step_end: int
    minibatch_loss: np.ndarray  # (members, step_end - step_start)
    eval: dict[str, np.ndarray]  # metric -> (members,)
    diverged_at: np.ndarray  # (members,)
    chunks_total: int


@jax.tree_util.register_dataclass
@dataclass
class MemberState:
    """Everything a member carries from step to step, and what a checkpoint saves."""

    params: Any
    opt_state: Any
    diverged_at: jax.Array  # int32, -1 while healthy
    # The workload's mutable model state (BatchNorm statistics), {} when it has none. Last, so
    # the checkpoints of stateless workloads keep the leaf order they had before it existed.
    model_state: Any


def _keys(keys: np.ndarray) -> jax.Array:
    return jnp.asarray(keys, dtype=jnp.uint32)


class GroupRunner:
    """Compiled functions for one (workload, optimiser, batch size, strategy); reused across units."""

    def __init__(self, workload: Workload, optimizer: str, batch_size: int, strategy: Strategy,
                 placement: Placement | None = None):
        self.workload = workload
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.strategy = strategy
        # Where members train (see engine.placement); one device unless asked for more.
        self.placement = placement or Placement(tuple(jax.devices()[:1]))
        self._data_on: dict[Any, Any] = {}  # device (or "mesh") -> the data set placed there
        # Calls per program, (members per call, steps per call): each new program is a compile.
        self.programs: Counter[tuple[int, int]] = Counter()
        w = workload

        def init_one(key, hp):
            init_key, _ = jax.random.split(key)
            params, model_state = w.init(init_key)
            tx = optimizers.build(optimizer, hp)
            return MemberState(params, tx.init(params), jnp.int32(-1), model_state)

        def step_one(state: MemberState, hp, key, step, data):
            _, data_key = jax.random.split(key)
            batch = w.sample_batch(data, data_key, step, batch_size)
            # The loss's own key (dropout, augmentation): fresh every step, apart from the keys
            # of init and batches, so workloads that ignore it train exactly as before.
            step_key = jax.random.fold_in(jax.random.fold_in(key, MODEL_STREAM), step)
            (loss, model_state), grads = jax.value_and_grad(w.loss, has_aux=True)(
                state.params, state.model_state, data, batch, step_key)
            tx = optimizers.build(optimizer, hp)
            updates, opt_state = tx.update(grads, state.opt_state, state.params, value=loss)
            params = optax.apply_updates(state.params, updates)
            bad = ~jnp.isfinite(loss)
            frozen = (state.diverged_at >= 0) | bad
            # A diverged member keeps its last finite state so NaNs never reach its neighbours.
            keep = lambda new, old: jnp.where(frozen, old, new)
            diverged_at = jnp.where((state.diverged_at < 0) & bad, step.astype(jnp.int32), state.diverged_at)
            new_state = MemberState(jax.tree.map(keep, params, state.params),
                                    jax.tree.map(keep, opt_state, state.opt_state), diverged_at,
                                    jax.tree.map(keep, model_state, state.model_state))
            recorded = jnp.where(diverged_at >= 0, jnp.nan, loss)
            return new_state, recorded

        def chunk_one(state, hp, key, start, data, length: int):
            def body(carry, step):
                return step_one(carry, hp, key, step, data)

            return jax.lax.scan(body, state, start + jnp.arange(length, dtype=jnp.int32))

        def eval_one(state: MemberState, data):
            metrics = w.evaluate(optimizers.eval_params(optimizer, state.opt_state, state.params),
                                 state.model_state, data)
            bad = state.diverged_at >= 0
            return {k: jnp.where(bad, jnp.nan, v) for k, v in metrics.items()}

        if strategy.vmap_replicates:
            self._init = jax.jit(jax.vmap(init_one))
            self._chunk = jax.jit(jax.vmap(chunk_one, in_axes=(0, 0, 0, None, None, None)),
                                  static_argnums=5)
            self._step = jax.jit(jax.vmap(step_one, in_axes=(0, 0, 0, None, None)))
            self._eval = jax.jit(jax.vmap(eval_one, in_axes=(0, None)))
        else:
            self._init = jax.jit(init_one)
            self._chunk = jax.jit(chunk_one, static_argnums=5)
            self._step = jax.jit(step_one)
            self._eval = jax.jit(eval_one)

    def _in_blocks(self, fn, members: tuple, *shared) -> Any:
        """fn(*members, *shared) over blocks of at most strategy.max_members members, joined.

        members are pytrees with a leading member axis; one block (the default) is one call.
        With several devices a block is a multiple of the device count, split over them.
        """
        n = len(jax.tree.leaves(members[0])[0])
        size = self.strategy.max_members or n
        if self.placement.count > 1:
            size = self.placement.block(size)
        if size >= n:
            return fn(*self._shard(members), *shared)
        outs = [fn(*self._shard(jax.tree.map(lambda x: x[i:i + size], members)), *shared)
                for i in range(0, n, size)]
        return self._shard(jax.tree.map(lambda *xs: jnp.concatenate(xs), *outs))

    # -- placement ---------------------------------------------------------------------------
    def slots(self, members: int) -> int:
        """The member axis this runner trains for `members` members: padded to a multiple of
        the device count with the vmapped strategies (the padding is trimmed from every output)."""
        if self.strategy.vmap_replicates and self.placement.count > 1:
            return self.placement.slots(members)
        return members

    def _shard(self, tree: Any) -> Any:
        n = len(jax.tree.leaves(tree)[0])
        return self.placement.shard(tree) if n % self.placement.count == 0 else tree

    def _data(self, member: int | None = None) -> Any:
        """The data set where member `member` trains (None: replicated over the mesh)."""
        if self.placement.count == 1:
            return self.workload.data
        where = "mesh" if member is None else self.placement.device_of(member)
        if where not in self._data_on:
            self._data_on[where] = (self.placement.replicate(self.workload.data) if member is None
                                    else jax.device_put(self.workload.data, where))
        return self._data_on[where]

    def _on(self, member: int, tree: Any) -> Any:
        return tree if self.placement.count == 1 else jax.device_put(tree, self.placement.device_of(member))

    def place(self, state: Any) -> Any:
        """A state (from a checkpoint) put where this runner trains it."""
        if self.strategy.vmap_replicates:
            return self._shard(state)
        return [self._on(m, s) for m, s in enumerate(state)]

    # -- state -------------------------------------------------------------------------------
    def init(self, keys: np.ndarray, hparams: dict[str, np.ndarray]) -> Any:
        hp = {k: jnp.asarray(v, jnp.float32) for k, v in hparams.items()}
        if self.strategy.vmap_replicates:
            # The compiler may place an initialised state on one device; training wants it split.
            return self._shard(self._in_blocks(self._init, (_keys(keys), hp)))
        return [self._init(self._on(m, _keys(keys[m])), {k: v[m] for k, v in hp.items()})
                for m in range(len(keys))]

    def diverged_at(self, state) -> np.ndarray:
        if self.strategy.vmap_replicates:
            return np.asarray(state.diverged_at)
        return np.array([int(s.diverged_at) for s in state], dtype=np.int64)

    # -- work --------------------------------------------------------------------------------
    def evaluate(self, state) -> dict[str, np.ndarray]:
        if self.strategy.vmap_replicates:
            metrics = self._in_blocks(self._eval, (state,), self._data())
            return {k: np.asarray(v, np.float64) for k, v in metrics.items()}
        per = [self._eval(s, self._data(m)) for m, s in enumerate(state)]  # dispatched, then read
        return {k: np.array([float(p[k]) for p in per]) for k in per[0]}

    def advance(self, state, keys: np.ndarray, hparams: dict[str, np.ndarray], start: int, length: int):
        """Run steps [start, start+length) for every member; returns (state, losses (members, length))."""
        hp = {k: jnp.asarray(v, jnp.float32) for k, v in hparams.items()}
        jkeys = _keys(keys)
        if self.strategy.vmap_replicates:
            data = self._data()
            state, losses = self._in_blocks(
                lambda s, h, k: self._advance_one(s, h, k, start, length, data), (state, hp, jkeys))
            return state, np.asarray(losses, np.float32)
        out_states, out_losses = [], []
        for m, s in enumerate(state):  # members on different devices run at once: read at the end
            s, losses = self._advance_one(s, {k: v[m] for k, v in hp.items()}, self._on(m, jkeys[m]),
                                          start, length, self._data(m))
            out_states.append(s)
            out_losses.append(losses)
        return out_states, np.stack([np.asarray(x, np.float32) for x in out_losses])

    def _advance_one(self, state, hp, key, start, length, data):
        members = len(jax.tree.leaves(state)[0]) if self.strategy.vmap_replicates else 1
        self.programs[(members, length if self.strategy.scan else 1)] += 1
        if self.strategy.scan:
            return self._chunk(state, hp, key, jnp.int32(start), data, length)
        losses = []
        for step in range(start, start + length):
            state, loss = self._step(state, hp, key, jnp.int32(step), data)
            losses.append(loss)
        return state, jnp.stack(losses, axis=-1)


def run_group(
    runner: GroupRunner,
    keys: np.ndarray,
    hparams: dict[str, np.ndarray],
    total_steps: int,
    eval_points: int,
    resume: tuple[int, Any] | None = None,
) -> Iterator[tuple[ChunkOutput, Any]]:
    """Yield (chunk output, state) after the initial eval and after every chunk.

    resume = (index of the last finished chunk, its state): continues with the next chunk. Steps
    draw their batches from fold_in(key, step), so a resumed run equals an uninterrupted one.
    """
    bounds = chunk_bounds(total_steps, eval_points)
    chunks_total = len(bounds) - 1
    n = len(keys)
    hparams = optimizers.engine_inputs(runner.optimizer, hparams, total_steps, keys)
    # Padding members (copies of the last) fill the devices evenly; outputs are trimmed to n.
    slots = runner.slots(n)
    keys, hparams = pad_members(keys, slots), pad_members(hparams, slots)

    def ours(metrics: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: v[:n] for k, v in metrics.items()}

    if resume is None:
        state = runner.init(keys, hparams)
        first = 0
        out = ChunkOutput(-1, 0, 0, np.zeros((n, 0), np.float32), ours(runner.evaluate(state)),
                          runner.diverged_at(state)[:n], chunks_total)
        yield out, state
    else:
        last, state = resume
        state = runner.place(pad_members(state, slots) if runner.strategy.vmap_replicates else state)
        first = last + 1
    for i in range(first, chunks_total):
        start, end = bounds[i], bounds[i + 1]
        state, losses = runner.advance(state, keys, hparams, start, end - start)
        yield ChunkOutput(i, start, end, losses[:n], ours(runner.evaluate(state)), runner.diverged_at(state)[:n],
                          chunks_total), state


def member_keys(seed: int, count: int, *path: int) -> np.ndarray:
    """Keys of `count` members: fold_in(PRNGKey(seed), *path, r) for r in range(count).

    The path names the block (none for a study's replicates; (trial, stream) for a search), so a
    member's key never depends on how many members run beside it or where they sit.
    """
    base = jax.random.PRNGKey(seed)
    for p in path:
        base = jax.random.fold_in(base, p)
    return np.asarray(jax.vmap(lambda r: jax.random.fold_in(base, r))(jnp.arange(count)))
