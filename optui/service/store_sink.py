"""The run store as the executor's sink: every chunk, and checkpoint, of one run."""

from __future__ import annotations

from ..engine import ChunkOutput
from ..store import Store


class StoreSink:
    """Writes a run's chunks and checkpoints into the store (one transaction per device call)."""

    def __init__(self, store: Store, run_id: str):
        self.store = store
        self.run_id = run_id

    def checkpoint(self, unit: str) -> tuple[int, bytes] | None:
        return self.store.checkpoint(self.run_id, unit)

    def restart(self, unit: str, after_chunk: int) -> None:
        self.store.truncate_unit(self.run_id, unit, after_chunk)

    def chunk(self, unit: str, out: ChunkOutput, state: bytes | None) -> None:
        self.store.write_chunk(self.run_id, unit, out.chunk_index, out.step_start, out.minibatch_loss,
                               out.step_end, out.eval, out.diverged_at, state=state)

    def chunk_batch(self, unit: str, outs: list[ChunkOutput], state: bytes | None) -> None:
        """Several chunks of one device call in one transaction (the state after the last)."""
        self.store.write_chunks(self.run_id, unit, [(o.chunk_index, o.step_start, o.minibatch_loss, o.step_end,
                                                     o.eval, o.diverged_at) for o in outs], state)
