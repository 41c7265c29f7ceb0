"""Workloads: the public contract for models and data, and how presets find them.

A plug-in imports what it needs from here:

    from optui.workloads import Metric, Setting, Settings, Workload, WorkloadSpec

and registers a factory returning a WorkloadSpec in the entry-point group `optui.workloads`
(optui's own TwNet and MNIST do exactly that in its pyproject.toml). See base.py for the
contract, registry.py for how references are resolved, and README.md "Your own workload".
Modules are imported lazily: naming a workload imports only that workload.
"""

from __future__ import annotations

from typing import Any

from ..errors import OptuiError, PresetError
from ..results.metrics import Metric
from ..schema import check_section, where
from .base import (MODEL_STREAM, SECTIONS, Batch, Data, ModelState, Params, Setting, SettingError, Settings,
                   Strategy, Workload, WorkloadSpec)
from .registry import GROUP, Provider, Resolved, providers, resolve

__all__ = ["GROUP", "MODEL_STREAM", "SECTIONS", "Batch", "Data", "EVAL_POINTS", "Metric", "ModelState",
           "Params", "Provider", "Resolved", "Setting", "SettingError", "Settings", "Strategy", "Workload",
           "WorkloadSpec", "build", "fields_of", "providers", "resolve", "run_meta", "settings_of",
           "validate_settings"]

# Every workload's [eval] has `points` (the engine's eval schedule) unless it declares its own.
EVAL_POINTS = Setting("int", 100, low=1, high=100_000, help="full-dataset evals per run (100 = every 1%)")


def fields_of(spec: WorkloadSpec) -> dict[str, dict[str, Setting]]:
    """The settings a preset may give, per section, as the validator and the TUI's form use them."""
    out = {section: dict(spec.settings.get(section, {})) for section in SECTIONS}
    out["eval"] = {"points": EVAL_POINTS, **out["eval"]}
    return out


def validate_settings(spec: WorkloadSpec, raw: dict[str, Any], file: str | None, seed: int = 0) -> Settings:
    """The preset's [data], [model] and [eval] checked against the spec's declared settings (types,
    ranges, unknown keys), then against its own rules (check_settings)."""
    fields = fields_of(spec)
    sections = {s: check_section(raw.get(s), fields[s], file, s) for s in SECTIONS}
    given = {s: frozenset(raw[s]) if isinstance(raw.get(s), dict) else frozenset() for s in SECTIONS}
    settings = Settings(sections["data"], sections["model"], sections["eval"], given, seed, file)
    if spec.check_settings is not None:
        try:
            spec.check_settings(settings)
        except SettingError as exc:
            raise PresetError(f"{where(file, exc.key)} {exc.message}") from None
        except Exception as exc:  # a bug in the plug-in's rules: still a clear refusal
            from .registry import _short, quoted

            ref = raw.get("workload")
            loc = f"{where(file, 'workload')} = {quoted(ref)}" if isinstance(ref, str) else where(file, "workload")
            raise PresetError(f"{loc}: workload {spec.name}'s check_settings failed: {_short(exc)}") from None
    return settings


def settings_of(study: Any) -> Settings:
    """A validated study's settings, as its workload's build receives them."""
    if study.settings is not None:
        return study.settings
    return Settings(study.data, study.model, study.eval, {s: frozenset() for s in SECTIONS},
                    study.replicates_seed, study.path)


def run_meta(study: Any) -> dict[str, Any]:
    """What a run records about its workload: its metrics (RunMetrics.as_meta: declarations,
    objective, train/test pair, so the run stays readable without the workload installed) and
    where the workload came from."""
    spec = study.spec
    if spec is None:
        return {}
    from ..results.metrics import RunMetrics

    return {**RunMetrics.of_spec(spec).as_meta(), "workload_origin": study.resolved.origin}


def build(study: Any) -> Workload:
    """Build the study's workload and check it against the contract (shapes, finite init).

    Raises DataError for unusable data (the workload's own message) and PresetError, naming the
    preset, its `workload` key and what was loaded, for anything else that goes wrong.
    """
    from ..system.plugin_guard import guarded
    from .checks import check_built
    from .registry import _short, quoted

    resolved = study.resolved or resolve(study.workload, study.path)
    loc = f"{where(study.path, 'workload')} = {quoted(study.workload)} ({resolved.origin})"
    try:
        with guarded(f"workload {resolved.origin}"):
            workload = resolved.spec.build(settings_of(study))
    except OptuiError:
        raise
    except Exception as exc:
        raise PresetError(f"{loc}: build(settings) failed: {_short(exc)}") from None
    check_built(workload, resolved.spec, loc)
    return workload
