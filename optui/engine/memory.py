"""How much memory a run will need, estimated before any device work, and what to do about it.

A member (one replicate) holds its parameters and optimiser state on the device; a chunk keeps
two copies of them (before and after) and returns each step's loss. Exporting a run loads every
replicate's per-step history on the host. All of this grows with the replicate count, so a
preset asking for 100,000 replicates is refused (or planned) here, with the numbers, instead
of growing until the machine gives out.

The estimate comes from the shapes alone (jax.eval_shape: nothing is computed or allocated).
Activations are the workload's own business; a full-dataset evaluation's are taken to be about
the size of the data it reads (TwNet weighs every user's word counts, the CNN a slice of
images per member), and the plan keeps half of what is free for everything else.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Iterable, Protocol

# Plan against this share of the free memory: the rest is for activations, XLA's scratch
# space and everything else in the process.
USABLE_SHARE = 0.5
# A member's intermediates in a call, as a multiple of the data's size: measured on TwNet (5.8 MB
# a replicate on 5.3 MB of data, benchmarks/bench_memory.py), with a margin.
ACTIVATIONS_PER_DATA_BYTE = 1.5
GIB = 2**30


class MemberBlock(Protocol):
    """What the plan reads of a block of members (a config's replicates, a search group's trial)."""

    name: str
    optimizer: str
    hyperparams: dict[str, float]
    steps: int
    replicates: int


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

    def __str__(self) -> str:
        return (f"{self.block}: {self.members:,} members need about {gib(self.needed)} of {self.memory} memory "
                f"({self.where}), {gib(self.free)} free")


@dataclass(frozen=True)
class UnitNeed:
    """What one config's replicates need, in bytes."""

    name: str
    replicates: int
    state_bytes: int  # one member's parameters and optimiser state
    chunk_loss_bytes: int  # one member's losses of its longest chunk
    history_bytes: int  # one member's whole per-step history on the host
    activation_bytes: int = 0  # one member's intermediates in a call (about the data's size)

    @property
    def device_bytes(self) -> int:
        # State before and after a chunk, plus the chunk's losses, for every member.
        return self.replicates * (2 * self.state_bytes + self.chunk_loss_bytes)

    @property
    def working_bytes_per_member(self) -> int:
        # Inside one vmapped call: gradients, updates, the new state and the intermediates of
        # each member.
        return 3 * self.state_bytes + self.chunk_loss_bytes + self.activation_bytes


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


def unit_needs(workload: Any, units: Iterable[MemberBlock], eval_points: int) -> list[UnitNeed]:
    """What each block of members needs, in bytes."""
    activations = int(ACTIVATIONS_PER_DATA_BYTE * data_bytes(workload))
    cache: dict[tuple, int] = {}
    needs = []
    for u in units:
        key = (u.optimizer, tuple(sorted(u.hyperparams)))
        if key not in cache:
            cache[key] = member_state_bytes(workload, u.optimizer, u.hyperparams)
        chunk = math.ceil(u.steps / max(1, min(eval_points, u.steps)))
        metrics = max(1, len(getattr(workload, "eval_metrics", ()) or ()))
        needs.append(UnitNeed(u.name, u.replicates, cache[key], 4 * chunk,
                              4 * u.steps + 8 * metrics * (eval_points + 1), activations))
    return needs


def gib(n: float) -> str:
    """A byte count for people: GiB, or MiB below a tenth of one."""
    return f"{n / GIB:,.1f} GiB" if n >= GIB / 10 else f"{n / 2**20:,.1f} MiB"


def fit(strategy: Any, workload: Any, units: Iterable[MemberBlock], eval_points: int,
        free: tuple[int, int, str] | None = None) -> Any:
    """The strategy to run with: unchanged when the run fits; with replicates_per_batch set when
    only its vmapped calls must be smaller; else DoesNotFit with the estimate."""
    units = list(units)
    try:
        needs = unit_needs(workload, units, eval_points)
    except Exception as exc:  # noqa: BLE001 - a workload whose shapes cannot be traced alone
        import warnings

        warnings.warn(f"could not estimate the study's memory ({type(exc).__name__}: {exc}); "
                      f"training without a plan")
        return strategy
    if not needs:
        return strategy
    device_free, host_free, what = free or free_memory()
    device_budget, host_budget = device_free * USABLE_SHARE, host_free * USABLE_SHARE
    worst = max(needs, key=lambda n: n.device_bytes)
    if worst.device_bytes > device_budget:
        per = 2 * worst.state_bytes + worst.chunk_loss_bytes
        raise DoesNotFit("device", worst.name, worst.replicates, worst.device_bytes, device_free, what, per,
                         int(device_budget // per), worst.chunk_loss_bytes > worst.state_bytes)
    history = max(needs, key=lambda n: n.replicates * n.history_bytes)
    if 2 * history.replicates * history.history_bytes > host_budget:
        raise DoesNotFit("host", history.name, history.replicates, 2 * history.replicates * history.history_bytes,
                         host_free, "host", history.history_bytes)
    if not getattr(strategy, "vmap_replicates", False) or strategy.max_members:
        return strategy  # one member at a time already, or a batch size the user chose
    left = device_budget - worst.device_bytes
    members = max(n.replicates for n in needs)
    per_member = max(n.working_bytes_per_member for n in needs)
    if members * per_member <= left:
        return strategy
    batch = max(1, int(left // per_member))
    import warnings

    warnings.warn(f"{members:,} replicates at once would need about {gib(members * per_member)} of {what} "
                  f"memory inside each call; training {batch:,} at a time (engine.replicates_per_batch), "
                  f"with the same results")
    return dataclasses.replace(strategy, max_members=batch)
