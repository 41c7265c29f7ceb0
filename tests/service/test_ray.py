"""Studies and searches on a Ray cluster that the tests start on 127.0.0.1 (2 CPUs) and stop.

Needs the optional extra (pip install -e '.[ray]'); slow (the workers start Python and JAX and
compile), so it runs in CI's slow run.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest

from optui.study import presets
from optui import service
from optui.engine.events import ChunkDone
from optui.status import Status
from optui.store import Store

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

TINY = """
workload = "twnet"
[data]
users = 30
vocab = 200
topics = 3
[budget]
iterations = 60
[eval]
points = 6
[replicates]
count = 2
[configs.sgd]
optimizer = "sgd"
learning_rate = 0.5
batch_size = 16
[configs.adam]
optimizer = "adam"
learning_rate = 0.01
batch_size = 16
[search.adam]
optimizer = "adam"
trials = 3
replicates = 1
learning_rate = { low = 0.001, high = 0.1, scale = "log" }
batch_size = { low = 4, high = 64, int = true, scale = "log", buckets = 2 }
"""


@pytest.fixture(scope="module")
def cluster():
    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}})
    yield
    ray.shutdown()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "runs")


def tiny(extra: list[str] | None = None):
    return presets.loads(TINY, "tiny.toml", extra)


def histories(store: Store, run_id: str) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for row in store.unit_rows(run_id):
        u = store.load_unit(run_id, row)
        out[u.name] = {"loss": u.minibatch_loss, "steps": u.eval_steps, **u.eval}
    return out


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for unit in a:
        assert a[unit].keys() == b[unit].keys()
        for k in a[unit]:
            np.testing.assert_allclose(a[unit][k], b[unit][k], rtol=1e-6, atol=1e-6, err_msg=f"{unit} {k}")


def ray_study(store: Store, study, listener=None, cancel=None, resume=None) -> tuple[str, service.StudyRunner]:
    runner = service.StudyRunner(study, store, listener, cancel)
    runner.ray_address = ""
    return service.run_study(study, store, resume=resume, runner=runner), runner


def test_a_study_on_ray_equals_a_local_one(cluster, store):
    local = service.run_study(tiny(), store)
    remote, runner = ray_study(store, tiny())
    assert store.run_info(remote)["status"] == Status.DONE
    assert_same(histories(store, local), histories(store, remote))
    meta = store.run_info(remote)["meta"]
    assert meta["device"].startswith("ray (1 node, 2 CPU worker slots)")
    assert meta["worker_devices"] and all("cpu" in d for d in meta["worker_devices"])
    assert len(runner.executor.workers) == 2  # one task per config


def test_a_search_on_ray_equals_a_local_one(cluster, store):
    local = service.run_search(tiny(), store, "adam")
    runner = service.SearchRunner(tiny(), "adam", store)
    runner.ray_address = ""
    remote = service.run_search(tiny(), store, "adam", runner=runner)
    assert store.run_info(remote)["status"] == Status.DONE
    assert_same(histories(store, local), histories(store, remote))
    assert [r["extra"]["objective"] for r in store.unit_rows(local)] == pytest.approx(
        [r["extra"]["objective"] for r in store.unit_rows(remote)], rel=1e-6)


def test_a_worker_killed_mid_unit_is_retried_from_its_checkpoint(cluster, store, monkeypatch):
    from optui.service import ray_executor

    monkeypatch.setattr(ray_executor, "BACKLOG", 1)  # the worker stays a chunk ahead at most
    killed: list[int] = []
    holder: dict = {}

    def listen(event):
        if isinstance(event, ChunkDone) and event.unit == "sgd" and event.chunk_index == 2 and not killed:
            pid = holder["runner"].executor.worker_of["sgd"][1]
            killed.append(pid)
            os.kill(pid, signal.SIGKILL)

    study = tiny(["configs.adam.learning_rate=0.02"])  # fresh programs: no worker has them cached
    runner = service.StudyRunner(study, store, listen)
    runner.ray_address = ""
    holder["runner"] = runner
    remote = service.run_study(study, store, runner=runner)
    local = service.run_study(study, store)
    assert killed and runner.executor.retried >= 1
    assert store.run_info(remote)["status"] == Status.DONE
    remote_h = histories(store, remote)
    assert list(remote_h["sgd"]["steps"]) == [0, 10, 20, 30, 40, 50, 60]  # none lost, none twice
    assert remote_h["sgd"]["loss"].shape == (2, 60)
    assert_same(histories(store, local), remote_h)


def test_cancel_leaves_a_run_that_resumes_locally(cluster, store):
    cancel = threading.Event()

    def listen(event):
        if isinstance(event, ChunkDone) and event.chunk_index >= 1:
            cancel.set()

    study = tiny()
    part, _ = ray_study(store, study, listen, cancel)
    assert store.run_info(part)["status"] == Status.INTERRUPTED
    service.run_study(study, store, resume=part)
    assert store.run_info(part)["status"] == Status.DONE
    assert_same(histories(store, service.run_study(study, store)), histories(store, part))
