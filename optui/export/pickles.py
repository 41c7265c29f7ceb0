"""Pickled histories in two layouts.

Report layout (mlruns.p, what the report's plotting code reads), a dict of lists:
    "{config}_loss_histories": [[float, ...] per replicate]   minibatch loss of every step
    "{config}_test_losses":    [float per replicate]          final full-dataset test loss
with '-' in config names written as '_' (sgd-default -> sgd_default). The test-loss key is
written only for configs that recorded a test loss. Diverged replicates keep their NaNs.

Rich layout (<study>-histories.p), a dict loadable by optui's restricted unpickler:
    {"format": "optui-histories", "version": 1, "run_id", "study", "workload", "kind",
     "configs": {name: {"spec": dict, "total_steps": int,
                        "minibatch_loss": ndarray (R, steps) float32,
                        "eval_steps": ndarray (points,) int64,
                        "eval": {metric: ndarray (R, points)},
                        "diverged_at": ndarray (R,) int64}}}
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ..results import RunResult
from ..results.stats import final_values
from . import atomic

RICH_FORMAT = "optui-histories"
RICH_VERSION = 1


def report_key(config: str) -> str:
    """Config name -> report key prefix: sgd-default -> sgd_default."""
    return config.replace("-", "_")


def report_layout(run: RunResult) -> dict[str, list]:
    out: dict[str, list] = {}
    for name, unit in run.units.items():
        prefix = report_key(name)
        if prefix + "_loss_histories" in out:
            raise atomic.ExportError(
                f"run {run.run_id}: configs {name!r} and another name map to the same report key "
                f"{prefix!r}; rename one so '-' and '_' do not collide")
        mb = np.asarray(unit.minibatch_loss, dtype=float)
        out[prefix + "_loss_histories"] = [[float(v) for v in row] for row in mb]
        finals = final_values(unit, "test_loss")
        if finals is not None:
            # The report's list holds every replicate; keep the recorded value even if it diverged.
            out[prefix + "_test_losses"] = [float(v) for v in np.asarray(unit.eval["test_loss"])[:, -1]]
    return out


def plain(value: Any) -> Any:
    """numpy scalars in specs -> Python numbers, so the pickle needs no extra globals."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def rich_layout(run: RunResult) -> dict[str, Any]:
    configs = {}
    for name, unit in run.units.items():
        configs[name] = {
            "spec": plain(dict(unit.spec)),
            "total_steps": int(unit.total_steps),
            "minibatch_loss": np.asarray(unit.minibatch_loss, dtype=np.float32),
            "eval_steps": np.asarray(unit.eval_steps, dtype=np.int64),
            "eval": {k: np.asarray(v) for k, v in unit.eval.items()},
            "diverged_at": np.asarray(unit.diverged_at, dtype=np.int64),
        }
    return {"format": RICH_FORMAT, "version": RICH_VERSION, "run_id": run.run_id, "study": run.study,
            "workload": run.workload, "kind": run.kind, "configs": configs}


def write_report_pickle(run: RunResult, path: str | Path) -> Path:
    return atomic.write_bytes(path, pickle.dumps(report_layout(run), protocol=4))


def write_rich_pickle(run: RunResult, path: str | Path) -> Path:
    return atomic.write_bytes(path, pickle.dumps(rich_layout(run), protocol=4))
