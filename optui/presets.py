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

from . import optimizers
from .errors import PresetError
from .schema import Field, check_name, check_section, check_strings, check_value, where

MAX_PRESET_BYTES = 1_000_000
MAX_EPOCHS = 1_000_000  # keeps a run's step count (epochs x batches per epoch) a sane integer
MAX_STEPS = 2**31 - 1  # steps are int32 on the device
PIPE_WAIT_SECONDS = 10.0  # how long a preset given as a pipe may keep optui waiting for data
# The data sources that read data.path, per workload: anywhere else a path would be ignored.
PATH_SOURCES = {"twnet": ("json",), "mnist": ("idx",)}
BUDGET_KINDS = ("iterations", "epochs", "examples")
METRICS = ("minibatch_loss", "train_loss", "test_loss", "train_test")

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
}
COMPARE_FIELDS = {
    "title": Field("str", ""),
    "configs": Field("str"),  # checked by hand: a list of names
    "metric": Field("str", "minibatch_loss", choices=METRICS),
    "labels": Field("str", ""),
}


@dataclass(frozen=True)
class Budget:
    kind: str  # iterations | epochs | examples
    value: float

    def steps(self, batch_size: int, n_train: int) -> int:
        """Training steps for a batch size; epochs and examples keep the data seen equal."""
        if self.kind == "iterations":
            steps = int(self.value)
        elif self.kind == "epochs":
            steps = max(1, int(self.value * (n_train // batch_size)))
        else:
            steps = max(1, int(self.value) // batch_size)
        if steps > MAX_STEPS:
            raise PresetError(f"budget.{self.kind} = {self.describe()} gives {steps:,} steps at batch size "
                              f"{batch_size:,}; a run has at most {MAX_STEPS:,} steps")
        return steps

    def describe(self) -> str:
        v = int(self.value) if float(self.value).is_integer() else self.value
        return f"{v:,} {self.kind}" if isinstance(v, int) else f"{v} {self.kind}"


@dataclass(frozen=True)
class Config:
    name: str
    optimizer: str
    batch_size: int
    hyperparams: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer, "batch_size": self.batch_size, **self.hyperparams}


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
    engine: dict[str, Any]
    configs: dict[str, Config]
    search: dict[str, Any]
    compare: list[Compare]
    path: str | None = None
    text: str = ""
    raw: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)

    @property
    def eval_points(self) -> int:
        return int(self.eval["points"])


def parse_budget(raw: Any, file: str | None, prefix: str = "budget") -> Budget:
    if not isinstance(raw, dict) or not raw:
        raise PresetError(f"{where(file, prefix)} must be a table with one of: {', '.join(BUDGET_KINDS)}")
    unknown = sorted(set(raw) - set(BUDGET_KINDS))
    if unknown:
        raise PresetError(f"{where(file, prefix + '.' + unknown[0])}: unknown key; "
                          f"use exactly one of {', '.join(BUDGET_KINDS)}")
    if len(raw) != 1:
        raise PresetError(f"{where(file, prefix)} must set exactly one of {', '.join(BUDGET_KINDS)}, "
                          f"got {', '.join(sorted(raw))}")
    (kind, value), = raw.items()
    spec = (Field("float", low=0.0, high=MAX_EPOCHS, low_open=True) if kind == "epochs"
            else Field("int", low=1, high=MAX_STEPS) if kind == "iterations" else Field("int", low=1, high=10**15))
    return Budget(kind, check_value(value, spec, file, f"{prefix}.{kind}"))


def parse_config(name: str, raw: Any, file: str | None, prefix: str = "configs") -> Config:
    key = f"{prefix}.{name}"
    if not isinstance(raw, dict):
        raise PresetError(f"{where(file, key)} must be a table, got {raw!r}")
    opt = raw.get("optimizer")
    if opt is None:
        raise PresetError(f"{where(file, key + '.optimizer')} is required (one of {optimizers.known()})")
    if not isinstance(opt, str) or opt not in optimizers.OPTIMIZERS:  # a list is unhashable
        raise PresetError(f"{where(file, key + '.optimizer')} must be one of {optimizers.known()}, got {opt!r}")
    spec = optimizers.OPTIMIZERS[opt]
    fields = {"optimizer": Field("str"), "batch_size": Field("int", low=1, high=10**9), **spec.hyperparams}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise PresetError(f"{where(file, key + '.' + unknown[0])}: {opt} has no such setting; "
                          f"allowed: batch_size, {', '.join(spec.hyperparams)}")
    values = check_section(raw, fields, file, key)
    hyper = {k: float(values[k]) for k in spec.hyperparams}
    return Config(name, opt, int(values["batch_size"]), hyper)


def _parse_compare(raw: Any, configs: dict[str, Config], file: str | None) -> list[Compare]:
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
        metric = check_value(entry.get("metric", "minibatch_loss"), COMPARE_FIELDS["metric"], file,
                             key + ".metric")
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
    from . import workloads  # local: keeps presets importable without the workload registry

    check_strings(raw, file)  # control characters and absurd nesting, before anything recurses
    _reject_non_finite(raw, file, "")
    unknown = sorted(set(raw) - TOP_LEVEL)
    if unknown:
        raise PresetError(f"{where(file, unknown[0])}: unknown key; allowed top-level keys: "
                          + ", ".join(sorted(TOP_LEVEL)))
    if "workload" not in raw:
        raise PresetError(f"{where(file, 'workload')} is required (one of {', '.join(workloads.WORKLOADS)})")
    workload = raw["workload"]
    if not isinstance(workload, str):
        raise PresetError(f"{where(file, 'workload')} must be one of "
                          f"{', '.join(repr(w) for w in workloads.WORKLOADS)}, got {workload!r}")
    mod = workloads.module(workload, file)
    if "study" in raw:
        name = check_name(raw["study"], file, "study", "study")
    else:
        name = Path(file).stem if file else workload
        try:
            check_name(name, file, "study", "study")
        except PresetError as exc:
            raise PresetError(f"{exc}; the name comes from the file name: set study = \"...\" in the "
                              f"preset") from None
    description = check_value(raw.get("description", ""), Field("str"), file, "description")
    settings = mod.validate_settings(raw, file)
    _refuse_unused_path(workload, raw, settings, file)
    budget = parse_budget(raw.get("budget"), file)
    reps = check_section(raw.get("replicates"), REPLICATE_FIELDS, file, "replicates")
    engine = check_section(raw.get("engine"), ENGINE_FIELDS, file, "engine")
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
    compare = _parse_compare(raw.get("compare"), configs, file)
    search = _parse_search(raw.get("search"), file, budget)
    return Study(
        name=name, workload=workload, description=description,
        data=settings["data"], model=settings["model"], budget=budget, eval=settings["eval"],
        replicates_count=reps["count"], replicates_seed=reps["seed"], engine=engine,
        configs=configs, search=search, compare=compare, path=file, text=text, raw=raw,
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


def _refuse_unused_path(workload: str, raw: dict[str, Any], settings: dict[str, Any], file: str | None) -> None:
    """A data.path that the chosen data source would not read is a mistake, not a no-op."""
    data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
    readers = PATH_SOURCES.get(workload)
    source = settings["data"].get("source")
    if readers is not None and data.get("path") and source not in readers:
        raise PresetError(f"{where(file, 'data.path')} is read only when data.source is "
                          f"{' or '.join(repr(r) for r in readers)}; data.source is {source!r}, which would "
                          f"ignore it (remove data.path, or set data.source)")


def _parse_search(raw: Any, file: str | None, budget: Budget) -> dict[str, Any]:
    from .search_space import parse_search_section

    return parse_search_section(raw, file, budget)


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


def parse_override(item: str) -> tuple[list[str], Any]:
    """KEY=VALUE -> (dotted key parts, value). VALUE is read as TOML, else as a bare string."""
    if "=" not in item:
        raise PresetError(f"--set {item!r}: expected KEY=VALUE, for example replicates.count=5")
    key, value_text = item.split("=", 1)
    key = key.strip()
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise PresetError(f"--set {item!r}: the key must be dotted names, for example data.path")
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
                raise PresetError(f"--set {item!r}: {p} is not a table")
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
    raise PresetError(f"{msg} (from --set {', --set '.join(named)})") from None


def load(path: str | Path, overrides: list[str] | None = None) -> Study:
    """Read, override and validate a preset file."""
    text = read_text(path)
    return _validate(parse_toml(text, str(path)), str(path), text, overrides)


def loads(text: str, file: str | None = None, overrides: list[str] | None = None) -> Study:
    return _validate(parse_toml(text, file), file, text, overrides)
