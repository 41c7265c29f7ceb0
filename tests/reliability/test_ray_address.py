"""Round 3, cases 10-12 (Ray), the parts that need no cluster: where Ray would wait for minutes
or leave a run behind, optui refuses at once (exit 2, one line, no run stored).

10. RAY_ADDRESS gets the reachability check that --ray ADDRESS gets; a cluster that listens on
    loopback only (Ray dials 127.0.0.1 as this machine's address) is refused, saying what to set.
11. `search --ray` with a pruner is refused before the run is created.
12. A raylet warning that Ray prints to the driver carries no colour under NO_COLOR.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from typer.testing import CliRunner

from optui.cli import app
from optui.store import Store

from support.checks import one_error
from tests.conftest import tiny_preset_text

ray = pytest.importorskip("ray")
ROOT = Path(__file__).resolve().parents[2]

SEARCH = """
[search.adam]
optimizer = "adam"
trials = 6
replicates = 1
learning_rate = { low = 0.001, high = 0.1, scale = "log" }
batch_size = 16
"""


def optui(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "optui.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT), **env})


def machine_address() -> str:
    import ray.util

    return ray.util.get_node_ip_address()


def test_case_10_an_unreachable_RAY_ADDRESS_is_refused_at_once(tmp_path):
    (tmp_path / "tiny.toml").write_text(tiny_preset_text())
    started = time.monotonic()
    result = optui(["run", "tiny.toml", "--headless", "--ray"], tmp_path, RAY_ADDRESS="127.0.0.1:1")
    assert time.monotonic() - started < 60  # Ray itself waits for minutes
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: could not reach the Ray cluster at 127.0.0.1:1 (RAY_ADDRESS): Connection refused; start one "
        "with `ray start --head`, or give its address to --ray or RAY_ADDRESS"]
    assert not (tmp_path / "runs").exists() or not Store.open(tmp_path / "runs").list_runs()
    # the same check, the same exit code, for the address given to --ray
    result = optui(["run", "tiny.toml", "--headless", "--ray", "127.0.0.1:1"], tmp_path)
    assert result.returncode == 2 and "127.0.0.1:1 (--ray): Connection refused" in result.stderr


def test_case_10_a_cluster_on_loopback_only_is_refused_saying_what_to_set(tmp_path):
    dialled = machine_address()
    if dialled.startswith("127."):
        pytest.skip("Ray dials loopback as loopback on this machine: nothing is rewritten")
    (tmp_path / "tiny.toml").write_text(tiny_preset_text())
    with socket.socket() as listener:  # stands for a head node that listens on 127.0.0.1 only
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        started = time.monotonic()
        result = optui(["run", "tiny.toml", "--headless", "--ray"], tmp_path, RAY_ADDRESS=f"127.0.0.1:{port}")
    assert time.monotonic() - started < 60
    assert result.returncode == 2, result.stderr
    line, = result.stderr.strip().splitlines()
    assert f"Ray connects to 127.0.0.1 as this machine's address, {dialled}:{port}" in line
    assert f"RAY_ADDRESS={dialled}:{port}" in line and f"--node-ip-address {dialled}" in line


def test_case_11_a_search_with_a_pruner_on_ray_is_refused_before_the_run(tmp_path, monkeypatch):
    from optui.service import ray_executor

    # A cluster that would accept the run: nothing is started, nothing is dialled.
    monkeypatch.setattr(ray_executor, "connect", lambda address: None)
    monkeypatch.setattr(ray_executor.ray, "cluster_resources", lambda: {"CPU": 2.0})
    monkeypatch.setattr(ray_executor.ray, "nodes", lambda: [{"Alive": True}])
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.toml").write_text(tiny_preset_text(extra=SEARCH))
    result = CliRunner().invoke(app, ["search", "tiny.toml", "--headless", "--space", "adam", "--ray",
                                      "--set", "search.adam.pruner=median", "--store", str(tmp_path / "runs")])
    line = one_error(result)
    assert "search space 'adam' has pruner = 'median'" in line and "search.adam.pruner=none" in line
    assert not (tmp_path / "runs").exists() or not Store.open(tmp_path / "runs").list_runs()


def test_case_12_a_raylet_warning_has_no_colour_under_NO_COLOR(monkeypatch):
    from ray._private import worker

    from optui.service import ray_executor

    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("RAY_COLOR_PREFIX", raising=False)
    monkeypatch.setattr(ray_executor.ray, "is_initialized", lambda: True)  # joined already
    ray_executor.connect(None)
    out = io.StringIO()
    with redirect_stdout(out):  # what Ray prints for a raylet's warning, as it reaches the driver
        worker.print_worker_logs({"pid": "raylet", "ip": "10.0.0.1", "localhost": "10.0.0.1",
                                  "lines": ["A worker died or was killed while executing a task."]}, out)
    assert "(raylet) A worker died" in out.getvalue()
    assert "\x1b[" not in out.getvalue()
