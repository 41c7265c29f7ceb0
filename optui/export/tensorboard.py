"""TensorBoard event files of a run, written with tensorboardX (no TensorFlow needed).

Layout under the log folder (`tensorboard --logdir LOGDIR` shows it):

    <study>/<run id>/<config or trial>/rep-NN/   one TensorBoard run per replicate
        by_step/<metric>       the value against the training step
        by_examples/<metric>   the same values against training examples seen (step x batch size)

<metric> is minibatch_loss (every step) and each recorded eval metric (train_loss, test_loss,
accuracies, ...) at every eval point. Values a replicate never produced (it diverged) are left
out. TensorBoard's wall-time axis is approximate: the store keeps no per-step clock, so a unit's
recorded wall time is spread evenly over its steps from the run's start.

The HParams dashboard ranks a run's units by their objective. A search: each trial (and each
confirmation re-run) folder is a session with its hyperparameters, status and stage, and its
search objective as the scalar hparams/<objective> (hparams/final_test_loss, ...). A study: each
config folder is a session with its optimiser's settings and the mean final value of the run's
objective (RunMetrics) over healthy replicates, hparams/final_<objective> (hparams/final_test_mse);
whether lower or higher is better is the workload's, stated in the metric's description. The run
folder holds the experiment (the columns of the table).

Each run's folder is written beside its final place and renamed into it, so exporting a run
again replaces its event files instead of adding a second copy that TensorBoard would merge.
"""

from __future__ import annotations

import contextlib
import glob
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..optional import require
from ..system.processes import pid_alive
from ..results import RunResult, UnitResult
from .atomic import ExportError, ensure_writable_dir

# Spec keys of a search unit that describe it rather than set a hyperparameter.
_NOT_HPARAMS = ("trial", "space", "steps", "confirm_of")


def require_tensorboardx() -> Any:
    """The tensorboardX module, or MissingDependency naming the install command."""
    return require("tensorboardX", "--tensorboard")


def path_part(text: str) -> str:
    """A folder name for a study, config or trial: as it is when safe, else a slug of it."""
    from . import slug

    plain = text and not any(c in text for c in "/\\:\0") and not text.startswith(".")
    return text if plain else slug(text)


def run_folder(logdir: str | Path, run: RunResult) -> Path:
    return Path(logdir) / path_part(run.study) / path_part(run.run_id)


def write_run(run: RunResult, logdir: str | Path) -> Path:
    """Write a run's event files under logdir; returns the run's folder (see the module doc)."""
    tbx = require_tensorboardx()
    final = run_folder(logdir, run)
    ensure_writable_dir(final.parent)
    _sweep_leftovers(final)
    staging = final.parent / f".{final.name}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    folders = unit_folders(run)
    try:
        for name, unit in run.units.items():
            _write_unit(tbx, run, unit, staging / folders[name])
        if run.kind in ("search", "study"):
            _write_hparams(tbx, run, staging, folders)
        staging.mkdir(parents=True, exist_ok=True)  # a run with no units still gets its folder
        _replace_folder(staging, final)
    except OSError as exc:
        raise ExportError(f"{final}: cannot write TensorBoard files ({exc.strerror or exc})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def unit_folders(run: RunResult) -> dict[str, str]:
    """A distinct folder name per unit (names that make the same slug get -2, -3, ...)."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for name in run.units:
        base = folder = path_part(name)
        k = 1
        while folder.lower() in used:  # also apart on case-insensitive file systems
            k += 1
            folder = f"{base}-{k}"
        used.add(folder.lower())
        out[name] = folder
    return out


def _sweep_leftovers(final: Path) -> None:
    """Remove staging and moved-aside folders of final left by exports that were killed."""
    for leftover in final.parent.glob(f".{glob.escape(final.name)}.*"):
        pid = leftover.name[len(final.name) + 2:].split(".", 1)[0]
        if leftover.is_dir() and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _replace_folder(new: Path, final: Path) -> None:
    """Put new in final's place; an older export of the run is moved aside, then removed."""
    old = final.parent / f".{final.name}.{os.getpid()}.old"
    if final.exists():
        os.replace(final, old)
    os.replace(new, final)
    with contextlib.suppress(OSError):
        shutil.rmtree(old)


def unit_curves(unit: UnitResult) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """metric -> (steps (T,), values (R, T)): minibatch loss at steps 1..n, evals at their steps."""
    curves = {}
    mb = np.asarray(unit.minibatch_loss, dtype=float)
    if mb.ndim == 2 and mb.shape[1]:
        curves["minibatch_loss"] = (np.arange(1, mb.shape[1] + 1), mb)
    for metric, values in unit.eval.items():
        values = np.asarray(values, dtype=float)
        if values.ndim == 2 and values.shape[1]:
            curves[metric] = (np.asarray(unit.eval_steps)[: values.shape[1]].astype(int), values)
    return curves


def batch_size(unit: UnitResult) -> int | None:
    """Examples per step from the unit's spec; None when it does not say (imported histories)."""
    value = unit.spec.get("batch_size")
    try:
        size = int(value)
    except (TypeError, ValueError):
        return None
    return size if size > 0 else None


def _write_unit(tbx: Any, run: RunResult, unit: UnitResult, folder: Path) -> None:
    curves = unit_curves(unit)
    batch = batch_size(unit)
    total = max(unit.total_steps, 1)
    for r in range(unit.replicates):
        writer = tbx.SummaryWriter(str(folder / f"rep-{r:02d}"), max_queue=4096, flush_secs=3600)
        try:
            for metric, (steps, values) in curves.items():
                for step, value in zip(steps.tolist(), values[r].tolist()):
                    if not math.isfinite(value):
                        continue  # diverged: TensorBoard draws no point rather than a broken line
                    wall = run.created + unit.wall_time_s * step / total
                    writer.add_scalar(f"by_step/{metric}", value, step, walltime=wall)
                    if batch is not None:
                        writer.add_scalar(f"by_examples/{metric}", value, step * batch, walltime=wall)
        finally:
            writer.close()


def session_hparams(unit: UnitResult) -> dict[str, Any]:
    """The HParams columns of one search unit: its hyperparameters, status and stage."""
    params: dict[str, Any] = {}
    for key, value in unit.spec.items():
        if key in _NOT_HPARAMS:
            continue
        if isinstance(value, (bool, str)):
            params[key] = value
        elif isinstance(value, (int, float, np.number)):
            params[key] = float(value) if isinstance(value, (float, np.floating)) else int(value)
    params["status"] = unit.status
    params["stage"] = ("confirm" if unit.spec.get("confirm_of") else "search" if "trial" in unit.spec
                       else "config")
    return params


def session_objective(unit: UnitResult, run: RunResult | None = None) -> float | None:
    """A search unit's objective (mean over its replicates) when it finished healthy; a study
    config's mean final objective (RunMetrics) over its healthy replicates."""
    if run is not None and run.kind == "study":
        from ..results.metrics import RunMetrics
        from ..results.stats import final_values

        name = RunMetrics.of_run(run).objective_name
        finals = final_values(unit, name) if name else None
        finals = None if finals is None else np.asarray(finals)[np.isfinite(finals)]
        value = float(finals.mean()) if finals is not None and finals.size else None
    else:
        value = unit.extra.get("objective") if unit.status == "done" else None
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def objective_tag(run: RunResult) -> str:
    """The HParams metric: hparams/<a search's objective>, hparams/final_<a study's objective>."""
    if run.kind == "study":
        from ..results.metrics import RunMetrics

        return f"hparams/final_{RunMetrics.of_run(run).objective_name or 'objective'}"
    names = [u.extra.get("objective_name") for u in run.units.values()]
    name = next((n for n in names if isinstance(n, str) and n), "objective")
    return f"hparams/{name}"


def _objective_description(run: RunResult) -> str:
    """'test MSE, lower is better' for the experiment's metric column."""
    from ..results.metrics import RunMetrics

    metrics = RunMetrics.of_run(run)
    if run.kind == "study" and metrics.objective is not None:
        return f"final {metrics.objective.label}, {metrics.direction()}"
    goals = [u.extra.get("objective_goal") for u in run.units.values()]
    goal = next((g for g in goals if g in ("min", "max")), None)
    return {"min": "lower is better", "max": "higher is better"}.get(goal, "")


def _write_hparams(tbx: Any, run: RunResult, folder: Path, folders: dict[str, str]) -> None:
    from tensorboardX.summary import hparams

    columns: dict[str, Any] = {}
    for unit in run.units.values():
        for key, value in session_hparams(unit).items():
            columns.setdefault(key, value)
    if not columns:
        return
    tag = objective_tag(run)
    metrics = {tag: 0.0}
    exp, _, _ = hparams(columns, metrics)
    _describe_metric(exp, tag, _objective_description(run))
    writer = tbx.FileWriter(str(folder))
    try:
        writer.add_summary(exp)
    finally:
        writer.close()
    for name, unit in run.units.items():
        _, start, end = hparams(session_hparams(unit), metrics)
        writer = tbx.FileWriter(str(folder / folders[name]))
        try:
            writer.add_summary(start)
            objective = session_objective(unit, run)
            if objective is not None:
                writer.add_summary(tbx.summary.scalar(tag, objective), max(unit.total_steps, 0),
                                   walltime=run.created + unit.wall_time_s)
            writer.add_summary(end)
        finally:
            writer.close()


def _describe_metric(exp: Any, tag: str, description: str) -> None:
    """Set the HParams metric's description (its direction) in the experiment summary."""
    if not description:
        return
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData

    for value in exp.value:
        data = HParamsPluginData()
        data.ParseFromString(value.metadata.plugin_data.content)
        for info in data.experiment.metric_infos:
            if info.name.tag == tag:
                info.description = description
        value.metadata.plugin_data.content = data.SerializeToString()
