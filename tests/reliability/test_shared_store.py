"""Round 3, cases 13, 14 and 17 (a damaged store, a notebook reading a run still going): a store
shared by users, read-only, damaged or being written.

13: two users, one store in a folder of mode 777: another user's failed write leaves nothing
    that breaks the owner's next run (the store is made as writable as its folder, so SQLite's
    -wal and -shm are too; a store a user cannot write is refused before anything is opened).
14: optui.open_store reads a store in a read-only folder, as `optui runs` does.
17: a damaged store is refused with what to do; a notebook reading a run whose config has not
    started yet gets no points, not a KeyError.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest

import optui
from optui.errors import StoreError
from optui.store import DB_NAME, Store
from support.checks import recorded_run
from support.disk import read_only

OWNER, OTHER = 1001, 1002


def as_user(uid: int, work) -> int:
    """Run work() in a forked child with uid and gid `uid` (as another user would); its exit code
    (0: returned, 1: raised StoreError, 2: anything else)."""
    with warnings.catch_warnings():  # the child touches SQLite only, never JAX's threads
        warnings.simplefilter("ignore", RuntimeWarning)
        pid = os.fork()
    if pid == 0:
        code = 2
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            work()
            code = 0
        except StoreError:
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def a_run(folder: Path) -> None:
    store = Store.open(folder)
    try:
        run_id = store.create_run("s", "twnet", "study", "", None, {})
        store.add_unit(run_id, "a", {}, 1, 1, 1)
        store.finish_run(run_id, "done", 1.0)
    finally:
        store.close()


@pytest.fixture
def shared_folder():
    if os.geteuid() != 0:
        pytest.skip("two users' processes need root to start them")
    folder = Path(tempfile.mkdtemp(prefix="optui-shared-", dir="/tmp"))
    folder.chmod(0o777)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


@pytest.mark.parametrize("store_mode", [None, 0o644], ids=["new-store", "owner-only-store"])
def test_case_13_another_users_write_leaves_nothing_that_breaks_the_owners_next_run(shared_folder, store_mode):
    assert as_user(OWNER, lambda: a_run(shared_folder)) == 0
    if store_mode is not None:  # a store made by an older optui: the owner's alone
        (shared_folder / DB_NAME).chmod(store_mode)
    as_user(OTHER, lambda: a_run(shared_folder))  # works, or is refused: either way ...
    assert as_user(OWNER, lambda: a_run(shared_folder)) == 0  # ... the owner's next run works
    for suffix in ("-wal", "-shm"):
        left = shared_folder / (DB_NAME + suffix)
        assert not left.exists() or os.stat(left).st_uid == OWNER or os.stat(left).st_mode & 0o006 == 0o006


def test_case_13_a_store_another_user_cannot_write_is_refused_naming_its_owner(shared_folder):
    assert as_user(OWNER, lambda: a_run(shared_folder)) == 0
    (shared_folder / DB_NAME).chmod(0o644)
    messages = []

    def try_it():
        try:
            Store.open(shared_folder)
        except StoreError as exc:
            messages.append(str(exc))
            (shared_folder / "message").write_text(str(exc)) if os.access(shared_folder, os.W_OK) else None
            raise

    assert as_user(OTHER, try_it) == 1
    text = (shared_folder / "message").read_text()
    assert "belongs to user" in text and "not writable by you" in text
    assert not (shared_folder / (DB_NAME + "-wal")).exists()


def test_case_13_a_new_store_in_a_shared_folder_is_shared_too(shared_folder):
    a_run(shared_folder)
    assert (shared_folder / DB_NAME).stat().st_mode & 0o066 == 0o066


def test_case_14_open_store_reads_a_read_only_folder(tmp_path):
    runs = tmp_path / "archive"
    run_id = recorded_run(runs)
    with read_only(runs):
        with optui.open_store(runs) as store:
            [run] = store.runs()
            assert run.id == run_id and run.status == "done"
            assert run.histories("sgd").shape == (2, 2)


def test_case_17_a_damaged_store_is_refused_with_what_to_do(tmp_path):
    runs = tmp_path / "runs"
    recorded_run(runs)
    db = runs / DB_NAME
    data = db.read_bytes()
    db.write_bytes(data[:100] + b"\xff" * 200 + data[300:4096 + 100])  # a header and a torn page
    with pytest.raises(StoreError) as caught:
        store = Store.open(runs)
        store.list_runs()
    message = str(caught.value)
    assert "move it aside" in message and ".recover" in message


def test_case_17_a_notebook_reading_a_config_not_started_yet_gets_no_points(tmp_path):
    runs = tmp_path / "runs"
    writer = Store.open(runs)
    run_id = writer.create_run("s", "twnet", "study", "", None, {})
    for name in ("a", "b"):
        writer.add_unit(run_id, name, {"optimizer": "sgd", "batch_size": 4}, 2, 8, 1)
    writer.write_chunk(run_id, "a", 0, 0, np.zeros((2, 8)), 8, {"test_loss": np.ones(2)}, np.full(2, -1))
    with optui.open_store(runs) as store:
        run = store.run(run_id)
        assert run.histories("a").shape == (2, 1)
        assert run.histories("b").shape == (2, 0)  # not started yet: no points, no KeyError
        assert run.histories("b", "minibatch_loss").shape == (2, 0)
        with pytest.raises(KeyError):
            run.histories("b", "no_such_metric")
    writer.finish_run(run_id, "interrupted", 1.0)
