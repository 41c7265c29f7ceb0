"""The README's "Your own workload" walk-through works as written: its file, its preset, a run."""

from __future__ import annotations

import re

import numpy as np
import pytest

from optui.study import presets
from optui.service import StudyRunner
from optui.store import Store
from optui.workloads import registry

from support.common import ROOT

pytest.importorskip("sklearn", reason="the walk-through uses scikit-learn's digits")


def section_blocks(language: str) -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Your own workload", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, re.S)


def test_the_walk_through_is_short_and_runs(tmp_path, monkeypatch):
    (code,) = section_blocks("python")
    assert len(code.splitlines()) <= 42
    preset_text = section_blocks("toml")[0].replace("epochs = 5", "iterations = 24")
    (tmp_path / "my_workload.py").write_text(code, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    registry.clear_cache()
    study = presets.loads(preset_text, "mine.toml", ["eval.points=3", "replicates.count=2"])
    assert study.spec.objective == "test_accuracy" and study.model == {"hidden": 128}
    store = Store.open(tmp_path / "runs")
    run = store.load_run(StudyRunner(study, store).run())
    unit = run.units["adam"]
    assert unit.minibatch_loss.shape == (2, 24) and np.isfinite(unit.minibatch_loss).all()
    acc = unit.eval["test_accuracy"]
    assert acc.shape == (2, 4) and (acc[:, -1] > acc[:, 0]).all()  # it learns
