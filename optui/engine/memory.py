"""How much memory a run will need, estimated before any training, and what to do about it.

A member (one replicate) holds its parameters and optimiser state on the device; a chunk keeps
two copies of them (before and after) and returns each step's loss; inside a call each member
also needs its activations, which grow with the batch (the report's CNN at batch 4,000 needs
about 2.6 GB for one replicate's step). Exporting a run loads every replicate's per-step
history on the host. All of this grows with the replicate count, so a preset asking for 100,000
replicates, or a batch whose activations do not fit, is refused (or planned) here, with the
numbers, instead of growing until the machine gives out.

State sizes come from the shapes alone (jax.eval_shape). Activations are measured: one member's
training step and its full-dataset evaluation are compiled for the batch size (nothing runs)
and XLA's buffer assignment says how many bytes of temporaries they need
(`compiled.memory_analysis()`). The plan keeps half of what is free for everything else.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Iterable, Protocol


# Plan against this share of the free memory: the rest is for XLA's scratch space, compiles and
# everything else in the process.
USABLE_SHARE = 0.5
# Where a backend cannot say (no memory analysis): a member's intermediates as a multiple of the
# data's size, measured on TwNet (5.8 MB a replicate on 5.3 MB of data), with a margin.
ACTIVATIONS_PER_DATA_BYTE = 1.5
# Measured activations are XLA's buffer assignment for one step; a chunk's program (a scan over
# steps, or several members at once) and the allocator's slack add about this share on top.
ACTIVATION_MARGIN = 1.2
# The share of a planning compile's memory kept for compiling the training programs.
COMPILE_SHARE = 0.75
# Eval metrics a workload that declares none is assumed to record (train and test loss).
DEFAULT_METRICS = 2
GIB = 2**30


@dataclass(eq=False)
class DoesNotFit(Exception):
    """A run that cannot fit in memory, with the numbers; the caller words it for its user.

    memory: "device" (a block's members during a chunk) or "host" (a block's per-step history,
    exported); needed and free in bytes; per_member: one member's share; most_members: how many
    fit (device only); longer_chunks_help: the chunks' losses outweigh the state, so more eval
    points (shorter chunks) would help too.
    """

    memory: str
    block: str
    members: int
    needed: int
    free: int
    where: str  # what the memory is ("host (the CPU device)", "gpu device")
    per_member: int
    most_members: int = 0
    longer_chunks_help: bool = False
    batch_size: int = 0  # the block's batch size, where its activations are what does not fit
    detail: str = ""  # the estimate in words, with its numbers (the caller adds the ways out)

    def __str__(self) -> str:
        return self.detail or (f"{self.block}: {self.members:,} members need about {gib(self.needed)} of "
                               f"{self.memory} memory ({self.where}), {gib(self.free)} free")


class MemberBlock(Protocol):
    """What the plan reads of a block of members (a config's replicates, a search group's trials)."""

    name: str
    optimizer: str
    hyperparams: dict[str, float]
    batch_size: int
    steps: int
    replicates: int


@dataclass(frozen=True)
class UnitNeed:
    """What one config's replicates need, in bytes."""

    name: str
    replicates: int
    state_bytes: int  # one member's parameters and optimiser state
    chunk_loss_bytes: int  # one member's losses of its longest chunk
    history_bytes: int  # one member's whole per-step history on the host
    activation_bytes: int = 0  # one member's intermediates in a call (measured at its batch size)
    batch_size: int = 0
    label: str = ""  # what a message calls it: "config sgd with 20 replicates"

    @property
    def resident_per_member(self) -> int:
        # State before and after a chunk, plus the chunk's losses.
        return 2 * self.state_bytes + self.chunk_loss_bytes

    @property
    def device_bytes(self) -> int:
        # What every member holds between calls.
        return self.replicates * self.resident_per_member

    @property
    def working_bytes_per_member(self) -> int:
        # Inside one vmapped call: gradients, updates, the new state and the intermediates of
        # each member.
        return 3 * self.state_bytes + self.chunk_loss_bytes + int(ACTIVATION_MARGIN * self.activation_bytes)

    @property
    def per_replicate(self) -> int:
        """One replicate's share of a run trained all at once: resident and working bytes."""
        return self.resident_per_member + self.working_bytes_per_member

    def describe(self) -> str:
        return self.label or f"config {self.name} with {self.replicates:,} replicates"


def member_state_bytes(workload: Any, optimizer: str, hyperparams: dict[str, float]) -> int:
    """Bytes of one member's parameters and optimiser state, from their shapes alone."""
    import jax
    import jax.numpy as jnp

    from ..optim import registry as optimizers

    def init(key):
        params, model_state = workload.init(key)
        tx = optimizers.build(optimizer, {k: jnp.float32(v) for k, v in hyperparams.items()})
        return params, tx.init(params), model_state

    shapes = jax.eval_shape(init, jax.random.PRNGKey(0))
    return int(sum(math.prod(s.shape) * s.dtype.itemsize for s in jax.tree.leaves(shapes)))


def free_memory() -> tuple[int, int, str]:
    """(free device bytes, free host bytes, what the device is). On a CPU both are host memory."""
    import jax
    import psutil

    host = int(psutil.virtual_memory().available)
    device = jax.devices()[0]
    try:
        stats = device.memory_stats() or {}
    except Exception:  # noqa: BLE001 - backends without memory statistics
        stats = {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0)), host, f"{device.platform} device"
    return host, host, "host (the CPU device)"


def data_bytes(workload: Any) -> int:
    import jax

    return int(sum(getattr(leaf, "nbytes", 0) for leaf in jax.tree.leaves(workload.data)))


_measured: dict[tuple, int] = {}
_compile_bytes = 0  # the most a planning compile added to this process's memory


def reserve_bytes() -> int:
    """Memory kept for compiling the training programs and the runtime around them: measured as
    a share of what compiling one member's step took (benchmarks/bench_memory.py)."""
    return int(COMPILE_SHARE * _compile_bytes)


def planned_bytes(need: "UnitNeed", members_per_call: int) -> int:
    """What a unit is planned to take: every member's state, one call's working bytes, and the
    reserve for compiling."""
    return need.device_bytes + members_per_call * need.working_bytes_per_member + reserve_bytes()


def activation_bytes(workload: Any, optimizer: str, hyperparams: dict[str, float], batch_size: int) -> int:
    """Bytes of temporaries one member needs in a training step at batch_size, or in its
    full-dataset evaluation if that needs more: measured by compiling both for one member
    (XLA's memory analysis; nothing is run). Falls back to a multiple of the data's size where
    the backend cannot say."""
    key = (id(workload), optimizer, tuple(sorted(hyperparams)), int(batch_size))
    if key not in _measured:
        _measured[key] = _compile_and_measure(workload, optimizer, hyperparams, batch_size)
    return _measured[key]


def _compile_and_measure(workload: Any, optimizer: str, hyperparams: dict[str, float], batch_size: int) -> int:
    import jax
    import jax.numpy as jnp

    from ..workloads.base import Strategy
    from .core import GroupRunner

    runner = GroupRunner(workload, optimizer, int(batch_size), Strategy(scan=False, vmap_replicates=False))
    hp = {k: jnp.float32(v) for k, v in hyperparams.items()}
    rng = jax.random.PRNGKey(0)
    state = jax.eval_shape(runner._init, rng, hp)
    try:
        import psutil

        before = psutil.Process().memory_info().rss
        step = runner._step.lower(state, hp, rng, jnp.int32(0), workload.data).compile().memory_analysis()
        evaluate = runner._eval.lower(state, workload.data).compile().memory_analysis()
        # What compiling took here (the training program's compile will take about as much).
        global _compile_bytes
        _compile_bytes = max(_compile_bytes, psutil.Process().memory_info().rss - before)
        return int(max(step.temp_size_in_bytes, evaluate.temp_size_in_bytes))
    except (AttributeError, NotImplementedError, TypeError):  # no memory analysis on this backend
        return int(ACTIVATIONS_PER_DATA_BYTE * data_bytes(workload))


def unit_needs(workload: Any, units: Iterable[Any], eval_points: int, metrics: int | None = None) -> list[UnitNeed]:
    """units: objects with name, optimizer, hyperparams, batch_size, steps and replicates (and
    optionally label). metrics: how many eval metrics the workload records."""
    metrics = max(1, metrics or DEFAULT_METRICS)
    states: dict[tuple, int] = {}
    needs = []
    for u in units:
        key = (u.optimizer, tuple(sorted(u.hyperparams)))
        if key not in states:
            states[key] = member_state_bytes(workload, u.optimizer, u.hyperparams)
        chunk = math.ceil(u.steps / max(1, min(eval_points, u.steps)))
        batch = int(getattr(u, "batch_size", 0) or 0)
        activations = (activation_bytes(workload, u.optimizer, u.hyperparams, batch) if batch
                       else int(ACTIVATIONS_PER_DATA_BYTE * data_bytes(workload)))
        needs.append(UnitNeed(u.name, u.replicates, states[key], 4 * chunk,
                              4 * u.steps + 8 * metrics * (eval_points + 1), activations, batch,
                              getattr(u, "label", "")))
    return needs


def gib(n: float) -> str:
    """A size as people read it: GiB, MiB, KiB or bytes (never "0.0 MiB")."""
    if n >= GIB / 10:
        return f"{n / GIB:,.1f} GiB"
    if n >= 2**20 / 10:
        return f"{n / 2**20:,.1f} MiB"
    if n >= 1024:
        return f"{n / 1024:,.1f} KiB"
    return f"{int(n):,} bytes"


def fit(strategy: Any, workload: Any, units: Iterable[MemberBlock], eval_points: int,
        free: tuple[int, int, str] | None = None, metrics: int | None = None) -> Any:
    """The strategy to run with: unchanged when the run fits; with replicates_per_batch set when
    only its vmapped calls must be smaller; else DoesNotFit with the estimate's numbers (the
    caller says what to change). metrics: how many eval metrics the workload records."""
    units = list(units)
    try:
        needs = unit_needs(workload, units, eval_points, metrics)
    except Exception as exc:  # noqa: BLE001 - a workload whose shapes cannot be traced alone
        import warnings

        warnings.warn(f"could not estimate the run's memory ({type(exc).__name__}: {exc}); "
                      f"training without a plan")
        return strategy
    if not needs:
        return strategy
    device_free, host_free, what = free or free_memory()
    device_budget, host_budget = device_free * USABLE_SHARE, host_free * USABLE_SHARE
    # Every member's state stays on the device; a call adds at least one member's working bytes.
    worst = max(needs, key=lambda n: n.device_bytes + n.working_bytes_per_member)
    reserve = reserve_bytes()
    least = worst.device_bytes + worst.working_bytes_per_member + reserve
    if least > device_budget:
        fits = max(0, int((device_budget - reserve - worst.working_bytes_per_member) // worst.resident_per_member))
        activations = (f", and {gib(worst.activation_bytes)} of activations in a call at batch size "
                       f"{worst.batch_size:,}" if worst.batch_size else "")
        raise DoesNotFit(
            "device", worst.name, worst.replicates, least, device_free, what, worst.per_replicate,
            most_members=fits, longer_chunks_help=worst.chunk_loss_bytes > worst.state_bytes,
            batch_size=worst.batch_size,
            detail=f"{worst.describe()} needs about {gib(planned_bytes(worst, worst.replicates))} "
                   f"of {what} memory trained at once, and at least {gib(least)} trained one replicate per "
                   f"call ({gib(worst.per_replicate)} per replicate: its parameters and optimiser state, its "
                   f"losses of one chunk{activations}; and {gib(reserve)} kept for compiling); "
                   f"{gib(device_free)} is free, of which optui plans with {int(USABLE_SHARE * 100)}%")
    history = max(needs, key=lambda n: n.replicates * n.history_bytes)
    if 2 * history.replicates * history.history_bytes > host_budget:
        needed = 2 * history.replicates * history.history_bytes
        raise DoesNotFit(
            "host", history.name, history.replicates, needed, host_free, "host", history.history_bytes,
            detail=f"{history.describe()}: its per-step history ({history.replicates:,} replicates x "
            f"{gib(history.history_bytes)}) needs about {gib(2 * history.replicates * history.history_bytes)} "
            f"of host memory to export, and {gib(host_free)} is free")
    if not getattr(strategy, "vmap_replicates", False):
        return strategy  # one member at a time: checked above
    left = device_budget - worst.device_bytes - reserve
    members = max(n.replicates for n in needs)
    per_member = max(n.working_bytes_per_member for n in needs)
    if strategy.max_members:
        if strategy.max_members * per_member > left:  # a batch the user chose that cannot fit
            import warnings

            warnings.warn(f"engine.replicates_per_batch = {strategy.max_members:,} would need about "
                          f"{gib(strategy.max_members * per_member)} of {what} memory inside each call; "
                          f"{gib(max(0, left))} is left for it")
        return strategy
    if members * per_member <= left:
        return strategy
    batch = max(1, int(left // per_member))
    import warnings

    warnings.warn(f"{members:,} replicates at once would need about {gib(members * per_member)} of {what} "
                  f"memory inside each call; training {batch:,} at a time (engine.replicates_per_batch), "
                  f"with the same results")
    return dataclasses.replace(strategy, max_members=batch)
