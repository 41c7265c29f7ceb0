"""Case 6: a full disk, or a read-only runs/ or exports/ folder.

Refused before any training where that can be known; otherwise the run ends failed with the
reason, the store stays sound, and --resume finishes it.
"""

from __future__ import annotations

import json
import resource
import signal
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest

from optui.store import Store
from support.disk import read_only
from support.common import optui_command

def run_cli(args, cwd: Path, env: dict, preexec=None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(optui_command() + [str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=preexec)


def training_started(result: subprocess.CompletedProcess) -> bool:
    return "running tiny" in result.stdout


@pytest.mark.parametrize("folder", ["runs", "exports"])
def test_read_only_output_folder_is_refused_before_training(cli, write_preset, folder):
    preset = write_preset()
    (cli.cwd / folder).mkdir()
    with read_only(cli.cwd / folder):
        result = cli("run", preset, "--headless")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert folder in result.stderr, result.stderr
    assert any(why in result.stderr for why in ("not writable", "Read-only", "Permission denied")), result.stderr
    assert not training_started(result), result.stdout


def test_an_output_folder_that_cannot_exist_is_refused_before_training(cli, write_preset):
    preset = write_preset()
    (cli.cwd / "blocked").write_text("a file where the exports folder should go")
    result = cli("run", preset, "--headless", "--exports", "blocked/exports")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "blocked/exports" in result.stderr and "Traceback" not in result.stderr
    assert not training_started(result)
    assert not (cli.cwd / "runs").exists() or Store.open(cli.cwd / "runs").list_runs() == []


def full_disk_after(limit_bytes: int):
    """preexec_fn: files this process writes cannot grow beyond limit_bytes (EFBIG), like a full disk."""
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return apply


def test_disk_full_mid_run_fails_cleanly_and_resumes(cli, write_preset, tmp_path):
    preset = write_preset(iterations=40, points=20, replicates=3)
    reference = cli("run", preset, "--headless", "--store", "reference", "--no-export")
    assert reference.returncode == 0, reference.stderr
    # The finished store's size: the write-ahead log of a run outgrows it part-way through.
    limit = (cli.cwd / "reference" / "optui.sqlite").stat().st_size

    env = {k: v for k, v in cli.env.items() if not k.startswith("JAX_PERSISTENT") and k != "JAX_COMPILATION_CACHE_DIR"}
    failed = run_cli(["run", preset, "--headless"], cli.cwd, env, full_disk_after(limit))
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "Traceback" not in failed.stderr
    assert "cannot write the run store" in failed.stderr, failed.stderr

    db = cli.cwd / "runs" / "optui.sqlite"
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    run = json.loads(cli("runs", "--json").stdout)[0]
    assert run["status"] in ("failed", "interrupted")
    store = Store.open(cli.cwd / "runs")
    partial = store.load_run(run["id"])
    assert sum(u.minibatch_loss.shape[1] for u in partial.units.values()) < 2 * 40  # it really stopped

    resumed = cli("run", preset, "--headless", "--resume", run["id"], "--no-export")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    final = store.load_run(run["id"])
    expected = Store.open(cli.cwd / "reference").load_run("latest")
    for name, unit in expected.units.items():
        np.testing.assert_array_equal(final.units[name].minibatch_loss, unit.minibatch_loss)
        np.testing.assert_array_equal(final.units[name].eval["test_loss"], unit.eval["test_loss"])
