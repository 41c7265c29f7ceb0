"""Round 3, case 16: a package registering workload `twnet` does not break the shipped presets:
the built-in wins, and the package's registration is listed as shadowed (as optimisers are)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from optui.study import presets
from optui.workloads import registry
from support.common import ROOT, tiny_preset_text


def fake_package(folder: Path) -> Path:
    """An installed distribution `fake-twnet` whose entry point claims the name twnet."""
    info = folder / "fake_twnet-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-twnet\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[optui.workloads]\ntwnet = fake_twnet:make\n")
    (folder / "fake_twnet.py").write_text("raise RuntimeError('the fake twnet must never be imported')\n")
    return folder


def test_case_16_a_package_claiming_twnet_leaves_the_builtin_in_place(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(fake_package(tmp_path / "site")))
    registry.clear_cache()
    try:
        study = presets.loads(tiny_preset_text(), "tiny.toml")
        assert study.resolved.spec.name == "twnet" and "optui" in study.resolved.origin
        hidden = registry.shadowed()["twnet"]
        assert [p.distribution for p in hidden] == ["fake-twnet 0.1"]
    finally:
        registry.clear_cache()


def test_case_16_the_shadowed_registration_is_listed(cli, tmp_path):
    site = fake_package(tmp_path / "site")
    env = {**cli.env, "PYTHONPATH": f"{ROOT}{os.pathsep}{site}"}
    listed = subprocess.run(
        [sys.executable, "-m", "optui.cli", "workloads", "--json"], cwd=cli.cwd, env=env,
        capture_output=True, text=True, timeout=240)
    assert listed.returncode == 0, listed.stderr
    entries = [e for e in json.loads(listed.stdout) if e["name"] == "twnet"]
    assert any(e.get("shadowed") and "fake-twnet" in e["origin"] and "shadowed by the built-in" in e["error"]
               for e in entries)
    assert any(not e.get("error") and "optui" in e["origin"] for e in entries)
    run = subprocess.run(
        [sys.executable, "-m", "optui.cli", "presets", "validate", str(ROOT / "presets" / "twnet.toml")],
        cwd=cli.cwd, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
