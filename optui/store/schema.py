"""The store's tables, its schema version and the migrations that bring older stores to it."""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 2
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
    host TEXT,
    lease_token TEXT,
    lease_expires REAL
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
SCHEMA_STATEMENTS = [stmt.strip() for stmt in _SCHEMA.split(";") if stmt.strip()]


def _add_run_owner(conn: sqlite3.Connection) -> None:
    """0 -> 1: runs record the process and host running them, so a dead run shows interrupted."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    for name, kind in (("pid", "INTEGER"), ("host", "TEXT")):
        if name not in columns:
            conn.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")


def _add_run_lease(conn: sqlite3.Connection) -> None:
    """1 -> 2: runs record a heartbeat lease (who holds them, and until when)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    for name, kind in (("lease_token", "TEXT"), ("lease_expires", "REAL")):
        if name not in columns:
            conn.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")


# MIGRATIONS[v] brings a store from schema v to v + 1. Steps leave existing rows as they are.
MIGRATIONS = {0: _add_run_owner, 1: _add_run_lease}
OLDEST_MIGRATABLE = min(MIGRATIONS)

ACTIVE = "running"
DAMAGED = "damaged"
