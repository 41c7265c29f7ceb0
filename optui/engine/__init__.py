"""Vectorised training runs: replicates and search trials, chunked, cancellable, resumable.

The engine trains groups of members (a member is a PRNG key plus its hyperparameters) chunk by
chunk into a sink and knows nothing above it: no preset, store, run or front end. The names
below are its public API, the one the service uses.
"""

from . import compile_cache, device
from .core import ChunkOutput, GroupRunner, block_length, chunk_bounds, member_keys
from .events import ChunkDone, EngineEvent, UnitStarted
from .executor import GroupOutcome, Unit, train_group
from .failures import describe, for_user
from .memory import DoesNotFit, MemberBlock, fit, gib
from .placement import DeviceSettingError, Placement
from .sink import MemorySink, Sink

__all__ = ["ChunkDone", "ChunkOutput", "block_length", "compile_cache", "DeviceSettingError", "DoesNotFit", "EngineEvent", "GroupOutcome",
           "GroupRunner", "MemberBlock", "MemorySink", "Placement", "Sink", "Unit", "UnitStarted", "chunk_bounds",
           "describe", "device", "fit", "for_user", "gib", "member_keys", "train_group"]
