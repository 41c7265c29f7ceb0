"""The engine trains members and knows nothing above it: no study, store, search, service, CLI or UI.

Checked twice: statically (every import statement in optui/engine/, function-level ones too)
and by importing every engine module in a fresh interpreter and looking at sys.modules.
"""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import optui.engine

ROOT = Path(__file__).resolve().parents[1]
ABOVE_ENGINE = ("optui.store", "optui.study", "optui.cli", "optui.ui", "optui.service", "optui.search",
                "optui.export", "optui.notebook")


def imported_names(path: Path, module_name: str) -> set[str]:
    """Every module (and module.name) the file imports, relative imports resolved."""
    package = module_name.split(".")[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                module = ".".join(package[:len(package) - node.level + 1] + ([module] if module else []))
            names.add(module)
            names |= {f"{module}.{a.name}" for a in node.names}
    return names


def offenders(names: set[str]) -> list[str]:
    return sorted(n for n in names if any(n == a or n.startswith(a + ".") for a in ABOVE_ENGINE))


def test_engine_source_imports_nothing_above_it():
    engine_dir = Path(optui.engine.__file__).parent
    found = {p.name: offenders(imported_names(p, "optui.engine." + p.stem)) for p in engine_dir.glob("*.py")}
    assert len(found) >= 5
    assert {k: v for k, v in found.items() if v} == {}


def test_the_static_check_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from ..store import Store\n    import optui.ui.app\n")
    assert offenders(imported_names(bad, "optui.engine.bad")) == ["optui.store", "optui.store.Store",
                                                                  "optui.ui.app"]


def test_importing_the_engine_loads_nothing_above_it():
    modules = sorted(m.name for m in pkgutil.walk_packages(optui.engine.__path__, "optui.engine."))
    code = (f"import importlib, json, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            f"print(json.dumps(sorted(m for m in sys.modules if m.startswith('optui.'))))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=240,
                          env={"PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    loaded = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert "optui.engine.executor" in loaded
    assert offenders(loaded) == []


def test_the_service_reaches_the_engine_only_through_its_public_api():
    """optui.engine's __init__ is its API: the service imports `optui.engine`, never a module inside."""
    service_dir = ROOT / "optui" / "service"
    deep = {p.name: sorted(n for n in imported_names(p, "optui.service." + p.stem)
                           if n.startswith("optui.engine.") and n.removeprefix("optui.engine.") not in
                           optui.engine.__all__)
            for p in service_dir.glob("*.py")}
    assert len(deep) >= 5
    assert {k: v for k, v in deep.items() if v} == {}
