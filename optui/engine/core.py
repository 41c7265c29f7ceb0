"""Run a group of training members (seed replicates, or search trials of one shape) chunk by chunk.

A member is a pure function of its PRNG key and its hyperparameters. Members share one optimiser
and one batch size, so they run as a single compiled program: `vmap`ped over members, with the
steps of a chunk inside one `lax.scan` (or, where that measures slower, one jitted step per call).
Each chunk ends with a full-dataset eval. A device call trains several chunks (eval blocks) in
one compiled loop whose step counts are traced, so a group needs one program whatever its chunk
lengths; the host reads results once per call, while the next call already runs (run_calls).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..optim import registry as optimizers
from ..workloads.base import MODEL_STREAM, Strategy, Workload
from . import ahead
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
        self._ahead: dict[tuple[int, int], Any] = {}  # (members, length) -> Future of a compiled program
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

        def blocks_one(state, hp, key, starts, lengths, count, data, length: int):
            """Eval blocks 0..count-1 (of MAX_BLOCKS slots): block b trains steps starts[b] ..
            starts[b] + lengths[b] - 1, then evaluates. Traced bounds: one program for any count
            and any chunk lengths up to `length`; slots past `count` keep their fill."""
            def block(b, carry):
                state, losses, evals = carry
                start = starts[b]

                def step(j, c):
                    s, row = c
                    s, loss = step_one(s, hp, key, start + j, data)
                    return s, row.at[j].set(loss)

                row = jnp.full((length,), jnp.nan, jnp.float32)
                state, row = jax.lax.fori_loop(0, lengths[b], step, (state, row))
                metrics = eval_one(state, data)
                return (state, losses.at[b].set(row),
                        {k: evals[k].at[b].set(jnp.asarray(v, jnp.float32)) for k, v in metrics.items()})

            shapes = jax.eval_shape(eval_one, state, data)
            losses = jnp.full((MAX_BLOCKS, length), jnp.nan, jnp.float32)
            evals = {k: jnp.full((MAX_BLOCKS,), jnp.nan, jnp.float32) for k in shapes}
            return jax.lax.fori_loop(0, count, block, (state, losses, evals))

        if strategy.vmap_replicates:
            self._init = jax.jit(jax.vmap(init_one))
            self._chunk = jax.jit(jax.vmap(chunk_one, in_axes=(0, 0, 0, None, None, None)),
                                  static_argnums=5)
            self._step = jax.jit(jax.vmap(step_one, in_axes=(0, 0, 0, None, None)))
            self._eval = jax.jit(jax.vmap(eval_one, in_axes=(0, None)))
            self._blocks = jax.jit(jax.vmap(blocks_one, in_axes=(0, 0, 0, None, None, None, None, None)),
                                   static_argnums=7)
        else:
            self._init = jax.jit(init_one)
            self._chunk = jax.jit(chunk_one, static_argnums=5)
            self._step = jax.jit(step_one)
            self._eval = jax.jit(eval_one)
            self._blocks = jax.jit(blocks_one, static_argnums=7)

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

    def train_blocks(self, state, keys: np.ndarray, hparams: dict[str, np.ndarray],
                     entries: list[tuple[int, int, int]], length: int):
        """Dispatch one call training the chunks `entries` ((index, start, end), each then
        evaluated); returns (state, losses, evals) as device arrays (lists of them, one per
        member, with sequential members), not waited for."""
        if len(entries) > MAX_BLOCKS:
            raise ValueError(f"one call holds at most {MAX_BLOCKS} eval blocks, got {len(entries)}")
        starts = np.zeros(MAX_BLOCKS, np.int32)
        lengths = np.zeros(MAX_BLOCKS, np.int32)
        for b, (_, start, end) in enumerate(entries):
            starts[b], lengths[b] = start, end - start
        starts, lengths, count = jnp.asarray(starts), jnp.asarray(lengths), jnp.int32(len(entries))
        hp = {k: jnp.asarray(v, jnp.float32) for k, v in hparams.items()}
        jkeys = _keys(keys)
        if self.strategy.vmap_replicates:
            self.programs[(len(keys), length)] += 1
            data = self._data()
            compiled = self._compiled(len(keys), length, hp)
            if compiled is not None:
                try:
                    return compiled(state, hp, jkeys, starts, lengths, count, data)
                except (TypeError, ValueError):  # inputs not as foreseen: let jit compile them
                    self._ahead.pop((len(keys), length), None)
            return self._in_blocks(lambda s, h, k: self._blocks(s, h, k, starts, lengths, count, data, length),
                                   (state, hp, jkeys))
        self.programs[(1, length)] += 1
        outs = [self._blocks(s, {k: v[m] for k, v in hp.items()}, self._on(m, jkeys[m]), starts, lengths,
                             count, self._data(m), length) for m, s in enumerate(state)]
        return ([o[0] for o in outs], [o[1] for o in outs],
                {k: [o[2][k] for o in outs] for k in outs[0][2]})

    def width_for(self, members: int, length: int) -> int:
        """The member width a bucketed group of `members` trains at: a width this runner has
        compiled already for the block length when it is at most 4x the members (padding costs
        less than a compile), else the bucket (executor.member_bucket)."""
        from .executor import member_bucket

        known = sorted(m for m, n in [*self.programs, *self._ahead] if n == length and members <= m <= 4 * members)
        return known[0] if known else member_bucket(members)

    def compile_ahead(self, members: int, length: int, hparam_names: list[str]) -> None:
        """Compile the blocks program for `members` members and block length `length` on a
        background thread, so it is ready (or nearly) when the group reaches the device: a
        run's later groups compile while its first trains. Vmapped members on one device only."""
        key = (members, length)
        if (not self.strategy.scan or not self.strategy.vmap_replicates or self.strategy.max_members
                or self.placement.count > 1 or key in self._ahead):
            return
        hp = {n: jax.ShapeDtypeStruct((members,), jnp.float32) for n in hparam_names}
        keys = jax.ShapeDtypeStruct((members, 2), jnp.uint32)

        def build():
            state = jax.eval_shape(self._init, keys, hp)
            blocks = jax.ShapeDtypeStruct((MAX_BLOCKS,), jnp.int32)
            return self._blocks.lower(state, hp, keys, blocks, blocks, jax.ShapeDtypeStruct((), jnp.int32),
                                      self.workload.data, length).compile()

        self._ahead[key] = ahead.submit(build)

    def _compiled(self, members: int, length: int, hp: dict) -> Any:
        """The program compiled ahead for this call, or None (then jit compiles it here)."""
        fut = self._ahead.get((members, length))
        if fut is None or (not fut.done() and fut.cancel()):  # not started: compile it here
            self._ahead.pop((members, length), None)
            return None
        try:
            compiled = fut.result()
        except Exception:  # compiled ahead for other inputs, say: the jit path decides
            self._ahead.pop((members, length), None)
            return None
        return compiled

    @staticmethod
    def is_ready(out: Any) -> bool:
        """Whether a dispatched output has been computed already."""
        return all(x.is_ready() for x in (out if isinstance(out, list) else [out]))

    @staticmethod
    def fetch(out: Any) -> np.ndarray:
        """A dispatched output (or one per member) on the host, waiting for it."""
        if isinstance(out, list):
            return np.stack([np.asarray(x) for x in out])
        return np.asarray(out)

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


# Eval blocks one device call may hold at most: the length of its output buffers. A constant, so
# runs with other step counts or eval points (and every call of a run) share one program.
MAX_BLOCKS = 64
# How long one device call should last: long enough that the host's work per call (reading
# results, recording them) is small beside it, short enough for live progress and a quick stop.
TARGET_CALL_SECONDS = 0.5


def block_length(total_steps: int, eval_points: int) -> int:
    """The step slots of one eval block: the longest chunk (chunks differ by at most one step)."""
    bounds = chunk_bounds(total_steps, eval_points)
    return max(b - a for a, b in zip(bounds[:-1], bounds[1:]))


class Pacer:
    """How many eval blocks the next device call holds, so that a call lasts about `target` s.

    The first call of a run compiles, so it holds one block (results show at once) and its time
    is not a measurement; later sizes follow the measured seconds per block, growing at most 8x
    per call. A call the host found already finished only ever raises the estimate of blocks.
    """

    def __init__(self, target: float | None = None, most: int = MAX_BLOCKS, fixed: int | None = None):
        self.target = TARGET_CALL_SECONDS if target is None else target
        self.most, self.fixed = most, fixed
        if self.target <= 0:  # no time to spare: every call one block
            self.fixed = 1
        self.size = 1
        self.calls = 0

    def next(self, remaining: int) -> int:
        if self.fixed is not None:
            return max(1, min(self.fixed, remaining, self.most))
        self.calls += 1
        if self.calls == 2:  # nothing measured yet (the first call compiles): grow a little
            self.size = min(self.most, 4)
        return max(1, min(self.size, remaining))

    def observe(self, blocks: int, seconds: float, host_was_late: bool) -> None:
        if self.fixed is not None or seconds <= 0:
            return
        wanted = max(1, int(self.target / (seconds / blocks)))
        if host_was_late:
            wanted = max(wanted, self.size)
        self.size = max(1, min(self.most, wanted, 8 * max(self.size, blocks)))


@dataclass
class _Call:
    """A dispatched device call: which chunks it trains, its outputs (still on the device)."""

    entries: list[tuple[int, int, int]]  # (chunk index, step start, step end); -1 = initial eval
    state: Any
    losses: Any  # (members, MAX_BLOCKS, block length)
    evals: Any  # metric -> (members, MAX_BLOCKS)
    dispatched: float


def run_calls(
    runner: GroupRunner,
    keys: np.ndarray,
    hparams: dict[str, np.ndarray],
    total_steps: int,
    eval_points: int,
    resume: tuple[int, Any] | None = None,
    *,
    pacer: Pacer | None = None,
    stop_after: int | None = None,
    slots: int | None = None,
    in_flight: int = 2,
) -> Iterator[tuple[list[ChunkOutput], Any]]:
    """Yield (chunk outputs, state after the last of them) once per device call.

    A call trains several eval blocks (each: its chunk's steps, then the full eval) in one
    compiled program; the next call is dispatched before this one's results are read, so the
    device keeps training while the host records. The initial eval (chunk -1) is an empty block
    of the first call. resume = (index of the last finished chunk, its state). stop_after: the
    last chunk to train. slots: the member axis to train at (>= members; padding is dropped
    from every output). Steps draw their batches from fold_in(key, step), so results do not
    depend on how chunks are grouped into calls, nor on where a run was resumed.
    """
    bounds = chunk_bounds(total_steps, eval_points)
    chunks_total = len(bounds) - 1
    n = len(keys)
    hparams = optimizers.engine_inputs(runner.optimizer, hparams, total_steps, keys)
    # Padding members (copies of the last) fill devices and member buckets; outputs keep n.
    slots = max(slots or n, runner.slots(n))
    slots = runner.slots(slots)
    keys, hparams = pad_members(keys, slots), pad_members(hparams, slots)
    entries = [(i, bounds[i], bounds[i + 1]) for i in range(chunks_total)]
    if resume is None:
        state = runner.init(keys, hparams)
        entries.insert(0, (-1, 0, 0))
    else:
        last, state = resume
        state = runner.place(pad_members(state, slots) if runner.strategy.vmap_replicates else state)
        entries = entries[last + 1:]
    if stop_after is not None:
        entries = [e for e in entries if e[0] <= stop_after]
    if not runner.strategy.scan:
        yield from _run_steps(runner, keys, hparams, entries, state, chunks_total, n)
        return
    pacer = pacer or Pacer()
    length = block_length(total_steps, eval_points)
    queue: list[_Call] = []
    i = 0
    last_ready = time.perf_counter()
    while i < len(entries) or queue:
        while i < len(entries) and len(queue) < in_flight:
            take = entries[i:i + pacer.next(len(entries) - i)]
            state, losses, evals = runner.train_blocks(state, keys, hparams, take, length)
            queue.append(_Call(take, state, losses, evals, time.perf_counter()))
            i += len(take)
        call = queue.pop(0)
        late = runner.is_ready(call.losses)
        losses = runner.fetch(call.losses)
        evals = {k: runner.fetch(v) for k, v in call.evals.items()}
        diverged = runner.diverged_at(call.state)
        ready = time.perf_counter()
        pacer.observe(len(call.entries), ready - max(call.dispatched, last_ready), late)
        last_ready = ready
        outs = []
        for b, (index, start, end) in enumerate(call.entries):
            outs.append(ChunkOutput(index, start, end, losses[:n, b, :end - start],
                                    {k: v[:n, b].astype(np.float64) for k, v in evals.items()},
                                    np.where((diverged[:n] >= 0) & (diverged[:n] < max(end, 1)),
                                             diverged[:n], -1), chunks_total))
        yield outs, call.state


def _run_steps(runner, keys, hparams, entries, state, chunks_total, n):
    """The per-step strategy: one chunk per yield, each step its own jitted call."""
    for index, start, end in entries:
        if index >= 0:
            state, losses = runner.advance(state, keys, hparams, start, end - start)
        else:
            losses = np.zeros((len(keys), 0), np.float32)
        metrics = runner.evaluate(state)
        yield [ChunkOutput(index, start, end, losses[:n], {k: v[:n] for k, v in metrics.items()},
                           runner.diverged_at(state)[:n], chunks_total)], state


def run_group(
    runner: GroupRunner,
    keys: np.ndarray,
    hparams: dict[str, np.ndarray],
    total_steps: int,
    eval_points: int,
    resume: tuple[int, Any] | None = None,
) -> Iterator[tuple[ChunkOutput, Any]]:
    """Yield (chunk output, state after it) after the initial eval and after every chunk.

    One eval block per device call, so every chunk's state is seen (run_calls groups them).
    """
    for outs, state in run_calls(runner, keys, hparams, total_steps, eval_points, resume,
                                 pacer=Pacer(fixed=1)):
        for out in outs:
            yield out, state


def member_keys(seed: int, count: int, *path: int) -> np.ndarray:
    """Keys of `count` members: fold_in(PRNGKey(seed), *path, r) for r in range(count).

    The path names the block (none for a study's replicates; (trial, stream) for a search), so a
    member's key never depends on how many members run beside it or where they sit.
    """
    base = jax.random.PRNGKey(seed)
    for p in path:
        base = jax.random.fold_in(base, p)
    return np.asarray(jax.vmap(lambda r: jax.random.fold_in(base, r))(jnp.arange(count)))
