"""Deleting a run from the store: its rows in every table, in one transaction."""

from __future__ import annotations

from ..errors import OptuiError
from . import ACTIVE, Store

# Children first, each table said: the schema's ON DELETE CASCADE also needs PRAGMA foreign_keys on
# the connection (Store.open sets it), and deleting explicitly does not rely on it.
_TABLES = ("checkpoints", "chunks", "units")


def delete_run(store: Store, run_id: str) -> str:
    """Remove run_id (a prefix is enough) and everything recorded for it; returns the full id.

    A run that a live process is still running is refused: its writer would fail mid-chunk.
    """
    run_id = store.resolve(run_id)
    info = store.run_info(run_id)
    if info["status"] == ACTIVE:
        raise OptuiError(f"run {run_id} is running ({info['holder']}): stop it first, then delete it")
    with store.tx() as c:
        for table in _TABLES:
            c.execute(f"DELETE FROM {table} WHERE run_id=?", (run_id,))
        c.execute("DELETE FROM runs WHERE id=?", (run_id,))
    return run_id
