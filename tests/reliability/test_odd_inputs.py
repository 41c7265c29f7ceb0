"""The "Also" list: smaller ways bad input or odd circumstances went wrong.

(A killed run's wall time and a store deleted mid-run are in test_round2_lease.py.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from optui.cli import app
from optui.store import Store

from support.checks import one_error, recorded_run
from support.disk import read_only
from support.common import cli_env


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_also_a_bogus_run_id_is_bad_input(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Store.open(tmp_path / "runs").close()
    for command in (("runs", "show", "bogus"), ("export", "bogus"), ("compare", "bogus:sgd", "bogus:adam")):
        assert "no run 'bogus'" in one_error(invoke(*command))


def test_also_listing_and_exporting_create_no_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    listed = invoke("runs")
    assert listed.exit_code == 0 and "no runs" in listed.stdout
    assert invoke("runs", "--json").stdout.strip() == "[]"
    assert "no run store here" in one_error(invoke("export"))
    assert "no run store here" in one_error(invoke("runs", "show", "latest"))
    assert list(tmp_path.iterdir()) == []


def test_also_a_config_named_twice_trains_once(cli, write_preset):
    preset = write_preset(iterations=12, points=2, replicates=2)
    result = cli("run", preset, "--headless", "--no-export", "--config", "sgd", "--config", "sgd")
    assert result.returncode == 0, result.stdout + result.stderr
    [run] = json.loads(cli("runs", "--json").stdout)
    assert run["units"] == ["sgd"]
    assert result.stdout.count("12/12 steps") == 1  # trained once, not twice


def test_also_a_data_path_the_source_ignores_is_refused(write_preset):
    preset = write_preset()
    line = one_error(invoke("presets", "validate", preset, "--set", "data.path=network.json"))
    assert "data.path is read only when data.source is 'json'" in line


def test_also_a_fifo_preset_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "preset.toml"
    os.mkfifo(fifo)
    # In a process of its own (reading a FIFO nobody writes would block this one for ever), with
    # a short wait so the test is quick.
    code = ("import sys\nfrom optui.study import presets\npresets.PIPE_WAIT_SECONDS = 1.0\n"
            "from optui.cli import app\nsys.argv[0] = 'optui'\napp()\n")
    try:
        result = subprocess.run([sys.executable, "-c", code, "presets", "validate", str(fifo)],
                                capture_output=True, text=True, timeout=60, env=cli_env(None))
    except subprocess.TimeoutExpired:
        pytest.fail("optui waited on the FIFO")
    assert result.returncode == 2, result.stderr
    assert "nothing to read for 1 s" in result.stderr and "Traceback" not in result.stderr


def test_also_a_read_only_store_can_be_listed_and_exported(cli, write_preset, tmp_path):
    preset = write_preset(iterations=12, points=2, replicates=2)
    recorded_run(cli.cwd / "runs")
    archive = tmp_path / "archive"
    shutil.copytree(cli.cwd / "runs", archive)
    with read_only(archive):
        listed = cli("runs", "--json", "--store", archive)
        assert listed.returncode == 0, listed.stderr
        [run] = json.loads(listed.stdout)
        assert run["status"] == "done"
        shown = cli("runs", "show", run["id"], "--store", archive)
        assert shown.returncode == 0, shown.stderr
        exported = cli("export", "--json", "--store", archive)
        assert exported.returncode == 0, exported.stderr
        written = cli("run", preset, "--headless", "--store", archive)
        assert written.returncode == 1 and "not writable" in written.stderr  # writing is still refused
    assert (cli.cwd / "exports" / "tiny" / run["id"] / "summary.json").exists()
