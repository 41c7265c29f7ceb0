"""Round 3, case 17 (minor): refusals that say what is wrong, briefly, and leave nothing behind.

A 60 KB `--set` key is not echoed whole; a FIFO named as a plug-in file is reported as a FIFO,
not "no such file"; a run refused before it begins (memory, `executor = "ray"` without Ray)
creates no runs/ folder. (A damaged store and a notebook read of a config not started yet are in
test_shared_store.py.)
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from optui.study import presets
from optui.errors import PresetError
from support.common import optui_command, tiny_preset_text


def test_case_17_a_huge_set_key_is_not_echoed_whole(cli, write_preset):
    preset = write_preset()
    refused = cli("run", preset, "--headless", "--set", "data." + "k" * 60_000 + "=1")
    assert refused.returncode == 2, refused.stderr
    assert len(refused.stderr) < 600 and "60,005 characters" in refused.stderr
    assert not (cli.cwd / "runs").exists()


@pytest.mark.parametrize("kind", ["workload", "optimizer"])
def test_case_17_a_fifo_plugin_file_is_reported_as_a_fifo(tmp_path, kind):
    fifo = tmp_path / "plug.py"
    os.mkfifo(fifo)
    if kind == "workload":
        text = f'workload = "{fifo}:make"\n[configs.a]\noptimizer = "sgd"\nlearning_rate = 0.1\nbatch_size = 4\n'
    else:
        text = tiny_preset_text(configs={"a": {"optimizer": f"{fifo}:make", "learning_rate": 0.1, "batch_size": 4}})
    with pytest.raises(PresetError) as caught:
        presets.loads(text, str(tmp_path / "p.toml"))
    assert "FIFO" in str(caught.value) and "no such file" not in str(caught.value)


def test_case_17_a_memory_refusal_creates_no_runs_folder(cli, write_preset):
    preset = write_preset()
    refused = cli("run", preset, "--headless", "--set", "replicates.count=100000",
                  "--set", "budget.iterations=100000000")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "replicates" in refused.stderr and "free" in refused.stderr
    assert not (cli.cwd / "runs").exists()


def test_case_17_executor_ray_without_ray_creates_no_runs_folder(cli, write_preset, tmp_path):
    preset = write_preset(extra='[engine]\nexecutor = "ray"\n')
    hide = tmp_path / "no-ray"
    (hide / "ray").mkdir(parents=True)
    (hide / "ray" / "__init__.py").write_text("raise ImportError('no ray here')\n")
    env = {**cli.env, "PYTHONPATH": f"{hide}{os.pathsep}{cli.env['PYTHONPATH']}"}
    refused = subprocess.run(optui_command() + ["run", str(preset), "--headless"], cwd=cli.cwd, env=env,
                             capture_output=True, text=True, timeout=240)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "pip install" in refused.stderr
    assert not (cli.cwd / "runs").exists()
