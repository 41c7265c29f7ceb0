"""Round 3, case 3: plug-ins run in a guarded context.

A plug-in that changes JAX's global configuration when it loads (here jax_enable_x64, which
would change the built-in SGD's and Adam's numbers) is refused, naming the plug-in and the
setting, and the setting is put back. One that calls os.chdir at import does not move the store
or the exports: paths are resolved before plug-ins load and the working folder is put back.
"""

from __future__ import annotations

import os

import jax
import pytest

from optui.study import presets
from optui.errors import PresetError
from support.common import tiny_preset_text
from support.plugin_sources import TOY

X64_OPTIMIZER = '''
import jax
import optax
jax.config.update("jax_enable_x64", True)

def make(hp):
    return optax.sgd(hp["learning_rate"])

make.hyperparams = {"learning_rate": {"default": 0.1, "low": 0, "low_open": True}}
'''

CHDIR_OPTIMIZER = '''
import os
import optax
os.makedirs("elsewhere", exist_ok=True)
os.chdir("elsewhere")

def make(hp):
    return optax.sgd(hp["learning_rate"])

make.hyperparams = {"learning_rate": {"default": 0.1, "low": 0, "low_open": True}}
'''


def test_case_3_a_workload_plugin_enabling_x64_is_refused_and_undone(tmp_path):
    (tmp_path / "x64work.py").write_text(TOY.replace("import jax\n", "import jax\njax.config.update('jax_enable_x64', True)\n", 1))
    preset = tmp_path / "p.toml"
    preset.write_text('workload = "./x64work.py:make"\n[budget]\niterations = 4\n[configs.a]\n'
                      'optimizer = "sgd"\nlearning_rate = 0.1\nbatch_size = 4\n')
    with pytest.raises(PresetError) as caught:
        presets.load(preset)
    message = str(caught.value)
    assert "x64work.py" in message and "jax_enable_x64" in message and "refused" in message
    assert jax.config.jax_enable_x64 is False  # put back: the rest of the process is unchanged


def test_case_3_an_optimizer_plugin_enabling_x64_is_refused(tmp_path):
    (tmp_path / "x64opt.py").write_text(X64_OPTIMIZER)
    text = tiny_preset_text(configs={"mine": {"optimizer": "./x64opt.py:make", "learning_rate": 0.5,
                                              "batch_size": 16}})
    with pytest.raises(PresetError, match=r"configs\.mine\.optimizer.*x64opt\.py.*jax_enable_x64"):
        presets.loads(text, str(tmp_path / "tiny.toml"))
    assert jax.config.jax_enable_x64 is False


def test_case_3_a_plugin_changing_folder_at_import_moves_no_store_or_export(cli):
    (cli.cwd / "chdiropt.py").write_text(CHDIR_OPTIMIZER)
    preset = cli.cwd / "tiny.toml"
    preset.write_text(tiny_preset_text(study="moved", iterations=8, points=2, replicates=2,
                                       configs={"mine": {"optimizer": "./chdiropt.py:make",
                                                         "learning_rate": 0.5, "batch_size": 16}}))
    done = cli("run", "tiny.toml", "--headless")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "changed the working folder" in done.stderr
    assert (cli.cwd / "runs" / "optui.sqlite").is_file()
    assert (cli.cwd / "exports" / "moved").is_dir()
    elsewhere = cli.cwd / "elsewhere"
    assert not (elsewhere / "runs").exists() and not (elsewhere / "exports").exists()
    assert os.getcwd() != str(elsewhere)
