"""Case 5: running out of device memory on a large study.

The error says what to reduce (replicates trained at once, the eval slice), the run is marked
failed with that reason, finished work is kept, and --resume finishes only what is missing. The
remedy it names, engine.replicates_per_batch, gives the same results as training all at once.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from optui.study import presets
from optui.service import StudyRunner
from optui.store import Store
from support.common import tiny_preset_text

# Runs `optui ...` with the device "running out of memory" on the first chunk of the adam config,
# the way XLA reports it; everything before that trains for real.
OOM_AFTER_SGD = """
import sys
import jax
from optui.engine import core

_train = core.GroupRunner.train_blocks
def train_blocks(self, *args, **kwargs):
    if self.optimizer == "adam":
        raise jax.errors.JaxRuntimeError(
            "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 17179869184 bytes.")
    return _train(self, *args, **kwargs)
core.GroupRunner.train_blocks = train_blocks

from optui.cli import app
sys.argv[0] = "optui"
app()
"""


def test_replicates_per_batch_gives_the_same_run(tmp_path):
    text = tiny_preset_text(iterations=16, points=4, replicates=5)
    runs = {}
    for per_batch in (0, 2):
        study = presets.loads(text, "tiny.toml", [f"engine.replicates_per_batch={per_batch}"])
        store = Store.open(tmp_path / f"runs-{per_batch}")
        runs[per_batch] = store.load_run(StudyRunner(study, store).run())
    assert runs[2].meta["strategy"].endswith("x2")
    for name, unit in runs[0].units.items():
        other = runs[2].units[name]
        np.testing.assert_allclose(other.minibatch_loss, unit.minibatch_loss, rtol=1e-6)
        np.testing.assert_allclose(other.eval["test_loss"], unit.eval["test_loss"], rtol=1e-6)


def test_out_of_memory_names_the_remedy_and_keeps_finished_work(cli, write_preset):
    preset = write_preset(iterations=16, points=4, replicates=3)
    failed = subprocess.run([sys.executable, "-c", OOM_AFTER_SGD, "run", str(preset), "--headless"], cwd=cli.cwd, env=cli.env,
                            capture_output=True, text=True, timeout=240)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "Traceback" not in failed.stderr
    assert "out of memory" in failed.stderr
    assert "engine.replicates_per_batch" in failed.stderr and "eval.slice" in failed.stderr

    run = json.loads(cli("runs", "--json").stdout)[0]
    assert run["status"] == "failed"
    assert "out of memory" in run["error"]
    assert run["unit_status"] == {"sgd": "done", "adam": "failed"}
    store = Store.open(cli.cwd / "runs")
    kept = store.load_run(run["id"]).units["sgd"].minibatch_loss.copy()
    assert kept.shape == (3, 16) and np.isfinite(kept).all()

    resumed = cli("run", preset, "--headless", "--resume", run["id"])
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    final = store.load_run(run["id"])
    assert final.status == "done"
    np.testing.assert_array_equal(final.units["sgd"].minibatch_loss, kept)  # not trained again
    assert final.units["adam"].minibatch_loss.shape == (3, 16)
