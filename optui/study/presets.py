"""Study presets: TOML files validated into a Study before any device work starts.

A preset names one workload, its data and model settings, a budget, an eval schedule, the seed
replicates, named optimiser configs, optional search spaces and the comparisons to draw.
"""

from __future__ import annotations

import copy
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..optim import registry as optimizers
from .budget import BUDGET_KINDS, MAX_EPOCHS, Budget, parse_budget  # noqa: F401 (re-exported)
from ..errors import PresetError
from .search_space import SearchSpace, parse_search_section
from ..schema import Field, check_name, check_section, check_strings, check_value, where

MAX_PRESET_BYTES = 1_000_000
PIPE_WAIT_SECONDS = 10.0  # how long a preset given as a pipe may keep optui waiting for data
# The data sources that read data.path, per workload: anywhere else a path would be ignored.
# What a [[compare]] entry may draw besides the workload's declared metrics.
COMPARE_EXTRA = ("minibatch_loss", "train_test")

TOP_LEVEL = {"study", "workload", "description", "data", "model", "budget", "eval",
             "replicates", "engine", "configs", "search", "compare"}

REPLICATE_FIELDS = {
    "count": Field("int", 20, low=1, high=100_000),
    "seed": Field("int", 0, low=0, high=2**31 - 1),
}
ENGINE_FIELDS = {
    "strategy": Field("str", "auto", choices=("auto", "scan-vmap", "scan-sequential",
                                               "step-vmap", "step-sequential")),
    "checkpoint_seconds": Field("float", 10.0, low=0.0, high=86_400.0),
    "replicates_per_batch": Field("int", 0, low=0, high=1_000_000,
                                  help="replicates (or trials) trained together in one vmapped call; "
                                       "0 = all. Lower it if the device runs out of memory"),
    "executor": Field("str", "local", choices=("local", "ray"),
                      help="where work units train: this process, or a Ray cluster (like --ray)"),
}
# engine.devices is "all" or a count, so it is checked by hand (check_engine_devices).
MAX_DEVICES = 4096
COMPARE_FIELDS = {
    "title": Field("str", ""),
    "configs": Field("str"),  # checked by hand: a list of names
    "metric": Field("str", "minibatch_loss"),  # checked against the workload's metrics
    "labels": Field("str", ""),
}


@dataclass(frozen=True)
class EngineSettings:
    """The [engine] section: how a run executes (checked against ENGINE_FIELDS)."""

    strategy: str = "auto"
    checkpoint_seconds: float = 10.0
    replicates_per_batch: int = 0
    devices: str | int = "all"  # "all" local devices, or how many
    executor: str = "local"  # "local" | "ray"


def check_engine_devices(value: Any, file: str | None) -> str | int:
    """engine.devices: "all", or a whole number of devices from 1."""
    if value == "all":
        return "all"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or isinstance(value, float) and (
            not math.isfinite(value) or not value.is_integer()) or not 1 <= value <= MAX_DEVICES:
        raise PresetError(f"{where(file, 'engine.devices')} must be \"all\" or a whole number of devices from 1 "
                          f"to {MAX_DEVICES}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Config:
    name: str
    optimizer: str
    batch_size: int
    hyperparams: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer, "batch_size": self.batch_size,
                **optimizers.display(self.hyperparams)}


@dataclass(frozen=True)
class Compare:
    title: str
    configs: tuple[str, ...]
    metric: str
    labels: tuple[str, ...] = ()


@dataclass
class Study:
    name: str
    workload: str
    description: str
    data: dict[str, Any]
    model: dict[str, Any]
    budget: Budget
    eval: dict[str, Any]
    replicates_count: int
    replicates_seed: int
    engine: EngineSettings
    configs: dict[str, Config]
    search: dict[str, SearchSpace]
    compare: list[Compare]
    path: str | None = None
    text: str = ""
    overrides: list[str] = field(default_factory=list)
    # The workload the preset names, resolved (optui.workloads.Resolved): its spec and origin.
    resolved: Any = field(default=None, repr=False, compare=False)
    # Its [data], [model] and [eval] settings as its build receives them (optui.workloads.Settings).
    settings: Any = field(default=None, repr=False, compare=False)

    @property
    def eval_points(self) -> int:
        return int(self.eval["points"])

    @property
    def spec(self) -> Any:
        """The workload's WorkloadSpec: declared metrics, objective and settings."""
        return self.resolved.spec if self.resolved is not None else None


def parse_config(name: str, raw: Any, file: str | None, prefix: str = "configs") -> Config:
    key = f"{prefix}.{name}"
    spec = optimizers.resolve_table(raw, file, key)
    opt = raw["optimizer"]
    settings = optimizers.config_fields(spec)
    fields = {"optimizer": Field("str"), "batch_size": Field("int", low=1, high=10**9), **settings}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise PresetError(f"{where(file, key + '.' + unknown[0])}: {opt} has no such setting; "
                          f"allowed: batch_size, {', '.join(settings)}")
    values = check_section(raw, fields, file, key)
    hyper = optimizers.settle(spec, values, file, key)
    return Config(name, spec.name, int(values["batch_size"]), hyper)


def compare_metrics(metrics: Any) -> tuple[str, ...]:
    """What a [[compare]] entry may draw: the minibatch loss, each metric and train_test (the
    train/test pair together) when there is one. metrics: a RunMetrics, a WorkloadSpec, or None
    (a preset read without its workload: train and test losses inferred)."""
    from ..results.metrics import RunMetrics

    if not isinstance(metrics, RunMetrics):
        metrics = RunMetrics.of_spec(metrics) if metrics is not None else RunMetrics.of_preset(None)
    return metrics.plottable()


def parse_compare(raw: Any, configs: dict[str, Any], file: str | None, metrics: Any = None) -> list[Compare]:
    """[[compare]] entries checked against the configs and what the run's metrics can draw
    (metrics: a RunMetrics or a WorkloadSpec; see compare_metrics)."""
    return _parse_compare(raw, configs, file, metrics)


def _parse_compare(raw: Any, configs: dict[str, Any], file: str | None, spec: Any = None) -> list[Compare]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise PresetError(f"{where(file, 'compare')} must be an array of tables ([[compare]])")
    out = []
    for i, entry in enumerate(raw):
        key = f"compare[{i}]"
        if not isinstance(entry, dict):
            raise PresetError(f"{where(file, key)} must be a table")
        unknown = sorted(set(entry) - set(COMPARE_FIELDS))
        if unknown:
            raise PresetError(f"{where(file, key + '.' + unknown[0])}: unknown key; "
                              f"allowed: {', '.join(COMPARE_FIELDS)}")
        names = entry.get("configs")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise PresetError(f"{where(file, key + '.configs')} must be a non-empty list of config names")
        for n in names:
            if n not in configs:
                raise PresetError(f"{where(file, key + '.configs')} names unknown config {n!r}; "
                                  f"known: {', '.join(configs)}")
        labels = entry.get("labels", [])
        if labels and (not isinstance(labels, list) or len(labels) != len(names)
                       or not all(isinstance(x, str) for x in labels)):
            raise PresetError(f"{where(file, key + '.labels')} must list one label (a string) per "
                              f"config, got {labels!r}")
        metric_field = Field("str", "minibatch_loss", choices=compare_metrics(spec))
        metric = check_value(entry.get("metric", "minibatch_loss"), metric_field, file, key + ".metric")
        title = check_value(entry.get("title", " vs. ".join(names)), Field("str"), file, key + ".title")
        out.append(Compare(title, tuple(names), metric, tuple(labels)))
    return out


def _reject_non_finite(value: Any, file: str | None, key: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise PresetError(f"{where(file, key)} must be a finite number, got {value!r}")
    if isinstance(value, dict):
        for k, v in value.items():
            _reject_non_finite(v, file, f"{key}.{k}" if key else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _reject_non_finite(v, file, f"{key}[{i}]")


def study_from_dict(raw: dict[str, Any], file: str | None = None, text: str = "") -> Study:
    """Validate a parsed preset. Raises PresetError naming the file, key and what is allowed."""
    from .. import workloads  # local: keeps presets importable without the workload registry

    check_strings(raw, file)  # control characters and absurd nesting, before anything recurses
    _reject_non_finite(raw, file, "")
    unknown = sorted(set(raw) - TOP_LEVEL)
    if unknown:
        raise PresetError(f"{where(file, unknown[0])}: unknown key; allowed top-level keys: "
                          + ", ".join(sorted(TOP_LEVEL)))
    if "workload" not in raw:
        raise PresetError(f"{where(file, 'workload')} is required: an installed workload's name (one of "
                          f"{', '.join(workloads.providers()) or 'none installed'}), "
                          f"\"package.module:factory\" or \"./file.py:factory\"")
    workload = raw["workload"]
    resolved = workloads.resolve(workload, file)
    if "study" in raw:
        name = check_name(raw["study"], file, "study", "study")
    else:
        name = Path(file).stem if file else workload
        if any(c in name for c in "/\\:"):
            name = resolved.spec.name  # the default from a "module:factory" or file reference
        try:
            check_name(name, file, "study", "study")
        except PresetError as exc:
            raise PresetError(f"{exc}; the name comes from the file name: set study = \"...\" in the "
                              f"preset") from None
    description = check_value(raw.get("description", ""), Field("str"), file, "description")
    reps = check_section(raw.get("replicates"), REPLICATE_FIELDS, file, "replicates")
    settings = workloads.validate_settings(resolved.spec, raw, file, reps["seed"])
    _refuse_unread_settings(resolved.spec, raw, settings, file)
    budget = parse_budget(raw.get("budget"), file)
    raw_engine = raw.get("engine")
    devices = "all"
    if isinstance(raw_engine, dict) and "devices" in raw_engine:
        devices = check_engine_devices(raw_engine["devices"], file)
        raw_engine = {k: v for k, v in raw_engine.items() if k != "devices"}
    # devices is listed with the others when a key is unknown, and checked above.
    engine_values = check_section(raw_engine, {**ENGINE_FIELDS, "devices": Field("str", "all")}, file, "engine")
    engine_values.pop("devices")
    engine = EngineSettings(**engine_values, devices=devices)
    raw_configs = raw.get("configs")
    if not isinstance(raw_configs, dict) or not raw_configs:
        raise PresetError(f"{where(file, 'configs')} must hold at least one config, "
                          f"for example [configs.adam] optimizer = \"adam\", batch_size = 128")
    configs = {}
    for cname, craw in raw_configs.items():
        check_name(cname, file, "configs." + cname, "config")
        configs[cname] = parse_config(cname, craw, file)
    _refuse_colliding_names(list(configs), file, "configs", "config-{}.png and the report key {}")
    if isinstance(raw.get("search"), dict):
        for space in raw["search"]:  # "<space>-searched" becomes a config name
            check_name(space, file, "search." + space, "space", limit=48)
        _refuse_colliding_names(list(raw["search"]), file, "search", "search-{}.md")
    compare = _parse_compare(raw.get("compare"), configs, file, resolved.spec)
    search = parse_search_section(raw.get("search"), file, resolved.spec)
    return Study(
        name=name, workload=workload, description=description,
        data=dict(settings.data), model=dict(settings.model), budget=budget, eval=dict(settings.eval),
        replicates_count=reps["count"], replicates_seed=reps["seed"], engine=engine,
        configs=configs, search=search, compare=compare, path=file, text=text, resolved=resolved,
        settings=settings,
    )


def _refuse_colliding_names(names: list[str], file: str | None, section: str, files: str) -> None:
    """Two names that would write the same file (a-b, a_b and A+B all slug to a-b) are refused
    here, not found at export after the training."""
    seen: dict[str, str] = {}
    for name in names:
        key = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()  # as export.slug names files
        if key in seen:
            raise PresetError(f"{where(file, section + '.' + name)} and {section}.{seen[key]} would share "
                              f"the file name {files.format(key, key.replace('-', '_'))}; rename one")
        seen[key] = name


def _refuse_unread_settings(spec: Any, raw: dict[str, Any], settings: Any, file: str | None) -> None:
    """A setting the workload would not read with the others given (its Setting.read_when: a
    data.path with a data.source that reads no file) is a mistake, not a no-op."""
    for section, declared in spec.settings.items():
        given = raw.get(section) if isinstance(raw.get(section), dict) else {}
        values = getattr(settings, section)
        for name, setting in declared.items():
            if setting.read_when is None or not given.get(name):
                continue
            other, readers = setting.read_when
            if values.get(other) not in readers:
                raise PresetError(f"{where(file, f'{section}.{name}')} is read only when {section}.{other} is "
                                  f"{' or '.join(repr(r) for r in readers)}; {section}.{other} is "
                                  f"{values.get(other)!r}, which would ignore it (remove {section}.{name}, or "
                                  f"set {section}.{other})")


def parse_toml(text: str, file: str | None) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # message carries line and column
        raise PresetError(f"{file or '<preset>'}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib reads nested arrays and tables recursively
        raise PresetError(f"{file or '<preset>'}: nested too deeply to read; a preset is a few levels "
                          f"of tables") from None


def read_text(path: str | Path) -> str:
    p = Path(path)
    if not p.exists():
        raise PresetError(f"{p}: no such preset file")
    if p.is_dir():
        raise PresetError(f"{p}: is a folder, expected a .toml preset file")
    size = p.stat().st_size
    if size > MAX_PRESET_BYTES:
        raise PresetError(f"{p}: preset is {size:,} bytes; the limit is {MAX_PRESET_BYTES:,}")
    # Read at most one byte past the limit: a pipe or device reports size 0 and may never end.
    try:
        if p.is_file():
            with p.open("rb") as f:
                data = f.read(MAX_PRESET_BYTES + 1)
        else:  # a pipe (`<(...)` in a shell), a FIFO or a device: never wait on it for ever
            data = _read_stream(p, MAX_PRESET_BYTES + 1)
    except OSError as exc:
        raise PresetError(f"{p}: cannot read the preset: {exc.strerror or exc}") from None
    if len(data) > MAX_PRESET_BYTES:
        raise PresetError(f"{p}: preset is over {MAX_PRESET_BYTES:,} bytes, the limit")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise PresetError(f"{p}: not a UTF-8 text file") from None


def _read_stream(p: Path, limit: int) -> bytes:
    """Up to limit bytes of a pipe or device, giving up when nothing comes for PIPE_WAIT_SECONDS
    (a FIFO that nobody writes would otherwise block at open and read for ever)."""
    import select

    fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    try:
        parts, total = [], 0
        while total < limit:
            ready, _, _ = select.select([fd], [], [], PIPE_WAIT_SECONDS)
            if not ready:
                raise PresetError(f"{p}: nothing to read for {PIPE_WAIT_SECONDS:.0f} s (a pipe nobody "
                                  f"writes?); expected a .toml preset file")
            try:
                chunk = os.read(fd, min(65536, limit - total))
            except BlockingIOError:
                continue
            if not chunk:
                break
            parts.append(chunk)
            total += len(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


# A --set key longer than this is no preset's key: refused without echoing it whole.
MAX_KEY_CHARS = 200


def clip(text: str, limit: int = 80) -> str:
    """text, or its start and its length when longer than limit: a message never echoes a huge input."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def parse_override(item: str) -> tuple[list[str], Any]:
    """KEY=VALUE -> (dotted key parts, value). VALUE is read as TOML, else as a bare string."""
    if "=" not in item:
        raise PresetError(f"--set {clip(item)!r}: expected KEY=VALUE, for example replicates.count=5")
    key, value_text = item.split("=", 1)
    key = key.strip()
    if len(key) > MAX_KEY_CHARS:
        raise PresetError(f"--set {clip(key)!r}: the key is {len(key):,} characters long; a key is the dotted "
                          f"name of a preset setting (at most {MAX_KEY_CHARS} characters), for example data.path")
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise PresetError(f"--set {clip(item)!r}: the key must be dotted names, for example data.path")
    try:
        value = tomllib.loads(f"v = {value_text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = value_text.strip()
    except RecursionError:
        raise PresetError(f"--set {key}: the value is nested too deeply to read") from None
    return parts, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for item in overrides:
        parts, value = parse_override(item)
        node = raw
        for p in parts[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise PresetError(f"--set {clip(item)!r}: {p} is not a table")
            node = nxt
        node[parts[-1]] = value
    return raw


def _validate(raw: dict[str, Any], file: str | None, text: str, overrides: list[str] | None) -> Study:
    if not overrides:
        return study_from_dict(raw, file, text)
    merged = apply_overrides(copy.deepcopy(raw), overrides)
    try:
        study = study_from_dict(merged, file, text)
    except PresetError as exc:
        _blame_overrides(exc, raw, file, text, overrides)
        raise
    study.overrides = list(overrides)
    return study


def _blame_overrides(exc: PresetError, raw: dict[str, Any], file: str | None, text: str,
                     overrides: list[str]) -> None:
    """When the file alone is valid, the error came from --set: say so, or the user searches the
    file for a value that is not there."""
    try:
        study_from_dict(raw, file, text)
    except PresetError:
        return  # the file has an error of its own; the message names the file already
    msg = str(exc)
    named = [o for o in overrides if o.split("=", 1)[0].strip() in msg] or overrides
    raise PresetError(f"{msg} (from --set {', --set '.join(clip(o) for o in named)})") from None


def load(path: str | Path, overrides: list[str] | None = None) -> Study:
    """Read, override and validate a preset file."""
    text = read_text(path)
    return _validate(parse_toml(text, str(path)), str(path), text, overrides)


def loads(text: str, file: str | None = None, overrides: list[str] | None = None) -> Study:
    return _validate(parse_toml(text, file), file, text, overrides)
