"""Histories as a long-format CSV and a run summary as JSON.

CSV columns: study, config, replicate, step, percent, metric, value. Minibatch-loss rows use
step = 1..steps_done (the loss of that step); eval rows use the step the eval ran at (0 = before
training). NaN (a diverged replicate) is written as "nan".
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..results.metrics import MINIBATCH, RunMetrics
from ..results import RunResult
from ..results.stats import metric_curve, summarise_unit, time_to_target
from . import atomic

CSV_COLUMNS = ("study", "config", "replicate", "step", "percent", "metric", "value")


def _steps_for(unit: Any, metric: str, points: int) -> np.ndarray:
    if metric == MINIBATCH:
        return np.arange(1, points + 1)
    return np.asarray(unit.eval_steps)[:points]


def csv_rows(run: RunResult) -> Iterator[tuple]:
    for name, unit in run.units.items():
        for metric in [MINIBATCH, *unit.eval]:
            curve = metric_curve(unit, metric)
            if curve is None:
                continue
            percent, values = curve
            steps = _steps_for(unit, metric, values.shape[1])
            pct = [f"{p:.6g}" for p in percent]
            for r, row in enumerate(values):
                for step, p, v in zip(steps.tolist(), pct, row.tolist()):
                    yield (run.study, name, r, step, p, metric, repr(v) if math.isfinite(v) else "nan")


def write_csv(run: RunResult, path: str | Path) -> Path:
    with atomic.atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(csv_rows(run))
    return Path(path)


def summary(run: RunResult, targets: dict[str, float] | None = None) -> dict[str, Any]:
    """Run facts plus summarise_unit per config; targets (metric -> threshold) add time-to-target.

    "metrics" lists the run's metric declarations (name, kind, higher_is_better, label, split),
    "objective" its objective and "train_test" its train/test pair (RunMetrics.as_meta): readers
    lay out tables from them.
    """
    metrics = RunMetrics.of_run(run)
    configs = {}
    for name, unit in run.units.items():
        entry = summarise_unit(unit, list(metrics.names))
        entry["spec"] = unit.spec
        for metric, target in (targets or {}).items():
            curve = metric_curve(unit, metric)
            values = None if curve is None else curve[1][np.asarray(unit.healthy)]
            entry.setdefault("time_to_target", {})[metric] = {
                "target": target,
                "percent": None if curve is None else time_to_target(curve[0], values, target,
                                                                      metrics.higher_is_better(metric)),
            }
        configs[name] = entry
    return {
        "run_id": run.run_id, "study": run.study, "workload": run.workload, "kind": run.kind,
        "status": run.status, "device": run.device, "created": run.created,
        "wall_time_s": run.wall_time_s, **metrics.as_meta(), "configs": configs,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps_json(data: Any) -> str:
    """JSON text of data with numpy values made plain and NaN/inf written as null."""
    return json.dumps(_jsonable(data), indent=2, allow_nan=False) + "\n"


def write_json(data: dict[str, Any], path: str | Path) -> Path:
    return atomic.write_text(path, dumps_json(data))
