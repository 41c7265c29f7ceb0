"""Only optui.ui may import textual or plotext: the core, the CLI and headless runs stay free of
them (and `optui --help` stays quick). Each check runs in a fresh interpreter."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import optui

ROOT = Path(__file__).resolve().parents[1]
UI_ONLY = ("textual", "plotext", "textual_plotext")


def non_ui_modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(optui.__path__, "optui.")]
    # `__main__` modules run the command line when imported: `python -m optui.cli` is checked below.
    return sorted(n for n in names if n != "optui.ui" and not n.startswith("optui.ui.")
                  and not n.endswith(".__main__"))


def run_python(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=240, env={"PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu",
                                            "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_every_non_ui_module_imports_without_textual_or_plotext():
    modules = non_ui_modules()
    assert "optui.cli" in modules and "optui.store" in modules and "optui.study.presets" in modules
    # One interpreter imports them in turn, checking after each, so an offender is named exactly.
    code = f"""
import importlib, json, sys
offenders, skipped = {{}}, {{}}
for name in {modules!r}:
    try:
        importlib.import_module(name)
    except ImportError as exc:  # an optional dependency (e.g. TFDS) missing here
        skipped[name] = str(exc)
        continue
    loaded = [m for m in {UI_ONLY!r} if m in sys.modules]
    if loaded:
        offenders[name] = loaded
        break
print(json.dumps({{"offenders": offenders, "skipped": skipped}}))
"""
    result = run_python(code)
    assert result["offenders"] == {}, f"imports UI packages: {result['offenders']}"
    assert len(result["skipped"]) < len(modules) // 2, result["skipped"]


def test_ui_modules_are_the_ones_that_do_import_textual():
    """The check above can fail: importing the session does pull textual and plotext in."""
    result = run_python("import json, sys, optui.ui.app; "
                        f"print(json.dumps({{m: m in sys.modules for m in {UI_ONLY!r}}}))")
    assert all(result.values()), result


def test_help_imports_no_ui_packages():
    code = f"""
import json, sys, contextlib, io
sys.argv = ["optui", "--help"]
from optui.cli import app
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        app()
    except SystemExit:
        pass
print(json.dumps({{"loaded": [m for m in {UI_ONLY!r} if m in sys.modules], "help": out.getvalue()}}))
"""
    result = run_python(code)
    assert "Usage" in result["help"] and "ui" in result["help"]
    assert result["loaded"] == []
