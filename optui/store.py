"""The run store: every run, unit (config or trial), chunk of history and checkpoint, in SQLite.

SQLite in WAL mode: each chunk is one transaction, so a kill at any moment loses at most the
chunk in flight, and several optui processes can share one store. Arrays are stored as .npy bytes.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import StoreError
from .processes import pid_alive
from .results import RunResult, UnitResult

SCHEMA_VERSION = 1
DB_NAME = "optui.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    study TEXT NOT NULL,
    workload TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    finished REAL,
    wall_time_s REAL NOT NULL DEFAULT 0,
    preset_text TEXT NOT NULL,
    preset_path TEXT,
    meta TEXT NOT NULL,
    error TEXT,
    pid INTEGER,
    host TEXT
);
CREATE TABLE IF NOT EXISTS units (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    position INTEGER NOT NULL,
    spec TEXT NOT NULL,
    replicates INTEGER NOT NULL,
    total_steps INTEGER NOT NULL,
    eval_points INTEGER NOT NULL,
    status TEXT NOT NULL,
    wall_time_s REAL NOT NULL DEFAULT 0,
    extra TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, name)
);
CREATE TABLE IF NOT EXISTS chunks (
    run_id TEXT NOT NULL,
    unit TEXT NOT NULL,
    chunk_index INTEGER NOT NULL,
    step_start INTEGER NOT NULL,
    step_end INTEGER NOT NULL,
    minibatch_loss BLOB NOT NULL,
    eval_step INTEGER NOT NULL,
    eval BLOB NOT NULL,
    diverged_at BLOB NOT NULL,
    PRIMARY KEY (run_id, unit, chunk_index),
    FOREIGN KEY (run_id, unit) REFERENCES units(run_id, name) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS checkpoints (
    run_id TEXT NOT NULL,
    unit TEXT NOT NULL,
    chunk_index INTEGER NOT NULL,
    state BLOB NOT NULL,
    PRIMARY KEY (run_id, unit),
    FOREIGN KEY (run_id, unit) REFERENCES units(run_id, name) ON DELETE CASCADE
);
"""

# The statements of _SCHEMA, to run one by one inside a transaction (executescript commits).
_SCHEMA_STATEMENTS = [stmt.strip() for stmt in _SCHEMA.split(";") if stmt.strip()]


def _add_run_owner(conn: sqlite3.Connection) -> None:
    """0 -> 1: runs record the process and host running them, so a dead run shows interrupted."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    for name, kind in (("pid", "INTEGER"), ("host", "TEXT")):
        if name not in columns:
            conn.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")


# MIGRATIONS[v] brings a store from schema v to v + 1. Steps leave existing rows as they are.
MIGRATIONS = {0: _add_run_owner}
OLDEST_MIGRATABLE = min(MIGRATIONS)

ACTIVE = "running"

log = logging.getLogger(__name__)  # unconfigured, warnings print their message on stderr


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


def _unnpy(b: bytes) -> np.ndarray:
    return np.load(io.BytesIO(b), allow_pickle=False)


def _unnpz(b: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(b), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@dataclass(frozen=True)
class _StoredChunk:
    minibatch_loss: np.ndarray
    eval_step: int
    eval: dict[str, np.ndarray]
    diverged_at: np.ndarray


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


class Store:
    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = path
        self.conn = conn

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, root: str | Path = "runs") -> "Store":
        root = Path(root)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{root}: cannot create the run store folder: {exc.strerror}") from None
        if not os.access(root, os.W_OK):
            raise StoreError(f"{root}: the run store folder is not writable")
        path = root / DB_NAME
        try:
            conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            store = cls(path, conn)
            store._migrate()
        except sqlite3.OperationalError as exc:  # locked, full, or an I/O error: the file may be fine
            raise StoreError(f"{path}: cannot open the run store: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: not a usable optui store: {exc}") from None
        return store

    def _schema_version(self) -> int | None:
        """The store's schema version; None for a new (empty) store."""
        if not self.conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone():
            return None
        row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            return None
        try:
            version = int(row[0])
        except ValueError:
            raise StoreError(f"{self.path}: its schema version {row[0]!r} is not a number, so this "
                             f"is no optui store; use another --store") from None
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: written by a newer optui (store schema {version}, this "
                             f"optui reads up to {SCHEMA_VERSION}); upgrade optui or use another --store")
        if version < OLDEST_MIGRATABLE:
            raise StoreError(f"{self.path}: store schema {version} is older than this optui can "
                             f"migrate (schema {OLDEST_MIGRATABLE} and later); open it with the optui "
                             f"that wrote it, or move it aside and use a new --store")
        return version

    def _migrate(self) -> None:
        """Create a new store, or bring an older one to SCHEMA_VERSION, in one transaction: a
        failure or a kill part-way leaves the store exactly as it was."""
        if self._schema_version() == SCHEMA_VERSION:
            return  # the usual case takes no write lock
        with self.tx() as c:
            # Read again under the lock: another process may have migrated it meanwhile.
            version = self._schema_version()
            if version == SCHEMA_VERSION:
                return
            try:
                # New tables first (IF NOT EXISTS), then the steps that change existing ones; a new
                # store runs the steps too, which find nothing to do.
                for stmt in _SCHEMA_STATEMENTS:
                    c.execute(stmt)
                for v in range(OLDEST_MIGRATABLE if version is None else version, SCHEMA_VERSION):
                    MIGRATIONS[v](c)
                c.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            except sqlite3.Error as exc:
                if version is None:
                    raise
                raise StoreError(f"{self.path}: could not migrate store schema {version} to "
                                 f"{SCHEMA_VERSION} ({exc}); the store is unchanged") from None

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: writers queue on SQLite's lock instead of failing."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"{self.path}: cannot write the run store: {exc}") from None
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException as exc:
            # SQLite rolls back by itself on some errors (a full disk, an I/O error).
            if self.conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"{self.path}: cannot write the run store: {exc}") from None
            raise

    # -- writing ---------------------------------------------------------------------------
    def create_run(self, study: str, workload: str, kind: str, preset_text: str,
                   preset_path: str | None, meta: dict[str, Any]) -> str:
        run_id = new_run_id()
        with self.tx() as c:
            c.execute(
                "INSERT INTO runs (id, study, workload, kind, status, created, preset_text, preset_path,"
                " meta, pid, host) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, study, workload, kind, ACTIVE, time.time(), preset_text, preset_path,
                 json.dumps(meta, default=str), os.getpid(), os.uname().nodename),
            )
        return run_id

    def claim_run(self, run_id: str) -> None:
        """Mark an interrupted run as running again in this process (for --resume).

        The holder is checked inside the claiming transaction: of two processes resuming one
        run, exactly one wins and the other is told who holds it.
        """
        host = os.uname().nodename
        with self.tx() as c:
            row = c.execute("SELECT status, pid, host FROM runs WHERE id=?", (run_id,)).fetchone()
            if row is None:
                raise StoreError(f"no run {run_id!r} in {self.path}")
            status, pid, holder_host = row
            held = status == ACTIVE and pid is not None and pid != os.getpid()
            if held and holder_host == host and pid_alive(pid):
                raise StoreError(f"run {run_id} is being run by process {pid}; "
                                 f"wait for it or stop it first")
            c.execute("UPDATE runs SET status=?, pid=?, host=?, error=NULL, finished=NULL WHERE id=?",
                      (ACTIVE, os.getpid(), host, run_id))
        if held:  # its process ended without recording how the run ended (killed, or a crash)
            gone = ", which is gone" if holder_host == host else f" on {holder_host}, assumed gone"
            log.warning(f"warning: run {run_id} was left running by process {pid}{gone}; taking it over")

    def add_unit(self, run_id: str, name: str, spec: dict[str, Any], replicates: int,
                 total_steps: int, eval_points: int) -> None:
        with self.tx() as c:
            pos = c.execute("SELECT COUNT(*) FROM units WHERE run_id=?", (run_id,)).fetchone()[0]
            c.execute(
                "INSERT OR IGNORE INTO units (run_id, name, position, spec, replicates, total_steps,"
                " eval_points, status) VALUES (?,?,?,?,?,?,?,?)",
                (run_id, name, pos, json.dumps(spec, default=float), replicates, total_steps,
                 eval_points, "pending"),
            )

    def write_chunk(self, run_id: str, unit: str, chunk_index: int, step_start: int,
                    minibatch_loss: np.ndarray, eval_step: int, eval: dict[str, np.ndarray],
                    diverged_at: np.ndarray, state: bytes | None = None) -> None:
        """Record one chunk (idempotent on its index) and, optionally, the state after it."""
        loss = np.asarray(minibatch_loss, np.float32)
        evals = io.BytesIO()
        np.savez(evals, **{k: np.asarray(v, np.float64) for k, v in eval.items()})
        with self.tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO chunks VALUES (?,?,?,?,?,?,?,?,?)",
                (run_id, unit, chunk_index, step_start, step_start + loss.shape[1], _npy(loss),
                 eval_step, evals.getvalue(), _npy(np.asarray(diverged_at, np.int64))),
            )
            c.execute("UPDATE units SET status='running' WHERE run_id=? AND name=? AND status='pending'",
                      (run_id, unit))
            if state is not None:
                c.execute("INSERT OR REPLACE INTO checkpoints VALUES (?,?,?,?)",
                          (run_id, unit, chunk_index, state))

    def finish_unit(self, run_id: str, unit: str, status: str, wall_time_s: float,
                    extra: dict[str, Any] | None = None) -> None:
        with self.tx() as c:
            c.execute("UPDATE units SET status=?, wall_time_s=?, extra=? WHERE run_id=? AND name=?",
                      (status, wall_time_s, json.dumps(extra or {}, default=float), run_id, unit))
            if status == "done":  # finished units need no checkpoint
                c.execute("DELETE FROM checkpoints WHERE run_id=? AND unit=?", (run_id, unit))

    def add_unit_time(self, run_id: str, unit: str, seconds: float) -> None:
        with self.tx() as c:
            c.execute("UPDATE units SET wall_time_s = wall_time_s + ? WHERE run_id=? AND name=?",
                      (seconds, run_id, unit))

    def finish_run(self, run_id: str, status: str, wall_time_s: float, error: str | None = None) -> None:
        with self.tx() as c:
            c.execute("UPDATE runs SET status=?, wall_time_s=?, finished=?, error=?, pid=NULL WHERE id=?",
                      (status, wall_time_s, time.time(), error, run_id))
            if status in ("failed", "interrupted"):  # a unit cut short ends the way its run did
                c.execute("UPDATE units SET status=? WHERE run_id=? AND status='running'", (status, run_id))

    def update_run_meta(self, run_id: str, **updates: Any) -> None:
        with self.tx() as c:
            row = c.execute("SELECT meta FROM runs WHERE id=?", (run_id,)).fetchone()
            meta = json.loads(row[0]) if row else {}
            meta.update(updates)
            c.execute("UPDATE runs SET meta=? WHERE id=?", (json.dumps(meta, default=str), run_id))

    def resolve(self, run_id: str) -> str:
        """A full id from an id, a unique prefix, or 'latest'."""
        if run_id == "latest":
            latest = self.latest_run()
            if latest is None:
                raise StoreError(f"{self.path}: the store holds no runs yet")
            return latest
        rows = self.conn.execute("SELECT id FROM runs WHERE id = ? OR id LIKE ?",
                                 (run_id, run_id.replace("%", "") + "%")).fetchall()
        exact = [r[0] for r in rows if r[0] == run_id]
        if exact:
            return exact[0]
        if len(rows) == 1:
            return rows[0][0]
        if not rows:
            raise StoreError(f"no run {run_id!r} in {self.path}; `optui runs` lists them")
        raise StoreError(f"run id {run_id!r} is ambiguous: {', '.join(r[0] for r in rows[:5])}")

    def run_info(self, run_id: str) -> dict[str, Any]:
        row = self.conn.execute(
            "SELECT id, study, workload, kind, status, created, finished, wall_time_s, preset_path,"
            " meta, error, pid, host FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"no run {run_id!r} in {self.path}")
        keys = ("id", "study", "workload", "kind", "status", "created", "finished", "wall_time_s",
                "preset_path", "meta", "error", "pid", "host")
        info = dict(zip(keys, row))
        info["meta"] = json.loads(info["meta"])
        if info["status"] == ACTIVE and not (info["host"] == os.uname().nodename and pid_alive(info["pid"])):
            info["status"] = "interrupted"  # its process is gone: killed, or the machine went down
        return info

    def preset_text(self, run_id: str) -> str:
        row = self.conn.execute("SELECT preset_text FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"no run {run_id!r} in {self.path}")
        return row[0]

    def list_runs(self) -> list[dict[str, Any]]:
        out = []
        for (run_id,) in self.conn.execute("SELECT id FROM runs ORDER BY created, id").fetchall():
            info = self.run_info(run_id)
            units = self.conn.execute(
                "SELECT u.name, u.status, u.replicates, u.total_steps,"
                " (SELECT MAX(step_end) FROM chunks c WHERE c.run_id=u.run_id AND c.unit=u.name),"
                " (SELECT diverged_at FROM chunks c WHERE c.run_id=u.run_id AND c.unit=u.name"
                "  ORDER BY chunk_index DESC LIMIT 1)"
                " FROM units u WHERE run_id=? ORDER BY position", (run_id,)).fetchall()
            done = diverged = 0
            for _, status, reps, _total, _steps, div in units:
                if status == "done":
                    done += reps
                if div is not None:
                    diverged += int((_unnpy(div) >= 0).sum())
            info.update(
                units=[u[0] for u in units], replicates_done=done,
                replicates_total=sum(u[2] for u in units), diverged=diverged,
                unit_status={u[0]: u[1] for u in units},
            )
            out.append(info)
        return out

    def latest_run(self, study: str | None = None, kind: str | None = None) -> str | None:
        sql, args = "SELECT id FROM runs WHERE 1=1", []
        if study:
            sql += " AND study=?"
            args.append(study)
        if kind:
            sql += " AND kind=?"
            args.append(kind)
        row = self.conn.execute(sql + " ORDER BY created DESC, id DESC LIMIT 1", args).fetchone()
        return row[0] if row else None

    def checkpoint(self, run_id: str, unit: str) -> tuple[int, bytes] | None:
        row = self.conn.execute("SELECT chunk_index, state FROM checkpoints WHERE run_id=? AND unit=?",
                                (run_id, unit)).fetchone()
        return (row[0], row[1]) if row else None

    def truncate_unit(self, run_id: str, unit: str, after_chunk: int) -> None:
        """Drop chunks written after a checkpoint so a resumed unit does not record them twice."""
        with self.tx() as c:
            c.execute("DELETE FROM chunks WHERE run_id=? AND unit=? AND chunk_index>?",
                      (run_id, unit, after_chunk))

    def unit_rows(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT name, spec, replicates, total_steps, eval_points, status, wall_time_s, extra"
            " FROM units WHERE run_id=? ORDER BY position", (run_id,)).fetchall()
        return [
            {"name": r[0], "spec": json.loads(r[1]), "replicates": r[2], "total_steps": r[3],
             "eval_points": r[4], "status": r[5], "wall_time_s": r[6], "extra": json.loads(r[7])}
            for r in rows
        ]

    def load_unit(self, run_id: str, row: dict[str, Any]) -> UnitResult:
        rows = self.conn.execute(
            "SELECT minibatch_loss, eval_step, eval, diverged_at FROM chunks"
            " WHERE run_id=? AND unit=? ORDER BY chunk_index", (run_id, row["name"])).fetchall()
        chunks = (_StoredChunk(_unnpy(loss), eval_step, _unnpz(eval_blob), _unnpy(div))
                  for loss, eval_step, eval_blob, div in rows)
        return UnitResult.from_chunks(row["name"], row["spec"], row["replicates"], chunks, status=row["status"],
                                      wall_time_s=row["wall_time_s"], total_steps=row["total_steps"],
                                      extra=row["extra"])

    def load_run(self, run_id: str) -> RunResult:
        run_id = self.resolve(run_id)
        info = self.run_info(run_id)
        units = {r["name"]: self.load_unit(run_id, r) for r in self.unit_rows(run_id)}
        return RunResult(
            run_id=run_id, study=info["study"], workload=info["workload"], kind=info["kind"],
            status=info["status"], device=str(info["meta"].get("device", "")), created=info["created"],
            wall_time_s=info["wall_time_s"], preset_text=self.preset_text(run_id), units=units,
            meta=info["meta"],
        )
