"""Round 3, case 2: a resume notices a plug-in's code changed.

A run's fingerprint covers the code of the plug-ins it trains with (the source of a file plug-in;
the version and files of an installed one), workload and optimiser alike, so `--resume` after
an edit is refused (exit 2) naming what changed, instead of finishing half on one optimiser and
half on another.
"""

from __future__ import annotations

import json

from support.checks import interrupted_run, one_error  # noqa: F401  (one_error: for CliRunner results)
from support.common import tiny_preset_text
from support.plugin_sources import TOY

OPTIMIZER = '''
import optax

def make(hp):
    return optax.sgd(hp["learning_rate"] * STEP)

STEP = 1.0
make.hyperparams = {"learning_rate": {"default": 0.1, "low": 0, "low_open": True}}
'''


def _refused(result) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def test_case_2_resume_refuses_an_edited_file_optimizer(cli):
    (cli.cwd / "myopt.py").write_text(OPTIMIZER)
    text = tiny_preset_text(iterations=16, points=4, replicates=2,
                            configs={"mine": {"optimizer": "./myopt.py:make", "learning_rate": 0.5,
                                              "batch_size": 16}})
    preset = cli.cwd / "tiny.toml"
    preset.write_text(text)
    run_id = interrupted_run(preset, cli.cwd / "runs", chunks=1)

    (cli.cwd / "myopt.py").write_text(OPTIMIZER.replace("STEP = 1.0", "STEP = 10.0"))
    err = _refused(cli("run", preset, "--headless", "--no-export", "--resume", run_id))
    assert f"cannot resume run {run_id}" in err
    assert "the code of optimizer myopt.py:make changed" in err and str(cli.cwd / "myopt.py") in err
    [run] = json.loads(cli("runs", "--json").stdout)
    assert run["status"] == "interrupted"  # left as it was

    (cli.cwd / "myopt.py").write_text(OPTIMIZER)  # the code it started with: resumes
    done = cli("run", preset, "--headless", "--no-export", "--resume", run_id)
    assert done.returncode == 0, done.stdout + done.stderr


def test_case_2_resume_refuses_an_edited_file_workload(cli):
    (cli.cwd / "toy.py").write_text(TOY)
    preset = cli.cwd / "toy.toml"
    preset.write_text('workload = "./toy.py:make"\n[budget]\niterations = 16\n[eval]\npoints = 4\n'
                      '[replicates]\ncount = 2\n[configs.sgd]\noptimizer = "sgd"\nlearning_rate = 0.1\n'
                      'batch_size = 4\n')
    run_id = interrupted_run(preset, cli.cwd / "runs", chunks=1)

    (cli.cwd / "toy.py").write_text(TOY.replace("jnp.array([1.0, -2.0])", "jnp.array([1.0, -3.0])"))
    err = _refused(cli("run", preset, "--headless", "--no-export", "--resume", run_id))
    assert "the code of workload ./toy.py:make changed" in err and "toy.py" in err


def test_case_2_an_installed_plugin_is_fingerprinted_by_its_version_and_files(tmp_path, monkeypatch):
    """A module of an installed distribution: its name, version and the hash of its files."""
    import importlib.metadata as md
    import optax

    from optui.service.fingerprint import _code_of

    what, digest = _code_of(optax.sgd)
    assert what == f"package optax {md.version('optax')}"
    assert digest.startswith(md.version("optax") + ":")
