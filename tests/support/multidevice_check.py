"""Run by tests/service/test_scale.py in a fresh interpreter with 4 forced host devices: trains the same
studies and searches on 1 device and on all 4 and prints, as JSON, the largest difference of each
case (and what the runs recorded about their devices).

    XLA_FLAGS=--xla_force_host_platform_device_count=4 python tests/support/multidevice_check.py STORE_DIR
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import jax
import numpy as np

from optui.study import presets
from optui import service
from optui.engine.events import ChunkDone
from optui.store import Store

ROOT = Path(__file__).resolve().parents[2]
TWNET_TEXT = """
workload = "twnet"
[data]
users = 30
vocab = 200
topics = 3
[budget]
iterations = 30
[eval]
points = 3
[replicates]
count = 3
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
TWNET: list[str] = []
MNIST = ["data.train_split=256", "data.test_split=64", "model.conv1=2", "model.conv2=2", "model.dense=8",
         "eval.points=2", "eval.train_examples=64", "eval.test_examples=64", "eval.slice=64",
         "budget.examples=640", "replicates.count=2", "engine.strategy=scan-vmap"]
SEARCH: list[str] = []


def histories(store: Store, run_id: str) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for row in store.unit_rows(run_id):
        u = store.load_unit(run_id, row)
        out[u.name] = {"minibatch_loss": u.minibatch_loss, **{f"eval.{k}": v for k, v in u.eval.items()},
                       "diverged_at": u.diverged_at.astype(np.float64)}
    return out


def largest_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys(), (sorted(a), sorted(b))
    worst = 0.0
    for unit in a:
        assert a[unit].keys() == b[unit].keys()
        for k in a[unit]:
            x, y = a[unit][k], b[unit][k]
            assert x.shape == y.shape, (unit, k, x.shape, y.shape)  # padding never stored
            worst = max(worst, float(np.nanmax(np.abs(x - y), initial=0.0)))
    return worst


def study(preset: str, sets: list[str], devices) -> object:
    sets = sets + [f"engine.devices={devices!r}".replace("'", '"')]
    if preset == "twnet.toml":
        return presets.loads(TWNET_TEXT, "tiny-twnet.toml", sets)
    return service.load_study(ROOT / "presets" / preset, sets)


# Built once per preset, compiled once per device layout: compiles dominate a CPU's time here.
SHARED: dict[str, tuple] = {}
T0 = time.perf_counter()


def shared(preset: str, sets: list[str]) -> tuple:
    key = preset + repr(sets)
    if key not in SHARED:
        SHARED[key] = (service.build_workload(study(preset, sets, 1)), service.CompiledGroups())
    return SHARED[key]


def run_study(store: Store, preset: str, sets: list[str], devices, stop_after: int | None = None,
              resume: str | None = None) -> str:
    cancel = threading.Event()

    def listen(e):
        if stop_after is not None and isinstance(e, ChunkDone) and e.chunk_index >= stop_after:
            cancel.set()

    workload, compiled = shared(preset, sets)
    runner = service.StudyRunner(study(preset, sets, devices), store, listen, cancel, compiled)
    configs = ["sgd-default"] if preset.startswith("mnist") and not resume else None  # one CNN compile
    return runner.run(resume=resume, workload=workload, configs=configs)


def sharded_layout() -> dict:
    """3 members on 4 devices: a member axis of 4, split one member per device."""
    from optui.engine.core import GroupRunner, member_keys, run_group
    from optui.engine.placement import Placement
    from optui.workloads.base import Strategy

    workload, _ = shared("twnet.toml", TWNET)
    runner = GroupRunner(workload, "sgd", 16, Strategy(), Placement.of("all"))
    out, state = next(run_group(runner, member_keys(0, 3), {"learning_rate": np.full(3, 0.1)}, 4, 1))
    leaf = jax.tree.leaves(state.params)[0]
    return {"members": int(leaf.shape[0]), "devices": len(leaf.sharding.device_set),
            "shard": int(leaf.addressable_shards[0].data.shape[0]), "reported": int(out.minibatch_loss.shape[0])}


def main() -> None:
    from optui.engine import core

    core.TARGET_CALL_SECONDS = 0.0  # one eval block per device call: stop_after can stop part-way
    store = Store.open(Path(sys.argv[1]))
    report = {"devices": jax.device_count(), "sharded": sharded_layout()}
    for case, preset, sets in (("twnet", "twnet.toml", TWNET),
                               ("twnet-sequential", "twnet.toml", TWNET + ["engine.strategy=scan-sequential"]),
                               ("twnet-blocks", "twnet.toml", ["replicates.count=5", "engine.replicates_per_batch=2"]),
                               ("mnist", "mnist-offline.toml", MNIST)):
        one = run_study(store, preset, sets, 1)
        four = run_study(store, preset, sets, "all")
        report[case] = largest_difference(histories(store, one), histories(store, four))
        report[case + ".device"] = store.run_info(four)["meta"]["device"]
        print(f"{case}: {time.perf_counter() - T0:.0f} s", file=sys.stderr)
    # A run on 4 devices stopped after its first chunk, resumed on 4 (and one resumed on 2).
    one = run_study(store, "twnet.toml", TWNET, 1)
    for resumed_on in ("all", 2):
        part = run_study(store, "twnet.toml", TWNET, "all", stop_after=0)
        report[f"resume-{resumed_on}.interrupted"] = store.run_info(part)["status"]
        run_study(store, "twnet.toml", TWNET, resumed_on, resume=part)
        report[f"resume-{resumed_on}"] = largest_difference(histories(store, one), histories(store, part))
    # A search: trials grouped by batch size, each group over the 4 devices.
    workload, compiled = shared("twnet.toml", TWNET)
    runs = [service.SearchRunner(study("twnet.toml", SEARCH, d), "adam", store, compiled=compiled).run(workload=workload)
            for d in (1, "all")]
    report["search"] = largest_difference(*(histories(store, r) for r in runs))
    report["search.device"] = store.run_info(runs[1])["meta"]["device"]
    print(f"done: {time.perf_counter() - T0:.0f} s", file=sys.stderr)
    print("RESULT " + json.dumps(report))


if __name__ == "__main__":
    main()
