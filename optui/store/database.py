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
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import RunTakenOverError, StoreError, StoreGoneError, UnknownRunError, UsageError
from ..results import RunResult, UnitResult
from .lease import (HOLDER_GONE, HOLDER_LIVE, LEASE_EXPIRED, LEASE_SECONDS, NO_HOLDER, NO_LEASE,
                    Heartbeat, file_identity, holder_state)
from .schema import ACTIVE, DAMAGED, DB_NAME, MIGRATIONS, OLDEST_MIGRATABLE, SCHEMA_STATEMENTS, SCHEMA_VERSION

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


def damaged_hint(path: Path) -> str:
    """What to do with a store SQLite cannot read."""
    return (f"If it is damaged, move it aside (mv {path} {path}.damaged), and run "
            f"`sqlite3 {path}.damaged .recover | sqlite3 {path}` to save what is left, or start afresh "
            f"with another --store")


def _owner(path: Path) -> str:
    try:
        import pwd

        uid = path.stat().st_uid
        try:
            return f"user {pwd.getpwuid(uid).pw_name}"
        except KeyError:
            return f"user id {uid}"
    except OSError:
        return "another user"


def _check_files_writable(path: Path) -> None:
    """Refuse, naming the owner, a store file (or its -wal/-shm) this user cannot write: opening
    it anyway would fail part-way and could leave files behind that break the owner's next run."""
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists() and not os.access(file, os.W_OK):
            if file == path:
                raise StoreError(f"{file}: the run store belongs to {_owner(file)} and is not writable by "
                                 f"you; read it with `optui runs --store {path.parent}`, or ask its owner to "
                                 f"share it (chmod g+w or o+w on {file}), or use your own --store")
            raise StoreError(f"{file}: left by {_owner(file)} and not writable by you, so the store "
                             f"cannot be opened for writing; when no optui is using the store, "
                             f"{_owner(file)} (or root) may delete it, or make it writable (chmod a+rw)")


def _share_like_folder(path: Path) -> None:
    """A new store in a folder others may write (mode 777, or a group's 775) is made writable by
    them too: SQLite gives its -wal and -shm files the store file's permissions, so a run by one
    user never leaves files behind that the next user cannot write."""
    try:
        folder_mode = path.parent.stat().st_mode & 0o777
        mode = 0o600 | (folder_mode & 0o066)
        if mode & 0o066:
            os.chmod(path, mode | (path.stat().st_mode & 0o044))
    except OSError:
        pass  # not ours to change (another user created it meanwhile): nothing lost


class Store:
    """One SQLite run store (runs/optui.sqlite): open it with Store.open(folder).

    Every write is its own transaction, so a kill loses at most the chunk in flight. A run being
    trained is held by its process under a heartbeat lease; others read it freely.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, read_only: bool = False):
        self.path = path
        self.conn = conn
        self.read_only = read_only
        self._identity = file_identity(path)
        self._leases: dict[str, Heartbeat] = {}
        self._lost: dict[str, StoreError] = {}
        # --force: claim_run takes over runs whose holder's lease expired (never a live one).
        self.take_over_expired = False
        # What open() created: False (nothing), None (the store file), or the folder it made too.
        self._made: Path | None | bool = False

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, root: str | Path = "runs", create: bool = True) -> "Store":
        """Open (create=True: and create if needed) the store in folder root.

        create=False is for commands that only read: a missing store is an error that creates
        nothing, and a store in a read-only folder is opened read-only.
        """
        root = Path(root)
        if not create:
            if not (root / DB_NAME).is_file():
                raise UsageError(f"{root}: no run store here ({DB_NAME} not found); nothing has run "
                                 f"in this folder yet, or pass --store DIR")
            if not os.access(root, os.W_OK) or not os.access(root / DB_NAME, os.W_OK):
                return cls._open_read_only(root / DB_NAME)
        made_folder = not root.exists()
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{root}: cannot create the run store folder: {exc.strerror}") from None
        if not os.access(root, os.W_OK):
            raise StoreError(f"{root}: the run store folder is not writable")
        path = root / DB_NAME
        _check_files_writable(path)  # before connecting: a failed open must leave no -wal/-shm behind
        new = not path.exists()
        try:
            conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
            if new:
                _share_like_folder(path)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            store = cls(path, conn)
            store._made = (root if made_folder else None) if new else False
            store._migrate()
        except sqlite3.OperationalError as exc:  # locked, full, or an I/O error: the file may be fine
            raise StoreError(f"{path}: cannot open the run store: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: not a usable optui store ({exc}). {damaged_hint(path)}") from None
        return store

    @classmethod
    def _open_read_only(cls, path: Path) -> "Store":
        """A store nobody here can write (a read-only folder or file): read it as it is.

        SQLite's WAL mode needs to write a shared-memory file even to read, so the file is opened
        as immutable: correct as long as no other process writes it meanwhile, which a read-only
        folder rules out for this machine.
        """
        try:
            conn = sqlite3.connect(path.absolute().as_uri() + "?immutable=1", uri=True,
                                   check_same_thread=False)
            store = cls(path, conn, read_only=True)
            version = store._schema_version()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: cannot read the run store (read-only): {exc}") from None
        if version != SCHEMA_VERSION:
            raise StoreError(f"{path}: store schema {version} needs upgrading, which a read-only store "
                             f"cannot be; open it once where it can be written")
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
                for stmt in SCHEMA_STATEMENTS:
                    c.execute(stmt)
                for v in range(OLDEST_MIGRATABLE if version is None else version, SCHEMA_VERSION):
                    MIGRATIONS[v](c)
                c.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            except sqlite3.Error as exc:
                if version is None:
                    raise
                raise StoreError(f"{self.path}: could not migrate store schema {version} to "
                                 f"{SCHEMA_VERSION} ({exc}); the store is unchanged") from None

    def discard_if_unused(self) -> None:
        """Close, and remove the store (and its folder) if this process created it and it holds no
        run: a command refused before its run began leaves nothing behind."""
        if self._made is False or self.read_only:
            return
        try:
            if self.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]:
                return
        except sqlite3.Error:
            return
        self.close()
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(OSError):
                os.unlink(f"{self.path}{suffix}")
        if isinstance(self._made, Path):
            with contextlib.suppress(OSError):
                self._made.rmdir()  # only if empty

    def close(self) -> None:
        """Close this connection (stopping its heartbeats)."""
        for beat in self._leases.values():
            beat.stop()
        self._leases.clear()
        self.conn.close()

    def _check_same_file(self) -> None:
        """Refuse to write when the store file was deleted or replaced since it was opened: SQLite
        would go on writing the deleted file, and a run would end "done" with nothing kept."""
        if self._identity is not None and file_identity(self.path) != self._identity:
            raise StoreGoneError(f"{self.path}: the run store was deleted or replaced while this process "
                                 f"was using it; what this run did since cannot be recorded")

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: writers queue on SQLite's lock instead of failing."""
        self._check_same_file()
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

    @contextmanager
    def _write(self, run_id: str) -> Iterator[sqlite3.Connection]:
        """One transaction writing run_id, fenced: this process must still hold the run (checked
        under the write lock, so no other holder can take it between the check and the write)."""
        with self.tx() as c:
            self._check_lease(c, run_id)
            yield c

    # -- writing ---------------------------------------------------------------------------
    def create_run(self, study: str, workload: str, kind: str, preset_text: str,
                   preset_path: str | None, meta: dict[str, Any]) -> str:
        """A new run, held by this process; returns its id (its creation time first, so ids sort by age)."""
        run_id = new_run_id()
        token = uuid.uuid4().hex
        with self.tx() as c:
            c.execute(
                "INSERT INTO runs (id, study, workload, kind, status, created, preset_text, preset_path,"
                " meta, pid, host, lease_token, lease_expires) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, study, workload, kind, ACTIVE, time.time(), preset_text, preset_path,
                 json.dumps(meta, default=str), os.getpid(), os.uname().nodename, token,
                 time.time() + LEASE_SECONDS),
            )
        self._start_heartbeat(run_id, token, 0.0)
        return run_id

    # -- ownership: a heartbeat lease ----------------------------------------------------------
    holder_state = staticmethod(holder_state)

    def claim_run(self, run_id: str, force: bool | None = None) -> None:
        """Take a run that is not running (for --resume): mark it running under a new lease.

        The holder is checked inside the claiming transaction: of two processes resuming one
        run, exactly one wins and the other is told who holds it. A run whose holder's lease
        expired (hung, stopped, on a machine that went away, or a reused process id) is taken
        over only with force; a live lease never.
        """
        force = self.take_over_expired if force is None else force
        host = os.uname().nodename
        token = uuid.uuid4().hex
        with self.tx() as c:
            row = c.execute("SELECT status, pid, host, lease_expires, wall_time_s FROM runs WHERE id=?",
                            (run_id,)).fetchone()
            if row is None:
                raise UnknownRunError(f"no run {run_id!r} in {self.path}")
            status, pid, holder_host, expires, wall = row
            state = self.holder_state(status, pid, holder_host, expires)
            where = "" if holder_host == host else f" on {holder_host}"
            if state == HOLDER_LIVE:
                raise StoreError(f"run {run_id} is being run by process {pid}{where} (its lease was renewed "
                                 f"{max(0.0, LEASE_SECONDS - (expires - time.time())):.0f} s ago); "
                                 f"wait for it or stop it first")
            if state in (LEASE_EXPIRED, NO_LEASE) and not force:
                why = ("its lease expired " f"{time.time() - expires:.0f} s ago" if state == LEASE_EXPIRED
                       else "it holds no lease (started by an older optui) and the process id is in use")
                raise StoreError(f"run {run_id} is held by process {pid}{where}, but {why}: that process "
                                 f"is hung, stopped, gone, or its id now names another process. If "
                                 f"nothing is running it, take it over with --force")
            c.execute("UPDATE runs SET status=?, pid=?, host=?, error=NULL, finished=NULL, lease_token=?,"
                      " lease_expires=? WHERE id=?",
                      (ACTIVE, os.getpid(), host, token, time.time() + LEASE_SECONDS, run_id))
        self._lost.pop(run_id, None)
        self._start_heartbeat(run_id, token, float(wall or 0.0))
        if state == HOLDER_GONE:  # its process ended without recording how the run ended
            gone = ", which is gone" if holder_host == host else f" on {holder_host}, assumed gone"
            log.warning(f"warning: run {run_id} was left running by process {pid}{gone}; taking it over")
        elif state in (LEASE_EXPIRED, NO_LEASE):
            log.warning(f"warning: run {run_id} was held by process {pid}{where}; taking it over (--force): "
                        f"if that process wakes up it will find the run taken and stop")

    def _start_heartbeat(self, run_id: str, token: str, wall_base: float) -> None:
        old = self._leases.pop(run_id, None)
        if old is not None:
            old.stop()
        beat = Heartbeat(self.path, self._identity, run_id, token, wall_base)
        self._leases[run_id] = beat
        beat.start()

    def _check_lease(self, c: sqlite3.Connection, run_id: str) -> None:
        """Inside a write: this process must still hold the run it writes (fencing)."""
        if run_id in self._lost:
            raise self._lost[run_id]
        beat = self._leases.get(run_id)
        if beat is None:
            # Not a run this process holds: it may still write one nobody runs (an import, a
            # finished run's metadata), never one another process holds under a live lease.
            row = c.execute("SELECT status, pid, host, lease_expires FROM runs WHERE id=?", (run_id,)).fetchone()
            if row is not None and self.holder_state(*row) == HOLDER_LIVE:
                raise RunTakenOverError(f"run {run_id} is being run by process {row[1]} on {row[2]}; "
                                        f"this process does not hold it and writes none of it")
            return
        row = c.execute("SELECT lease_token, pid, host FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            lost: StoreError = StoreGoneError(f"run {run_id} was deleted from {self.path} while it ran; "
                                              f"nothing more of it can be recorded")
        elif row[0] != beat.token:
            lost = RunTakenOverError(f"run {run_id} was taken over by process {row[1]} on {row[2]} after "
                                     f"this process's lease expired; this process stops without writing "
                                     f"more of it")
        else:
            return
        self._leases.pop(run_id).stop()
        self._lost[run_id] = lost  # every later write of this run is refused the same way
        raise lost

    def _release(self, run_id: str) -> None:
        beat = self._leases.pop(run_id, None)
        if beat is not None:
            beat.stop()

    def add_unit(self, run_id: str, name: str, spec: dict[str, Any], replicates: int,
                 total_steps: int, eval_points: int) -> None:
        """Add a unit (a config or trial) to a run, pending; a unit already there is kept as it is."""
        with self._write(run_id) as c:
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
        with self._write(run_id) as c:
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
        """Record how a unit ended, its wall time and extra (a trial's scores); done units drop their checkpoint."""
        with self._write(run_id) as c:
            c.execute("UPDATE units SET status=?, wall_time_s=?, extra=? WHERE run_id=? AND name=?",
                      (status, wall_time_s, json.dumps(extra or {}, default=float), run_id, unit))
            if status in ("done", "pruned"):  # units trained as far as they go need no checkpoint
                c.execute("DELETE FROM checkpoints WHERE run_id=? AND unit=?", (run_id, unit))

    def add_unit_time(self, run_id: str, unit: str, seconds: float) -> None:
        """Add seconds to a unit's wall time (a resumed unit's time adds up over sessions)."""
        with self._write(run_id) as c:
            c.execute("UPDATE units SET wall_time_s = wall_time_s + ? WHERE run_id=? AND name=?",
                      (seconds, run_id, unit))

    def finish_run(self, run_id: str, status: str, wall_time_s: float, error: str | None = None) -> None:
        """Record how a run ended; units it cut short end the same way; the run is released."""
        beat = self._leases.get(run_id)
        if beat is not None:
            beat.stop()  # before the final write, so no late beat can overwrite the wall time
        with self._write(run_id) as c:
            c.execute("UPDATE runs SET status=?, wall_time_s=?, finished=?, error=?, pid=NULL,"
                      " lease_token=NULL, lease_expires=NULL WHERE id=?",
                      (status, wall_time_s, time.time(), error, run_id))
            if status in ("failed", "interrupted"):  # a unit cut short ends the way its run did
                c.execute("UPDATE units SET status=? WHERE run_id=? AND status='running'", (status, run_id))
        self._release(run_id)

    def update_run_meta(self, run_id: str, **updates: Any) -> None:
        """Merge keys into a run's metadata (JSON)."""
        with self._write(run_id) as c:
            row = c.execute("SELECT meta FROM runs WHERE id=?", (run_id,)).fetchone()
            meta = json.loads(row[0]) if row else {}
            meta.update(updates)
            c.execute("UPDATE runs SET meta=? WHERE id=?", (json.dumps(meta, default=str), run_id))

    def resolve(self, run_id: str) -> str:
        """A full id from an id, a unique prefix, or 'latest'."""
        if run_id == "latest":
            latest = self.latest_run()
            if latest is None:
                raise UnknownRunError(f"{self.path}: the store holds no runs yet")
            return latest
        rows = self.conn.execute("SELECT id FROM runs WHERE id = ? OR id LIKE ?",
                                 (run_id, run_id.replace("%", "") + "%")).fetchall()
        exact = [r[0] for r in rows if r[0] == run_id]
        if exact:
            return exact[0]
        if len(rows) == 1:
            return rows[0][0]
        if not rows:
            raise UnknownRunError(f"no run {run_id!r} in {self.path}; `optui runs` lists them")
        raise UnknownRunError(f"run id {run_id!r} is ambiguous: {', '.join(r[0] for r in rows[:5])}")

    def run_info(self, run_id: str) -> dict[str, Any]:
        """A run's row: id, study, workload, kind, status, times, preset path, meta, error."""
        row = self.conn.execute(
            "SELECT id, study, workload, kind, status, created, finished, wall_time_s, preset_path,"
            " meta, error, pid, host, lease_expires FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise UnknownRunError(f"no run {run_id!r} in {self.path}")
        keys = ("id", "study", "workload", "kind", "status", "created", "finished", "wall_time_s",
                "preset_path", "meta", "error", "pid", "host", "lease_expires")
        info = dict(zip(keys, row))
        try:
            info["meta"] = json.loads(info["meta"])
            if not isinstance(info["meta"], dict):
                raise ValueError(f"a JSON {type(info['meta']).__name__}, not an object")
        except (TypeError, ValueError) as exc:
            raise StoreError(f"run {run_id}: its recorded metadata is damaged ({exc}); the other runs "
                             f"are unaffected") from None
        info["holder"] = self.holder_state(info["status"], info["pid"], info["host"], info["lease_expires"])
        if info["status"] == ACTIVE and info["holder"] in (NO_HOLDER, HOLDER_GONE, LEASE_EXPIRED):
            info["status"] = "interrupted"  # nobody is running it: killed, hung, or the machine went down
        return info

    def preset_text(self, run_id: str) -> str:
        """The preset text a run started from, as written."""
        row = self.conn.execute("SELECT preset_text FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise UnknownRunError(f"no run {run_id!r} in {self.path}")
        return row[0]

    def list_runs(self) -> list[dict[str, Any]]:
        """Every run, oldest first. A run whose rows are damaged is listed with status "damaged",
        damaged=True and the reason in error, so one bad row never hides the others."""
        try:
            ids = [r[0] for r in self.conn.execute("SELECT id FROM runs ORDER BY created, id").fetchall()]
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: the store is damaged: its list of runs cannot be read ({exc}); "
                             f"`sqlite3 {self.path} .recover` may save what is left") from None
        out = []
        for run_id in ids:
            try:
                out.append(self._list_entry(run_id))
            except (StoreError, sqlite3.DatabaseError, ValueError, TypeError, KeyError, OSError,
                    EOFError, zipfile.BadZipFile) as exc:
                out.append(self._damaged_entry(run_id, exc))
        return out

    def _list_entry(self, run_id: str) -> dict[str, Any]:
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
            unit_status={u[0]: u[1] for u in units}, damaged=False,
        )
        return info

    def _damaged_entry(self, run_id: str, exc: BaseException) -> dict[str, Any]:
        """What can still be read of a run with a damaged row, marked damaged."""
        info: dict[str, Any] = {"id": run_id, "study": "?", "workload": "?", "kind": "?", "created": None,
                                "finished": None, "wall_time_s": 0.0, "preset_path": None, "meta": {},
                                "pid": None, "host": None}
        for column in ("study", "workload", "kind", "created", "wall_time_s"):
            with contextlib.suppress(sqlite3.DatabaseError):
                row = self.conn.execute(f"SELECT {column} FROM runs WHERE id=?", (run_id,)).fetchone()
                if row is not None and row[0] is not None:
                    info[column] = row[0]
        reason = str(exc) if isinstance(exc, StoreError) else f"{type(exc).__name__}: {exc}"
        info.update(status=DAMAGED, error=f"damaged: {reason}", units=[], replicates_done=0,
                    replicates_total=0, diverged=0, unit_status={}, damaged=True)
        return info

    def latest_run(self, study: str | None = None, kind: str | None = None) -> str | None:
        """The newest run id (of a study and kind, when given), or None."""
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
        """(chunk index, state bytes) of a unit's last checkpoint, or None."""
        row = self.conn.execute("SELECT chunk_index, state FROM checkpoints WHERE run_id=? AND unit=?",
                                (run_id, unit)).fetchone()
        return (row[0], row[1]) if row else None

    def truncate_unit(self, run_id: str, unit: str, after_chunk: int) -> None:
        """Drop chunks written after a checkpoint so a resumed unit does not record them twice."""
        with self._write(run_id) as c:
            c.execute("DELETE FROM chunks WHERE run_id=? AND unit=? AND chunk_index>?",
                      (run_id, unit, after_chunk))

    def unit_rows(self, run_id: str) -> list[dict[str, Any]]:
        """A run's units in order: name, spec, replicates, total_steps, eval_points, status, wall time, extra."""
        rows = self.conn.execute(
            "SELECT name, spec, replicates, total_steps, eval_points, status, wall_time_s, extra"
            " FROM units WHERE run_id=? ORDER BY position", (run_id,)).fetchall()
        return [
            {"name": r[0], "spec": json.loads(r[1]), "replicates": r[2], "total_steps": r[3],
             "eval_points": r[4], "status": r[5], "wall_time_s": r[6], "extra": json.loads(r[7])}
            for r in rows
        ]

    def unit_row(self, run_id: str, name: str) -> dict[str, Any]:
        """One unit's row (as unit_rows gives it), by its key: O(1) in the run's unit count."""
        r = self.conn.execute(
            "SELECT name, spec, replicates, total_steps, eval_points, status, wall_time_s, extra"
            " FROM units WHERE run_id=? AND name=?", (run_id, name)).fetchone()
        if r is None:
            raise UnknownRunError(f"run {run_id} has no unit {name!r}")
        return {"name": r[0], "spec": json.loads(r[1]), "replicates": r[2], "total_steps": r[3],
                "eval_points": r[4], "status": r[5], "wall_time_s": r[6], "extra": json.loads(r[7])}

    def load_unit(self, run_id: str, row: dict[str, Any]) -> UnitResult:
        """A unit's whole history (every stored chunk, in order) as a UnitResult."""
        rows = self.conn.execute(
            "SELECT minibatch_loss, eval_step, eval, diverged_at FROM chunks"
            " WHERE run_id=? AND unit=? ORDER BY chunk_index", (run_id, row["name"])).fetchall()
        chunks = (_StoredChunk(_unnpy(loss), eval_step, _unnpz(eval_blob), _unnpy(div))
                  for loss, eval_step, eval_blob, div in rows)
        return UnitResult.from_chunks(row["name"], row["spec"], row["replicates"], chunks, status=row["status"],
                                      wall_time_s=row["wall_time_s"], total_steps=row["total_steps"],
                                      extra=row["extra"])

    def load_run(self, run_id: str) -> RunResult:
        """A run with every unit's history, as exports and the session consume it."""
        run_id = self.resolve(run_id)
        info = self.run_info(run_id)
        try:
            units = {r["name"]: self.load_unit(run_id, r) for r in self.unit_rows(run_id)}
            preset_text = self.preset_text(run_id)
        except (sqlite3.DatabaseError, ValueError, TypeError, KeyError, OSError, EOFError,
                zipfile.BadZipFile) as exc:
            raise StoreError(f"run {run_id}: its recorded histories are damaged ({type(exc).__name__}: "
                             f"{exc}); the other runs are unaffected") from None
        return RunResult(
            run_id=run_id, study=info["study"], workload=info["workload"], kind=info["kind"],
            status=info["status"], device=str(info["meta"].get("device", "")), created=info["created"],
            wall_time_s=info["wall_time_s"], preset_text=preset_text, units=units,
            meta=info["meta"],
        )
