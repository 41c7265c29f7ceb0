"""Import histories in the report's mlruns.p layout (see pickles.py) as a run of kind "import".

The file is read with the restricted unpickler, then checked key by key: a dict whose keys are
"<prefix>_loss_histories" (R lists of T minibatch losses) and optionally "<prefix>_test_losses"
(R final test losses). Units are named from the prefixes with '_' -> '-' (sgd_default ->
"sgd-default"); the final test loss becomes eval {"test_loss": (R, 1)} at step T.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..study.presets import Compare
from ..results import RunResult, UnitResult
from . import safe_pickle

HISTORY_SUFFIX = "_loss_histories"
TEST_SUFFIX = "_test_losses"
IMPORT_KIND = "import"
IMPORT_WORKLOAD = "report"

# The report's Figs 1-4, with its labels and colour order (the first config is drawn in blue).
REPORT_COMPARISONS = (
    Compare("Constant: Default vs. Optimal", ("sgd-optimal", "sgd-default"), "minibatch_loss",
            ("Optimal", "Default")),
    Compare("Adam: Default vs. Optimal", ("adam-optimal", "adam-default"), "minibatch_loss",
            ("Optimal", "Default")),
    Compare("Default Constant vs. Default Adam", ("adam-default", "sgd-default"), "minibatch_loss",
            ("Adam", "Constant")),
    Compare("Optimal Constant vs. Optimal Adam", ("sgd-optimal", "adam-optimal"), "minibatch_loss",
            ("Constant", "Adam")),
)


def unit_name(prefix: str) -> str:
    return prefix.replace("_", "-")


def report_comparisons(unit_names: list[str] | set[str]) -> list[Compare]:
    """The report's four figures when all four configs are present, else none."""
    names = set(unit_names)
    return [c for c in REPORT_COMPARISONS if set(c.configs) <= names]


def compare_to_dict(c: Compare) -> dict[str, Any]:
    return {"title": c.title, "configs": list(c.configs), "metric": c.metric, "labels": list(c.labels)}


def compare_from_dict(d: dict[str, Any]) -> Compare:
    return Compare(str(d["title"]), tuple(d["configs"]), str(d.get("metric", "minibatch_loss")),
                   tuple(d.get("labels", ())))


def _as_float_vector(value: Any, source: str, where: str) -> np.ndarray:
    if isinstance(value, (str, bytes, dict)):
        raise DataError(f"{source}: {where} must be a list of numbers, got {type(value).__name__}")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{source}: {where} must be a list of numbers ({exc})") from None
    if arr.dtype.kind not in "fiub" or arr.ndim != 1:
        raise DataError(f"{source}: {where} must be a flat list of numbers, got "
                        f"{'shape ' + str(arr.shape) if arr.dtype.kind in 'fiub' else arr.dtype} ")
    return arr.astype(np.float32)


def _histories(value: Any, source: str, key: str) -> np.ndarray:
    if not isinstance(value, (list, tuple, np.ndarray)) or len(value) == 0:
        raise DataError(f"{source}: {key} must be a non-empty list with one list of losses per "
                        f"replicate, got {type(value).__name__}")
    rows = [_as_float_vector(row, source, f"{key}[{i}]") for i, row in enumerate(value)]
    lengths = {len(r) for r in rows}
    if len(lengths) != 1:
        raise DataError(f"{source}: {key}: replicates have different lengths {sorted(lengths)}; "
                        f"every replicate must record the same number of steps")
    if 0 in lengths:
        raise DataError(f"{source}: {key}: replicates hold no losses")
    return np.stack(rows)


def _first_bad_step(losses: np.ndarray) -> np.ndarray:
    bad = ~np.isfinite(losses)
    return np.where(bad.any(axis=1), bad.argmax(axis=1), -1).astype(np.int64)


def units_from_report(obj: Any, source: str) -> dict[str, UnitResult]:
    """Validate a report-layout dict and turn it into units. Raises DataError naming source and key."""
    if not isinstance(obj, dict):
        raise DataError(f"{source}: expected a dict of '<config>{HISTORY_SUFFIX}' and "
                        f"'<config>{TEST_SUFFIX}' lists, got {type(obj).__name__}")
    histories: dict[str, np.ndarray] = {}
    tests: dict[str, np.ndarray] = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise DataError(f"{source}: keys must be strings, got {key!r}")
        if key.endswith(HISTORY_SUFFIX) and len(key) > len(HISTORY_SUFFIX):
            histories[key[: -len(HISTORY_SUFFIX)]] = _histories(value, source, key)
        elif key.endswith(TEST_SUFFIX) and len(key) > len(TEST_SUFFIX):
            tests[key[: -len(TEST_SUFFIX)]] = _as_float_vector(value, source, key)
        else:
            raise DataError(f"{source}: unexpected key {key!r}; allowed: '<config>{HISTORY_SUFFIX}' "
                            f"and '<config>{TEST_SUFFIX}'")
    if not histories:
        raise DataError(f"{source}: no '<config>{HISTORY_SUFFIX}' key; nothing to import")
    orphans = sorted(set(tests) - set(histories))
    if orphans:
        raise DataError(f"{source}: {orphans[0]}{TEST_SUFFIX} has no matching "
                        f"{orphans[0]}{HISTORY_SUFFIX}")
    units: dict[str, UnitResult] = {}
    files: dict[str, str] = {}
    for prefix, losses in histories.items():
        name = unit_name(prefix)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}", prefix) or name in units:
            raise DataError(f"{source}: {prefix!r}{HISTORY_SUFFIX}: config prefix must be a plain, "
                            f"unique name (letters, digits, '_', '-'; at most 64)")
        file_key = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()
        if file_key in files:  # Adam_x and adam_x would export to one config-adam-x.png
            raise DataError(f"{source}: {prefix}{HISTORY_SUFFIX} and {files[file_key]}{HISTORY_SUFFIX} would "
                            f"export to the same file names; rename one")
        files[file_key] = prefix
        reps, steps = losses.shape
        diverged = _first_bad_step(losses)
        eval_: dict[str, np.ndarray] = {}
        eval_steps = np.zeros(0, dtype=np.int64)
        if prefix in tests:
            finals = tests[prefix]
            if finals.shape[0] != reps:
                raise DataError(f"{source}: {prefix}{TEST_SUFFIX} has {finals.shape[0]} values but "
                                f"{prefix}{HISTORY_SUFFIX} has {reps} replicates")
            eval_ = {"test_loss": finals.reshape(reps, 1)}
            eval_steps = np.array([steps], dtype=np.int64)
        units[name] = UnitResult(
            name=name, spec={"source_key": prefix}, minibatch_loss=losses.astype(np.float32),
            eval_steps=eval_steps, eval=eval_, diverged_at=diverged, status="done",
            total_steps=steps)
    return units


def load_report(path: str | Path, study: str | None = None) -> RunResult:
    """Read a report-layout pickle into an in-memory run (not stored)."""
    path = Path(path)
    obj = safe_pickle.load(path)
    units = units_from_report(obj, str(path))
    name = study or default_study_name(path)
    compare = [compare_to_dict(c) for c in report_comparisons(list(units))]
    return RunResult(run_id=f"file:{path.name}", study=name, workload=IMPORT_WORKLOAD, kind=IMPORT_KIND,
                     status="done", device="", created=path.stat().st_mtime, wall_time_s=0.0,
                     preset_text="", units=units,
                     meta={"source": str(path), "sha256": _sha256(path), "compare": compare})


def default_study_name(path: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", path.stem).strip("-._")[:64].strip("-._") or "imported"
    return stem


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def import_report(path: str | Path, store: Any, study: str | None = None) -> str:
    """Load a report-layout pickle into the store as a run of kind "import"; returns its id."""
    started = time.time()
    run = load_report(path, study)
    run_id = store.create_run(run.study, run.workload, IMPORT_KIND, "", str(Path(path)), run.meta)
    try:
        for name, unit in run.units.items():
            reps, steps = unit.minibatch_loss.shape
            store.add_unit(run_id, name, unit.spec, reps, steps, len(unit.eval_steps))
            evals = {k: v[:, -1] for k, v in unit.eval.items()}
            store.write_chunk(run_id, name, 0, 0, unit.minibatch_loss, steps, evals, unit.diverged_at)
            store.finish_unit(run_id, name, "done", 0.0)
    except BaseException as exc:
        store.finish_run(run_id, "failed", time.time() - started, error=str(exc))
        raise
    store.finish_run(run_id, "done", time.time() - started)
    return run_id
