"""Fingerprints of what a run trains on, recorded when it starts and checked when it resumes.

A resumed run must train on what it started with: the same resolved preset (every setting that
decides its results) and the same data, bit for bit. Otherwise it would finish half on one
study and half on another, under metadata that describes only the first. The preset is kept
as a flat table of dotted keys, so a refusal can name exactly what changed; the data as a hash
of the arrays the workload trains and evaluates on, with the workload's description of them.
"""

from __future__ import annotations

import dataclasses

import hashlib
import math
import warnings
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..errors import DataError, PresetError
from ..export.pickles import plain

# Settings a resume may change: they decide memory, checkpoint cadence and where training runs,
# not results (the out-of-memory advice names the first and third), or, for a search, how many
# trials to run.
OPERATIONAL = ("engine.replicates_per_batch", "engine.checkpoint_seconds", "eval.slice", "engine.devices",
               "engine.executor")
OPERATIONAL_SEARCH = ("trials",)
# Where the data is read from: its content is what the data fingerprint checks, so moving the
# files (and saying where with --set) is no change.
LOCATION_KEYS = ("path", "data_dir")


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def resolved_preset(study: Any, configs: Iterable[str] | None = None, space: str | None = None) -> dict[str, Any]:
    """The settings that decide a run's results, as dotted keys -> values.

    configs: the configs a study run trains (others in the preset do not matter to it);
    space: the search space a search run draws from (its configs do not matter to it).
    """
    settings: dict[str, Any] = {
        "workload": study.workload,
        "data": {k: v for k, v in study.data.items() if k not in LOCATION_KEYS},
        "model": study.model,
        "budget": {study.budget.kind: study.budget.value},
        "eval": study.eval,
        "replicates": {"count": study.replicates_count, "seed": study.replicates_seed},
        "engine": dataclasses.asdict(study.engine),
    }
    if space is not None:
        if space in study.search:
            spec = {k: v for k, v in study.search[space].as_dict().items() if k not in OPERATIONAL_SEARCH}
            settings["search"] = {space: spec}
    else:
        names = list(study.configs) if configs is None else list(configs)
        settings["configs"] = {n: study.configs[n].as_dict() for n in names if n in study.configs}
    flat = _flatten(plain(settings))
    return {k: v for k, v in flat.items() if k not in OPERATIONAL}


def data_fingerprint(workload: Any) -> dict[str, Any]:
    """A hash of every array the workload trains and evaluates on, and its description of them."""
    import jax

    digest = hashlib.blake2b(digest_size=16)
    for leaf in jax.tree.leaves(workload.data):
        array = np.ascontiguousarray(np.asarray(leaf))
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.view(np.uint8).reshape(-1) if array.size else b"")
    info = {k: v for k, v in plain(dict(workload.info or {})).items() if k != "warnings"}
    return {"hash": digest.hexdigest(), "info": info}


_OWN_PACKAGE = Path(__file__).resolve().parents[1]  # optui itself


def _digest_files(paths: Iterable[Path]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for path in sorted(paths):
        digest.update(str(path.name).encode())
        try:
            digest.update(path.read_bytes())
        except OSError as exc:
            digest.update(f"unreadable: {exc.strerror}".encode())
    return digest.hexdigest()


def _code_of(obj: Any) -> tuple[str, str] | None:
    """(what, digest) of the code behind a plug-in's object: the installed distribution that
    ships its module (name, version and a hash of its Python files), else its module's source
    file; None for optui's own code (its version is recorded with the run)."""
    import importlib.metadata as md
    import sys

    module = sys.modules.get(getattr(obj, "__module__", None) or "")
    file = getattr(module, "__file__", None)
    if not file:
        return None
    path = Path(file).resolve()
    if path.is_relative_to(_OWN_PACKAGE):
        return None
    top = (module.__name__ or "").split(".")[0]
    for dist_name in md.packages_distributions().get(top, []):
        try:
            dist = md.distribution(dist_name)
        except md.PackageNotFoundError:
            continue
        files = [Path(dist.locate_file(f)) for f in dist.files or () if str(f).endswith(".py")]
        if path in {f.resolve() for f in files if f.exists()}:
            return (f"package {dist.metadata['Name']} {dist.version}",
                    f"{dist.version}:{_digest_files(f for f in files if f.exists())}")
    return f"file {path}", _digest_files([path])


def code_fingerprint(study: Any, configs: Iterable[str] | None = None, space: str | None = None) -> dict[str, Any]:
    """The plug-in code a run trains with (its workload and optimisers): what -> [where, digest]."""
    from ..optim import registry as optimizers

    out: dict[str, Any] = {}
    spec = study.spec
    if spec is not None:
        code = _code_of(spec.build)
        if code is not None:
            out[f"workload {study.workload}"] = list(code)
    if space is not None:
        names = [study.search[space].optimizer] if space in study.search else []
    else:
        chosen = list(study.configs) if configs is None else list(configs)
        names = [study.configs[n].optimizer for n in chosen if n in study.configs]
    for name in dict.fromkeys(names):
        opt = optimizers.lookup(name)
        if not opt.source.startswith("plug-in"):
            continue
        code = _code_of(opt.build)
        if code is not None:
            out[f"optimizer {optimizers.label(name)}"] = list(code)
    return out


def of(study: Any, workload: Any, configs: Iterable[str] | None = None, space: str | None = None) -> dict[str, Any]:
    """What to record with a new run (in its meta, under "fingerprint")."""
    return {"preset": resolved_preset(study, configs, space), "data": data_fingerprint(workload),
            "code": code_fingerprint(study, configs, space)}


def _code_changes(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    changes = []
    for what in sorted(set(before) | set(now)):
        a, b = before.get(what), now.get(what)
        if a is None:
            changes.append(f"{what} ({b[0]}) was not used when it started")
        elif b is None:
            changes.append(f"{what} ({a[0]}) is no longer used")
        elif a[1] != b[1]:
            changes.append(f"the code of {what} changed ({a[0]}, now {b[0]})" if a[0] != b[0]
                           else f"the code of {what} changed ({b[0]})")
    return changes


def _show(value: Any) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
        return f"{value:g}"
    return repr(value)


def _preset_changes(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    changes = []
    for key in sorted(set(before) | set(now)):
        if key in OPERATIONAL:
            continue
        a, b = before.get(key), now.get(key)
        if a != b and not (isinstance(a, (int, float)) and isinstance(b, (int, float)) and float(a) == float(b)):
            changes.append(f"{key} was {_show(a)}, now {_show(b)}")
    return changes


def _data_changes(before: dict[str, Any], now: dict[str, Any]) -> str:
    a, b = before.get("info") or {}, now.get("info") or {}
    differ = [f"{k} {_show(a.get(k))} -> {_show(b.get(k))}" for k in sorted(set(a) | set(b))
              if a.get(k) != b.get(k)]
    return "; ".join(differ) if differ else "the same sizes, different contents"


def study_for_resume(store: Any, run_id: str, preset: str | None, overrides: list[str] | None) -> Any:
    """The study to resume run_id with: PRESET as it is now (the text recorded with the run if
    that file is gone) with the run's --set overrides and then any given now. check_resume then
    refuses it if it differs from what the run started with."""
    from ..study import presets

    info = store.run_info(run_id)
    recorded = list(info["meta"].get("overrides") or [])
    given = [o for o in (overrides or []) if o not in recorded]
    if preset and Path(preset).exists():
        return presets.load(preset, recorded + given)
    source = info["preset_path"] or preset
    if preset:
        warnings.warn(f"{preset}: no such file; resuming run {run_id} with the preset recorded with it")
    return presets.loads(store.preset_text(run_id), source, recorded + given)


def check_resume(store: Any, run_id: str, study: Any, workload: Any, configs: Iterable[str] | None = None,
                 replicates: int | None = None) -> None:
    """Refuse to resume run_id with a different preset, options or data (PresetError or DataError,
    naming what changed); the run itself is left as it is."""
    from ..study import presets

    info = store.run_info(run_id)
    rows = store.unit_rows(run_id)
    is_search = info["kind"] != "study"
    space = info["meta"].get("space_name") if is_search else None
    units = [r["name"] for r in rows]
    problems = []
    if configs and not is_search and set(configs) != set(units):
        problems.append(f"--config {', '.join(dict.fromkeys(configs))}: the run trains {', '.join(units)} "
                        f"(leave --config out to resume it)")
    if replicates is not None and not is_search and any(r["replicates"] != replicates for r in rows):
        had = sorted({r["replicates"] for r in rows})
        problems.append(f"--replicates {replicates}: the run has {'/'.join(map(str, had))} replicates "
                        f"per config (leave --replicates out to resume it)")
    recorded = info["meta"].get("fingerprint")
    if not isinstance(recorded, dict) or "preset" not in recorded:
        # A run from before fingerprints: compare with the preset recorded with it; data unchecked.
        try:
            old = presets.loads(store.preset_text(run_id), info["preset_path"], info["meta"].get("overrides") or [])
            recorded = {"preset": resolved_preset(old, None if is_search else units, space)}
        except PresetError:
            recorded = {"preset": None}
        warnings.warn(f"run {run_id} recorded no fingerprint of its data (an older optui started it): "
                      f"its data cannot be checked")
    if recorded["preset"] is not None:
        now = resolved_preset(study, None if is_search else units, space)
        problems += _preset_changes(recorded["preset"], now)
    if isinstance(recorded.get("code"), dict):
        problems += _code_changes(recorded["code"], code_fingerprint(study, None if is_search else units, space))
    if problems:
        raise PresetError(f"cannot resume run {run_id}: it started with other settings: " + "; ".join(problems)
                          + ". Resume it with the preset and options it started with, or start a new run")
    if isinstance(recorded.get("data"), dict):
        now_data = data_fingerprint(workload)
        if now_data["hash"] != recorded["data"].get("hash"):
            where = study.data.get("path") or study.data.get("data_dir") or study.data.get("source", "")
            raise DataError(f"cannot resume run {run_id}: its data changed since it started "
                            f"({_data_changes(recorded['data'], now_data)}; data from {where}). "
                            f"Restore the data it started with, or start a new run")
