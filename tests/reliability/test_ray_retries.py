"""Round 3, cases 10 and 12 on a real Ray cluster, started on 127.0.0.1 by this module and stopped
by it: a healthy cluster given through RAY_ADDRESS=127.0.0.1:PORT trains, and a unit whose worker
was killed counts the wall time of every attempt, not only the last.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from optui.study import presets
from optui import service
from optui.engine.events import ChunkDone
from optui.status import Status
from optui.store import Store

from tests.conftest import tiny_preset_text

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster():
    context = ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
                       log_to_driver=False,
                       runtime_env={"env_vars": {"PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT))}})
    yield context.address_info["gcs_address"]
    ray.shutdown()


def test_case_10_a_healthy_cluster_through_RAY_ADDRESS_on_loopback_trains(cluster, tmp_path):
    port = cluster.rpartition(":")[2]
    (tmp_path / "tiny.toml").write_text(tiny_preset_text(iterations=20, points=2, replicates=2))
    result = subprocess.run([sys.executable, "-m", "optui.cli", "run", "tiny.toml", "--headless", "--ray"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "RAY_ADDRESS": f"127.0.0.1:{port}"})
    assert result.returncode == 0, result.stdout + result.stderr
    store = Store.open(tmp_path / "runs")
    run, = store.list_runs()
    assert run["status"] == Status.DONE and store.run_info(run["id"])["meta"]["device"].startswith("ray (")


def test_case_12_a_retried_unit_counts_every_attempt(cluster, tmp_path, monkeypatch):
    from optui.service import ray_executor

    monkeypatch.setattr(ray_executor, "BACKLOG", 1)  # the worker stays a chunk ahead at most
    study = presets.loads(tiny_preset_text(iterations=60, points=6, replicates=2,
                                           configs={"sgd": {"optimizer": "sgd", "learning_rate": 0.3,
                                                            "batch_size": 16}}), "tiny.toml")
    store = Store.open(tmp_path / "runs")
    seen: dict = {}
    last_attempt: list[float] = []
    handle = ray_executor.RayExecutor._handle

    def spy(self, recorder, attempt, message):  # what the final worker reports
        if message[0] == "outcome":
            last_attempt.append(message[1].seconds / len(attempt.group))
        return handle(self, recorder, attempt, message)

    monkeypatch.setattr(ray_executor.RayExecutor, "_handle", spy)

    def listen(event):
        if isinstance(event, ChunkDone) and event.unit == "sgd":
            seen.setdefault("first_chunk", time.perf_counter())
            if event.chunk_index == 3 and "killed" not in seen:
                seen["killed"] = time.perf_counter()
                os.kill(runner.executor.worker_of["sgd"][1], signal.SIGKILL)

    runner = service.StudyRunner(study, store, listen)
    runner.ray_address = ""
    run_id = service.run_study(study, store, runner=runner)
    assert store.run_info(run_id)["status"] == Status.DONE and runner.executor.retried == 1
    wall = next(r["wall_time_s"] for r in store.unit_rows(run_id) if r["name"] == "sgd")
    # The lost attempt ran at least from its first chunk to the kill; the last one as it says.
    lost_at_least = seen["killed"] - seen["first_chunk"]
    assert last_attempt and wall >= lost_at_least + last_attempt[-1] - 1e-6, (wall, lost_at_least, last_attempt)
