"""Where the executor puts what it trains: the sink protocol, and an in-memory sink.

The executor never opens a store. It asks its sink for a unit's last checkpoint, tells it to
forget chunks after the chunk it resumes from, and hands it every chunk (with a checkpoint of
the state when one is due). The run store's writer is one sink; `MemorySink` keeps everything
in memory (tests, notebooks); a remote worker's queue is another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from .core import ChunkOutput


class Sink(Protocol):
    def checkpoint(self, unit: str) -> tuple[int, bytes] | None:
        """(index of the chunk the state was saved after, the state's bytes), or None."""

    def restart(self, unit: str, after_chunk: int) -> None:
        """Drop the unit's chunks after `after_chunk` (-2: all of them) before training it."""

    def chunk(self, unit: str, out: ChunkOutput, state: bytes | None) -> None:
        """Record one chunk of the unit (its members only), and its state when not None."""


@dataclass
class MemorySink:
    """A sink that keeps chunks and checkpoints in dicts."""

    chunks: dict[str, dict[int, ChunkOutput]] = field(default_factory=dict)
    checkpoints: dict[str, tuple[int, bytes]] = field(default_factory=dict)

    def checkpoint(self, unit: str) -> tuple[int, bytes] | None:
        return self.checkpoints.get(unit)

    def restart(self, unit: str, after_chunk: int) -> None:
        kept = {i: c for i, c in self.chunks.get(unit, {}).items() if i <= after_chunk}
        self.chunks[unit] = kept

    def chunk(self, unit: str, out: ChunkOutput, state: bytes | None) -> None:
        self.chunks.setdefault(unit, {})[out.chunk_index] = out
        if state is not None:
            self.checkpoints[unit] = (out.chunk_index, state)
