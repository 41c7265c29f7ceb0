"""Your own optimiser: found through an entry point (in a subprocess, as an installed package
would be), through `module:factory` and through `./file.py:factory`; its declarations checked;
bad references refused with exit code 2, naming the preset, the config and what was tried."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optui.optim import registry as optimizers
from optui.study import presets
from optui.errors import PresetError

from support.common import ROOT, cli_env, optui_command, tiny_preset_text

EXAMPLE = ROOT / "examples" / "optui-qhm"

QHM_TEXT = (EXAMPLE / "optui_qhm" / "qhm.py").read_text(encoding="utf-8")


def preset_with(tmp_path: Path, optimizer: str, **settings) -> Path:
    cfg = {"optimizer": optimizer, "batch_size": 8, **settings}
    path = tmp_path / "study.toml"
    path.write_text(tiny_preset_text(configs={"mine": cfg, "sgd": {"optimizer": "sgd", "learning_rate": 0.1,
                                                                   "batch_size": 8}}), encoding="utf-8")
    return path


def refusal(path: Path) -> str:
    with pytest.raises(PresetError) as err:
        presets.load(path)
    message = str(err.value)
    assert message.startswith(f"{path}: configs.mine.optimizer"), message
    return message


def qhm_by_hand(lr: float, beta: float, nu: float, steps: int) -> np.ndarray:
    """QHM on the quadratic |p - t|^2 from zero, written out in numpy."""
    target = np.array([1.0, -2.0, 0.5])
    p, buf = np.zeros(3), np.zeros(3)
    for _ in range(steps):
        g = 2 * (p - target)
        buf = beta * buf + (1 - beta) * g
        p = p - lr * ((1 - nu) * g + nu * buf)
    return p


def run_quadratic(name: str, hp: dict, steps: int) -> np.ndarray:
    target = jnp.array([1.0, -2.0, 0.5])

    @jax.jit
    def train(hp):
        tx = optimizers.build(name, hp)
        p = jnp.zeros(3)
        s = tx.init(p)
        for _ in range(steps):
            u, s = tx.update(jax.grad(lambda q: jnp.sum((q - target) ** 2))(p), s, p, value=0.0)
            p = optax.apply_updates(p, u)
        return p

    return np.asarray(train({k: jnp.float32(v) for k, v in hp.items()}))


# --- references ----------------------------------------------------------------------------------

def test_a_file_reference_relative_to_the_preset(tmp_path):
    (tmp_path / "opts").mkdir()
    (tmp_path / "opts" / "my_qhm.py").write_text(QHM_TEXT, encoding="utf-8")
    path = preset_with(tmp_path, "./opts/my_qhm.py:qhm", learning_rate=0.1, nu=0.5)
    study = presets.load(path)
    cfg = study.configs["mine"]
    assert cfg.optimizer == f"{(tmp_path / 'opts' / 'my_qhm.py').resolve()}:qhm"
    assert cfg.hyperparams == {"learning_rate": 0.1, "beta": 0.999, "nu": 0.5}
    got = run_quadratic(cfg.optimizer, {"learning_rate": 0.1, "beta": 0.9, "nu": 0.5}, 6)
    np.testing.assert_allclose(got, qhm_by_hand(0.1, 0.9, 0.5, 6), rtol=1e-5)


def test_a_module_reference(tmp_path, monkeypatch):
    pkg = tmp_path / "site" / "my_optimisers_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("", encoding="utf-8")
    (pkg / "quasi.py").write_text(QHM_TEXT, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    path = preset_with(tmp_path, "my_optimisers_pkg.quasi:qhm", learning_rate=0.2)
    study = presets.load(path)
    assert study.configs["mine"].optimizer == "my_optimisers_pkg.quasi:qhm"
    assert optimizers.lookup("my_optimisers_pkg.quasi:qhm").summary.startswith("QHM")
    # A search space takes the same reference and its declared ranges.
    text = path.read_text() + textwrap.dedent("""
        [search.q]
        optimizer = "my_optimisers_pkg.quasi:qhm"
        trials = 3
        learning_rate = { low = 0.01, high = 1.0, scale = "log" }
        nu = { low = 0.0, high = 1.0 }
        batch_size = 8
        """)
    path.write_text(text)
    space = presets.load(path).search["q"]
    trial = space.sample(0)
    assert set(trial) == {"batch_size", "learning_rate", "beta", "nu"} and trial["beta"] == 0.999


def test_the_example_preset_validates_and_its_plugin_is_qhm():
    study = presets.load(EXAMPLE / "qhm-study.toml")
    assert set(study.configs) == {"sgd", "adam", "qhm"}
    qhm = study.configs["qhm"]
    assert qhm.optimizer.endswith("optui_qhm/qhm.py:qhm")
    assert study.search["qhm"].optimizer == qhm.optimizer
    got = run_quadratic(qhm.optimizer, {"learning_rate": 0.05, "beta": 0.999, "nu": 0.7}, 8)
    np.testing.assert_allclose(got, qhm_by_hand(0.05, 0.999, 0.7, 8), rtol=1e-5)


def test_a_plugin_takes_schedules_and_chain_elements(tmp_path):
    (tmp_path / "my_qhm.py").write_text(QHM_TEXT, encoding="utf-8")
    path = preset_with(tmp_path, "my_qhm.py:qhm", learning_rate=0.1, schedule="cosine", clip_norm=1.0,
                       weight_decay=0.01)
    cfg = presets.load(path).configs["mine"]
    assert cfg.hyperparams["schedule"] == 1.0 and cfg.hyperparams["clip_norm"] == 1.0
    assert cfg.as_dict()["schedule"] == "cosine"


# --- the contract, checked when the preset is validated ------------------------------------------

BAD_PLUGINS = {
    "not_callable": ("make = 3\n", "is a int; expected a factory function"),
    "no_hyperparams": ("import optax\ndef make(hp):\n    return optax.sgd(hp['learning_rate'])\n",
                       "needs a `hyperparams` attribute"),
    "default_out_of_range": ("import optax\ndef make(hp):\n    return optax.sgd(hp['learning_rate'])\n"
                             "make.hyperparams = {'learning_rate': {'default': -1.0, 'low': 0}}\n",
                             "hyperparams['learning_rate'].default must be a number in [0, inf), got -1.0"),
    "unknown_declaration_key": ("import optax\ndef make(hp):\n    return optax.sgd(hp['lr'])\n"
                                "make.hyperparams = {'lr': {'default': 0.1, 'minimum': 0}}\n",
                                "has unknown key 'minimum'"),
    "reserved_name": ("import optax\ndef make(hp):\n    return optax.sgd(hp['batch_size'])\n"
                      "make.hyperparams = {'batch_size': {'default': 0.1}}\n", "'batch_size' is reserved"),
    "python_if_on_a_hyperparameter": (
        "import optax\ndef make(hp):\n    if hp['lr'] > 1:\n        return optax.adam(hp['lr'])\n"
        "    return optax.sgd(hp['lr'])\nmake.hyperparams = {'lr': {'default': 0.1, 'low': 0}}\n",
        "uses a hyperparameter's value in Python"),
    "reads_an_undeclared_hyperparameter": (
        "import optax\ndef make(hp):\n    return optax.sgd(hp['learning_rate'], momentum=hp['momentum'])\n"
        "make.hyperparams = {'learning_rate': {'default': 0.1, 'low': 0}}\n", "KeyError: 'momentum'"),
    "returns_something_else": ("def make(hp):\n    return 42\nmake.hyperparams = {}\n",
                               "not an optax.GradientTransformation"),
    "typed_prng_key_in_state": (
        "import optax\ndef make(hp):\n    return optax.noisy_sgd(hp['lr'], key=0)\n"
        "make.hyperparams = {'lr': {'default': 0.1, 'low': 0}}\n", "its state holds a typed PRNG key"),
    "raises_on_import": ("raise RuntimeError('no GPU here')\n", "RuntimeError: no GPU here"),
    "syntax_error": ("def make(hp)\n", "SyntaxError"),
}


@pytest.mark.parametrize("case", list(BAD_PLUGINS))
def test_a_broken_plugin_is_refused_with_the_reason(tmp_path, case):
    source, expected = BAD_PLUGINS[case]
    (tmp_path / f"{case}.py").write_text(source, encoding="utf-8")
    message = refusal(preset_with(tmp_path, f"./{case}.py:make"))
    assert expected in message, message


@pytest.mark.parametrize("reference, expected", [
    ("./missing.py:make", "no such file: tried "),
    ("no_such_package_xyz.opt:make", "tried importing module 'no_such_package_xyz.opt': ModuleNotFoundError"),
    ("optui.optim.registry:no_such_factory", "module 'optui.optim.registry' has no attribute 'no_such_factory'"),
    ("qhmm", "no entry point 'qhmm' in group 'optui.optimizers'"),
    ("optui.optimizers:", "expected 'package.module:factory' or './file.py:factory'"),
])
def test_a_bad_reference_says_what_was_tried(tmp_path, reference, expected):
    message = refusal(preset_with(tmp_path, reference))
    assert expected in message, message
    if reference.startswith("./"):
        assert str(tmp_path / "missing.py") in message  # the preset's folder, then the current one


def test_bad_references_exit_2_from_the_cli(tmp_path):
    path = preset_with(tmp_path, "./missing_opt.py:make")
    env = cli_env(None)
    for args in (["presets", "validate", str(path)], ["run", str(path), "--headless"]):
        result = subprocess.run(optui_command() + args, cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 2, result.stderr
        assert f"{path}: configs.mine.optimizer: cannot load optimizer './missing_opt.py:make'" in result.stderr
        assert "no such file: tried" in result.stderr
        assert "Traceback" not in result.stderr


# --- entry points, as an installed package declares them ------------------------------------------

def fake_install(site: Path) -> None:
    """What pip writes for the example package: its dist-info with entry_points.txt. The package
    itself is imported from examples/ (on PYTHONPATH)."""
    info = site / "optui_qhm-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: optui-qhm\nVersion: 0.1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[optui.optimizers]\nqhm = optui_qhm:qhm\n", encoding="utf-8")


def plugin_env(site: Path) -> dict[str, str]:
    env = cli_env(None)
    env["PYTHONPATH"] = f"{site}:{EXAMPLE}:{env['PYTHONPATH']}"
    return env


def test_an_entry_point_is_found_in_a_fresh_process(tmp_path):
    site = tmp_path / "site"
    fake_install(site)
    env = plugin_env(site)
    path = preset_with(tmp_path, "qhm", learning_rate=0.3)
    listing = subprocess.run(optui_command() + ["optimizers"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    assert "qhm" in listing.stdout and "entry point optui_qhm:qhm of optui-qhm 0.1.0" in listing.stdout
    shown = subprocess.run(optui_command() + ["presets", "show", str(path)], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "learning_rate=0.3, beta=0.999, nu=0.7" in shown.stdout
    # Without the installed metadata the same preset is refused, naming the group.
    missing = subprocess.run(optui_command() + ["presets", "validate", str(path)], cwd=tmp_path,
                             env=cli_env(None), capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2
    assert "no entry point 'qhm' in group 'optui.optimizers'" in missing.stderr


def test_a_study_trains_an_entry_point_plugin(tmp_path, jax_cache_dir):
    site = tmp_path / "site"
    fake_install(site)
    env = plugin_env(site)
    env["JAX_COMPILATION_CACHE_DIR"] = str(jax_cache_dir)
    path = tmp_path / "study.toml"
    path.write_text(tiny_preset_text(iterations=20, points=2, replicates=2, configs={
        "qhm": {"optimizer": "qhm", "learning_rate": 0.5, "batch_size": 16}}), encoding="utf-8")
    result = subprocess.run(optui_command() + ["run", str(path), "--headless"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "qhm" in result.stdout


@pytest.mark.slow
def test_the_example_package_installs_with_pip_and_registers_its_entry_point(tmp_path):
    target = tmp_path / "site"
    # pip builds it in isolation (fetching setuptools like any package install).
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target),
                          str(EXAMPLE)], capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    env = cli_env(None)
    env["PYTHONPATH"] = f"{target}:{env['PYTHONPATH']}"
    listing = subprocess.run(optui_command() + ["optimizers", "qhm"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    assert "QHM" in listing.stdout and "nu" in listing.stdout
