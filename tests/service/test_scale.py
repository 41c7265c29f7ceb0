"""Scaling settings: [engine] devices and executor, the --ray option, and results that do not
depend on the device count (checked in a fresh interpreter with 4 forced host devices)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from optui.study import presets
from optui.cli.commands.ray_option import expand_bare_ray
from optui.errors import PresetError

from support.common import ROOT, cli_env, tiny_preset_text


def engine(text: str):
    return presets.loads(tiny_preset_text(extra="\n[engine]\n" + text), "p.toml").engine


def test_devices_default_to_all_and_take_a_count():
    assert engine("").devices == "all" and engine("").executor == "local"
    assert engine("devices = 2").devices == 2
    assert engine('devices = "all"\nexecutor = "ray"').executor == "ray"


@pytest.mark.parametrize("value", ["0", '"two"', "1.5", "true", "-1", "100000"])
def test_bad_devices_name_the_field_and_what_is_allowed(value):
    with pytest.raises(PresetError, match=r'p.toml: engine.devices must be "all" or a whole number'):
        engine(f"devices = {value}")


def test_an_unknown_engine_key_lists_devices_among_the_allowed():
    with pytest.raises(PresetError, match=r"engine.device: unknown key; allowed keys in \[engine\]: .*devices"):
        engine("device = 2")


def test_bad_executor_is_refused():
    with pytest.raises(PresetError, match=r"p.toml: engine.executor must be one of 'local', 'ray'"):
        engine('executor = "mesh"')


def test_more_devices_than_the_process_has_is_a_preset_error():
    from optui.service.studies import engine_placement

    study = presets.loads(tiny_preset_text(extra="\n[engine]\ndevices = 4096\n"), "p.toml")
    with pytest.raises(PresetError, match=r"p.toml: engine.devices = 4096, but this process has 1 cpu"):
        engine_placement(study)


@pytest.mark.parametrize("args, expected", [
    (["run", "p.toml", "--headless", "--ray"], ["run", "p.toml", "--headless", "--ray="]),
    (["run", "p.toml", "--ray", "--headless"], ["run", "p.toml", "--ray=", "--headless"]),
    (["run", "--ray", "p.toml"], ["run", "--ray=", "p.toml"]),
    (["run", "p.toml", "--ray", "auto"], ["run", "p.toml", "--ray", "auto"]),
    (["search", "p.toml", "--ray=ray://h:10001"], ["search", "p.toml", "--ray=ray://h:10001"]),
])
def test_a_bare_ray_option_takes_the_default_cluster(args, expected):
    assert expand_bare_ray(args) == expected


@pytest.mark.parametrize("command", ["run", "search"])
def test_ray_missing_exits_2_with_the_install_command(cli, write_preset, command):
    code = ("import sys\nsys.modules['ray'] = None\nfrom optui.cli import app\nsys.argv[0] = 'optui'\napp()\n")
    result = subprocess.run([sys.executable, "-c", code, command, str(write_preset()), "--headless", "--ray"],
                            cwd=cli.cwd, env=cli.env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "pip install 'optui[ray]'" in result.stderr
    assert not (cli.cwd / "runs").exists() or "run" not in result.stdout  # refused before any run


def test_results_do_not_depend_on_the_device_count(tmp_path, jax_cache_dir, shared_data):
    """TwNet and MNIST studies, a search, and runs resumed on another device count: 1 device vs 4."""
    env = cli_env(jax_cache_dir)
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"  # before JAX starts: a new process
    result = subprocess.run([sys.executable, str(ROOT / "tests" / "support" / "multidevice_check.py"), str(tmp_path / "runs")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.split("RESULT ", 1)[1])
    assert report["devices"] == 4
    # 3 members on 4 devices: one padding member, never reported; one member per device.
    assert report["sharded"] == {"members": 4, "devices": 4, "shard": 1, "reported": 3}
    for case in ("twnet", "twnet-sequential", "twnet-blocks", "mnist", "resume-all", "resume-2", "search"):
        assert report[case] < 1e-5, (case, report[case])
    for case in ("twnet", "mnist", "search"):
        assert report[case + ".device"] == "cpu:cpu x4 (ids 0-3)"
    assert report["resume-all.interrupted"] == report["resume-2.interrupted"] == "interrupted"


def test_the_header_and_runs_show_name_the_devices_used(cli, write_preset):
    preset = write_preset(replicates=2, iterations=8, points=2, configs={"sgd": {"optimizer": "sgd",
                                                                                 "learning_rate": 0.5,
                                                                                 "batch_size": 16}})
    result = cli("run", preset, "--headless", "--no-export")
    assert result.returncode == 0, result.stderr
    assert "on cpu:cpu x1 (ids 0) (scan+vmap)" in result.stdout
    shown = cli("runs", "show", "latest")
    assert "device cpu:cpu x1 (ids 0)" in shown.stdout, shown.stdout
