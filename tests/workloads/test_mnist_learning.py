"""The real CNN really learns: train on the first 8,000 t10k images, test on the last 2,000."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from optui.study import presets
from optui import workloads
from optui.engine import core

ROOT = Path(__file__).resolve().parents[2]
T10K = ROOT / ".." / "shared" / "data" / "mnist-t10k"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not T10K.is_dir(), reason="../shared/data/mnist-t10k not present"),
]


def offline_study(**overrides: str):
    sets = [f"data.path={T10K}", "eval.points=2", "replicates.count=1",
            *[f"{k}={v}" for k, v in overrides.items()]]
    return presets.load(ROOT / "presets" / "mnist-offline.toml", sets)


def test_adam_optimal_reaches_95_percent_on_held_out_images():
    import jax

    # Two passes over the 8,000 images; evaluated on all 2,000 held-out images.
    study = offline_study(**{"budget.examples": "16000", "eval.test_examples": "0"})
    workload = workloads.build(study)
    assert workload.info["n_train"] == 8000 and workload.info["n_test"] == 2000
    assert workload.info["eval_test_examples"] == 2000
    config = study.configs["adam-optimal"]
    steps = study.budget.steps(config.batch_size, workload.n_train)
    hparams = {k: np.array([v]) for k, v in config.hyperparams.items()}
    strategy = workload.choose_strategy(jax.default_backend())
    runner = core.GroupRunner(workload, config.optimizer, config.batch_size, strategy)
    keys = core.member_keys(study.replicates_seed, 1)
    outputs = [out for out, _ in core.run_group(runner, keys, hparams, steps, study.eval_points)]
    assert outputs[0].chunk_index == -1 and outputs[-1].step_end == steps
    first_loss = outputs[1].minibatch_loss[0, :10].mean()
    last_loss = outputs[-1].minibatch_loss[0, -10:].mean()
    assert last_loss < 0.3 * first_loss
    final = {k: float(v[0]) for k, v in outputs[-1].eval.items()}
    assert final["test_accuracy"] >= 0.95, final
    assert final["train_loss"] < 0.2 and final["test_loss"] < 0.25, final

