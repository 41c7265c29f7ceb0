"""A working folder with a stored study and search, fixed numbers throughout: what the session's
snapshots and workbench tests open."""

from __future__ import annotations

import time
from pathlib import Path
import numpy as np
from optui.store import Store

PRESET = """\
# Fixed preset for the snapshots.
study = "snap"
workload = "twnet"

[data]
users = 30
vocab = 200

[budget]
iterations = 40

[eval]
points = 5

[replicates]
count = 3
seed = 0

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
trials = 4
objective = "final_test_loss"
learning_rate = { low = 0.001, high = 1, scale = "log" }
batch_size = 16

[[compare]]
title = "SGD vs Adam"
configs = ["sgd", "adam"]
metric = "test_loss"
"""

REPS, STEPS, CHUNKS = 3, 40, 5


def _decay(scale: float, rng: np.random.Generator, start: int, n: int) -> np.ndarray:
    steps = np.arange(start + 1, start + n + 1)
    noise = 1.0 + 0.15 * rng.random((REPS, n))
    return (scale * np.exp(-steps / 25.0)[None, :] * noise + 0.05).astype(np.float32)


def _write_unit(store: Store, run_id: str, name: str, scale: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    per = STEPS // CHUNKS
    for c in range(CHUNKS):
        end = (c + 1) * per
        final = scale * np.exp(-end / 25.0) + 0.05
        evals = {"train_loss": final * (1 + 0.05 * rng.random(REPS)),
                 "test_loss": final * (1.1 + 0.05 * rng.random(REPS))}
        store.write_chunk(run_id, name, c, c * per, _decay(scale, rng, c * per, per), end, evals,
                          np.full(REPS, -1))
    store.finish_unit(run_id, name, "done", 1.0)


def make_folder(root: Path) -> Path:
    (root / "presets").mkdir(parents=True)
    (root / "presets" / "snap.toml").write_text(PRESET, encoding="utf-8")
    store = Store.open(root / "runs")
    search = store.create_run("snap", "twnet", "search", PRESET, "presets/snap.toml",
                              {"device": "cpu", "space_name": "adam",
                               "space": {"objective": "final_test_loss"}})
    for i, (lr, objective) in enumerate([(0.002, 0.71), (0.03, 0.62), (0.2, 0.58), (0.9, 0.66)]):
        name = f"adam-t{i + 1:03d}"
        store.add_unit(search, name, {"optimizer": "adam", "learning_rate": lr, "batch_size": 16,
                                      "trial": i + 1, "space": "adam", "steps": STEPS}, 1, STEPS, CHUNKS)
        store.finish_unit(search, name, "done", 1.0, {"objective": objective})
    store.finish_run(search, "done", 4.0)
    time.sleep(0.01)  # the study run is the newer one: listed first
    study = store.create_run("snap", "twnet", "study", PRESET, "presets/snap.toml", {"device": "cpu"})
    for name, scale, seed in (("sgd", 1.0, 1), ("adam", 0.6, 2)):
        store.add_unit(study, name, {"optimizer": name, "learning_rate": 0.1, "batch_size": 16},
                       REPS, STEPS, CHUNKS)
        _write_unit(store, study, name, scale, seed)
    store.finish_run(study, "done", 2.0)
    store.close()
    return root
