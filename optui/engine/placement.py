"""Which devices a group trains on, and how its members are laid out over them.

With the vmapped strategies the member axis (replicates, or a group's trials) is sharded over a
one-dimensional mesh whose axis is named "members"; the data set is replicated on every device.
A member count that does not divide evenly is padded with copies of the last member, which are
trained and then dropped: no caller ever sees them. The sequential strategies put member m on
device m mod D, so D members train at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "members"


class DeviceSettingError(ValueError):
    """engine.devices asks for devices this process does not have."""


def select(setting: str | int) -> list[Any]:
    """The devices `setting` names: "all" (every device of the default backend) or a count."""
    available = jax.devices()
    if setting == "all":
        return list(available)
    count = int(setting)
    if count < 1 or count > len(available):
        raise DeviceSettingError(f"engine.devices = {count}, but this process has {len(available)} "
                                 f"{available[0].platform} device(s); use a number from 1 to {len(available)} "
                                 f"or \"all\"")
    return list(available[:count])


def describe_devices(devices: list[Any]) -> str:
    """e.g. "gpu:NVIDIA H200 x2 (ids 0-1)", "cpu:cpu x1"."""
    first = devices[0]
    kind = getattr(first, "device_kind", "") or first.platform
    ids = [d.id for d in devices]
    span = f"{ids[0]}" if len(ids) == 1 else (f"{ids[0]}-{ids[-1]}" if ids == list(range(ids[0], ids[-1] + 1))
                                              else ",".join(map(str, ids)))
    return f"{first.platform}:{kind} x{len(devices)} (ids {span})"


@dataclass(frozen=True)
class Placement:
    """A group's devices. One device places nothing: arrays stay where JAX puts them."""

    devices: tuple[Any, ...]
    _mesh: Any = field(default=None, compare=False, hash=False, repr=False)

    @classmethod
    def of(cls, setting: str | int = "all") -> "Placement":
        return cls(tuple(select(setting)))

    @property
    def count(self) -> int:
        return len(self.devices)

    @property
    def label(self) -> str:
        return describe_devices(list(self.devices))

    @property
    def mesh(self) -> Mesh:
        if self._mesh is None:
            object.__setattr__(self, "_mesh", Mesh(np.array(self.devices), (AXIS,)))
        return self._mesh

    # -- vmapped members ---------------------------------------------------------------------
    def slots(self, members: int) -> int:
        """Members rounded up to a multiple of the device count (the padded member axis)."""
        return math.ceil(members / self.count) * self.count

    def block(self, size: int) -> int:
        """A block size (members per compiled call) rounded up to a multiple of the device count."""
        return math.ceil(size / self.count) * self.count

    def shard(self, tree: Any) -> Any:
        """Put a pytree with a leading member axis on the mesh, split along that axis."""
        if self.count == 1:
            return tree
        return jax.device_put(tree, NamedSharding(self.mesh, PartitionSpec(AXIS)))

    def replicate(self, tree: Any) -> Any:
        """A copy of the pytree on every device (the data set)."""
        if self.count == 1:
            return tree
        return jax.device_put(tree, NamedSharding(self.mesh, PartitionSpec()))

    # -- sequential members ------------------------------------------------------------------
    def device_of(self, member: int) -> Any:
        return self.devices[member % self.count]


def pad_members(tree: Any, slots: int) -> Any:
    """Extend the leading member axis to `slots` with copies of the last member."""
    def pad(x):
        xp = jax.numpy if isinstance(x, jax.Array) else np
        if x.shape[0] == slots:
            return x
        return xp.concatenate([x, xp.repeat(x[-1:], slots - x.shape[0], axis=0)])
    return jax.tree.map(pad, tree)
