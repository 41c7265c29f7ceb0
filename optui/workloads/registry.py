"""Finding workloads: installed entry points, `package.module:factory` and `./file.py:factory`.

A preset's `workload` is one of:
  "digits"                     the name of an entry point in the group `optui.workloads` (how
                               installed packages, optui's own TwNet and MNIST included, register)
  "package.module:factory"     an importable module and a factory in it
  "./my_workload.py:make"      a Python file (relative to the preset's folder, else to the
                               current folder: optui.file_refs) and a factory in it
The target is a WorkloadSpec, or a callable taking no arguments that returns one.

Every failure is a PresetError (exit 2) that names the preset, the key and what was tried, raised
before a run is created, so nothing reaches the store.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata as md
import importlib.util
import re
import sys
import tomllib
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PresetError
from ..system.plugin_guard import guarded
from ..results.metrics import Metric
from ..schema import Field, where
from .base import SECTIONS, WorkloadSpec

GROUP = "optui.workloads"
ATTR_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
MODULE_PATTERN = ATTR_PATTERN
# What a reference may look like, for messages.
FORMS = 'an installed workload\'s name, "package.module:factory" or "./file.py:factory"'


@dataclass(frozen=True)
class Provider:
    """One registration of a workload name in the entry-point group."""

    name: str
    value: str  # "package.module:attr"
    distribution: str  # "optui-digits 0.1.0", or where optui's own declarations were read

    def describe(self) -> str:
        return f"entry point {self.name} = {self.value} ({self.distribution})"


@dataclass(frozen=True)
class Resolved:
    """A workload reference resolved to its spec."""

    reference: str  # as the preset wrote it
    spec: WorkloadSpec
    origin: str  # what was loaded, from where: for messages and `optui workloads`


# -- the entry-point group ---------------------------------------------------------------------

def _source_tree_providers() -> list[Provider]:
    """optui's own registrations read from its pyproject.toml when optui runs from a source tree.

    Installed metadata is written at install time: a checkout run through PYTHONPATH, or installed
    before a workload was added, would otherwise miss entries its own pyproject.toml declares.
    """
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    if not pyproject.is_file():
        return []
    try:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return []
    if project.get("name") != "optui":
        return []
    group = project.get("entry-points", {}).get(GROUP, {})
    label = f"optui {project.get('version', '')} source tree, {pyproject}"
    return [Provider(n, v, label) for n, v in group.items() if isinstance(v, str)]


def providers() -> dict[str, list[Provider]]:
    """Every registered workload name with its providers (two or more: a conflict)."""
    own = _source_tree_providers()
    found: dict[str, list[Provider]] = {}
    for ep in md.entry_points(group=GROUP):
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else "?"
        if own and dist_name == "optui":
            continue  # the source tree's own declarations describe the code that runs
        version = dist.version if dist is not None else ""
        found.setdefault(ep.name, []).append(Provider(ep.name, ep.value, f"{dist_name} {version}".strip()))
    for p in own:
        found.setdefault(p.name, []).append(p)
    # The same registration seen twice (two metadata copies of one package) is one provider.
    return {n: list({(p.value, p.distribution.split(" ")[0]): p for p in ps}.values())
            for n, ps in sorted(found.items())}


def is_builtin(provider: Provider) -> bool:
    """optui's own registration (installed, or read from its source tree)."""
    return provider.distribution.split(" ")[0] == "optui"


def chosen(name: str, found: list[Provider]) -> tuple[Provider | None, list[Provider]]:
    """(the provider a name resolves to, the providers it shadows). Several packages claiming
    one of optui's own names: the built-in wins, as with optimisers, so shipped presets keep
    working; several others: None (ambiguous)."""
    if len(found) == 1:
        return found[0], []
    own = [p for p in found if is_builtin(p)]
    if len(own) == 1:
        return own[0], [p for p in found if p is not own[0]]
    return None, []


def shadowed() -> dict[str, list[Provider]]:
    """Registrations hidden by a built-in workload of the same name."""
    out = {}
    for name, found in providers().items():
        hidden = chosen(name, found)[1]
        if hidden:
            out[name] = hidden
    return out


# -- resolving a reference ---------------------------------------------------------------------

_cache: dict[tuple, Resolved] = {}


def resolve(reference: Any, preset: str | None = None, key: str = "workload") -> Resolved:
    """The workload a preset names; PresetError (naming preset, key and what was tried) if none."""
    loc = f"{where(preset, key)} = {quoted(reference)}" if isinstance(reference, str) else where(preset, key)
    if not isinstance(reference, str) or not reference.strip():
        installed = ", ".join(providers()) or "none"
        raise PresetError(f"{loc} must be {FORMS} (installed: {installed}), got {reference!r}")
    if ":" in reference:
        target, attr = reference.rsplit(":", 1)
        if not ATTR_PATTERN.match(attr):
            raise PresetError(f"{loc}: {attr!r} after the ':' is not a Python name; write {FORMS}")
        if _is_path(target):
            return _from_file(reference, target, attr, preset, loc)
        if not MODULE_PATTERN.match(target):
            raise PresetError(f"{loc}: {target!r} is neither a module name nor a .py file; write {FORMS}")
        return _from_module(reference, target, attr, loc)
    if _is_path(reference):
        raise PresetError(f"{loc}: name the factory in the file too, e.g. \"{reference}:make\"")
    return _from_entry_point(reference, loc)


def quoted(text: str) -> str:
    """A string as TOML writes it: "text" (as the user typed it in the preset)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _is_path(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target or target.startswith(".")


def _from_entry_point(name: str, loc: str) -> Resolved:
    found = providers()
    if name not in found:
        import difflib

        known = ", ".join(found) or "none"
        close = difflib.get_close_matches(name, list(found), n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        raise PresetError(f"{loc}: no installed workload has that name{hint} (entry point group {GROUP}: "
                          f"{known}); a preset may also name \"package.module:factory\" or "
                          f"\"./file.py:factory\"")
    provider, _ = chosen(name, found[name])
    if provider is None:
        both = "; ".join(p.describe() for p in found[name])
        raise PresetError(f"{loc}: several installed packages register that name ({both}); name the "
                          f"one you mean as \"package.module:factory\"")
    key = ("entry point", name, provider.value)
    if key in _cache:
        return _cache[key]
    target, _, attr = provider.value.partition(":")
    tried = provider.describe()
    module = _import(target.strip(), f"{loc}: {tried}")
    obj = _attribute(module, attr.strip(), f"{loc}: {tried}", target.strip()) if attr else module
    resolved = Resolved(name, _spec_from(obj, f"{loc}: {tried}"), tried)
    _cache[key] = resolved
    return resolved


def _from_module(reference: str, target: str, attr: str, loc: str) -> Resolved:
    key = ("module", reference)
    if key in _cache:
        return _cache[key]
    module = _import(target, loc)
    where_from = getattr(module, "__file__", None) or target
    origin = f"module {target} ({where_from}), {attr}"
    resolved = Resolved(reference, _spec_from(_attribute(module, attr, loc, target), f"{loc} ({origin})"), origin)
    _cache[key] = resolved
    return resolved


def _from_file(reference: str, target: str, attr: str, preset: str | None, loc: str) -> Resolved:
    from ..file_refs import candidates as lookup_order, preset_folder

    candidates = lookup_order(target, preset_folder(preset))
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        other = next((c for c in candidates if c.exists()), None)
        if other is not None:  # a FIFO, a folder, a device: there, but nothing to import
            raise PresetError(f"{loc}: {other} is {kind_of_file(other)}, not a Python file")
        tried = ", ".join(str(c) for c in dict.fromkeys(candidates))
        raise PresetError(f"{loc}: no such file; tried {tried}")
    if found.suffix != ".py":
        raise PresetError(f"{loc}: {found} is not a Python file (.py)")
    found = found.resolve()
    try:
        stamp = found.stat().st_mtime_ns
    except OSError as exc:
        raise PresetError(f"{loc}: cannot read {found}: {exc.strerror or exc}") from None
    key = ("file", str(found), stamp, attr)
    if key in _cache:
        return _cache[key]
    # A module name of its own per file (and version), so two workload files never collide.
    name = "optui_workload_" + hashlib.sha1(f"{found}:{stamp}".encode()).hexdigest()[:12]
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, found)
        if spec is None or spec.loader is None:
            raise PresetError(f"{loc}: cannot load {found} as Python")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pickling look modules up by name
        try:
            with guarded(f"{loc}: workload file {found}"):
                spec.loader.exec_module(module)
        except PresetError:
            del sys.modules[name]
            raise
        except BaseException as exc:
            del sys.modules[name]
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise PresetError(f"{loc}: running {found} failed: {_short(exc)}") from None
    origin = f"file {found}, {attr}"
    resolved = Resolved(reference, _spec_from(_attribute(module, attr, loc, str(found)), f"{loc} ({origin})"),
                        origin)
    _cache[key] = resolved
    return resolved


def kind_of_file(path: Path) -> str:
    """'a folder', 'a FIFO (named pipe)', ... for a path that exists but is no regular file."""
    import stat

    mode = path.stat().st_mode
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def _import(target: str, loc: str) -> Any:
    try:
        with guarded(f"{loc}: module {target}"):
            return importlib.import_module(target)
    except PresetError:
        raise
    except ModuleNotFoundError as exc:
        if exc.name and (target == exc.name or target.startswith(exc.name + ".")):
            raise PresetError(f"{loc}: no module named {exc.name!r} in this Python environment "
                              f"({sys.executable}); is its package installed? (for a file in the "
                              f"project folder write \"./path/file.py:factory\")") from None
        raise PresetError(f"{loc}: importing {target} failed: {_short(exc)}") from None
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise PresetError(f"{loc}: importing {target} failed: {_short(exc)}") from None


def _attribute(module: Any, attr: str, loc: str, display: str) -> Any:
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = sorted(n for n, v in vars(module).items()
                            if callable(v) and not n.startswith("_") and getattr(v, "__module__", "") == module.__name__)
            hint = f"; its functions: {', '.join(public[:12])}" if public else ""
            raise PresetError(f"{loc}: {display} has no {attr!r}{hint}")
        obj = getattr(obj, part)
    return obj


def _spec_from(obj: Any, loc: str) -> WorkloadSpec:
    """The spec an attribute gives: a WorkloadSpec, or a no-argument callable returning one."""
    if not isinstance(obj, WorkloadSpec):
        if not callable(obj):
            raise PresetError(f"{loc}: expected a WorkloadSpec or a function returning one, got "
                              f"{type(obj).__name__}")
        try:
            with guarded(f"{loc}: its factory"):
                obj = obj()
        except PresetError:
            raise
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise PresetError(f"{loc}: calling the factory failed: {_short(exc)}") from None
        if not isinstance(obj, WorkloadSpec):
            raise PresetError(f"{loc}: the factory returned {type(obj).__name__}, expected "
                              f"optui.workloads.WorkloadSpec")
    problem = spec_problem(obj)
    if problem:
        raise PresetError(f"{loc}: {problem}")
    return obj


def spec_problem(spec: WorkloadSpec) -> str | None:
    """What is wrong with a spec's declarations, or None."""
    if not isinstance(spec.name, str) or not spec.name:
        return "the spec's name must be a non-empty string"
    if not callable(spec.build):
        return f"workload {spec.name}: build must be a function (settings) -> Workload"
    if spec.check_settings is not None and not callable(spec.check_settings):
        return f"workload {spec.name}: check_settings must be a function or None"
    metrics = tuple(spec.metrics) if isinstance(spec.metrics, (tuple, list)) else None
    if not metrics or not all(isinstance(m, Metric) for m in metrics):
        return f"workload {spec.name}: metrics must be a non-empty tuple of optui.results.metrics.Metric"
    names = [m.name for m in metrics]
    if len(set(names)) != len(names):
        return f"workload {spec.name}: metric names repeat: {', '.join(names)}"
    if spec.objective not in names:
        return (f"workload {spec.name}: objective {spec.objective!r} is not one of its metrics "
                f"({', '.join(names)})")
    if not hasattr(spec.settings, "items"):
        return f"workload {spec.name}: settings must map sections to settings"
    for section, fields in spec.settings.items():
        if section not in SECTIONS:
            return f"workload {spec.name}: settings section {section!r} is not one of {', '.join(SECTIONS)}"
        if not hasattr(fields, "items"):
            return f"workload {spec.name}: settings[{section!r}] must map names to Setting"
        for fname, f in fields.items():
            if not isinstance(f, Field):
                return f"workload {spec.name}: setting {section}.{fname} must be a Setting, got {type(f).__name__}"
            if not isinstance(fname, str) or not ATTR_PATTERN.match(fname) or "." in fname:
                return f"workload {spec.name}: setting name {fname!r} in [{section}] is not a plain name"
            if f.kind not in ("int", "float", "str", "bool", "path"):
                return f"workload {spec.name}: setting {section}.{fname} has unknown type {f.kind!r}"
            if not f.required:
                try:
                    from ..schema import check_value

                    check_value(f.default, f, None, f"{section}.{fname}")
                except PresetError as exc:
                    return f"workload {spec.name}: the default of {exc}"
    return None


_OWN = str(Path(__file__).resolve().parents[1])


def _short(exc: BaseException) -> str:
    """'Type: message (file:line)' with the innermost frame of the plug-in's own code (not optui's,
    not the import machinery's): where its author should look."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith(("<", _OWN))]
    at = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}{at}".replace(": (", " (")


def clear_cache() -> None:
    """Forget resolved references (tests; a long session after reinstalling a plug-in)."""
    _cache.clear()
