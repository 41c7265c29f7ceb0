"""Round 3, case 15: a plug-in that prints every step (jax.debug.print) to a stdout closed by
`| head -1` does not fail the run: output is a view, training goes on."""

from __future__ import annotations

import json
import subprocess

from support.common import optui_command, tiny_preset_text

PRINTING_OPTIMIZER = '''
import jax
import optax

def make(hp):
    inner = optax.sgd(hp["learning_rate"])

    def update(updates, state, params=None):
        jax.debug.print("step update {u}", u=jax.tree.leaves(updates)[0].sum())
        return inner.update(updates, state, params)

    return optax.GradientTransformation(inner.init, update)

make.hyperparams = {"learning_rate": {"default": 0.1, "low": 0, "low_open": True}}
'''


def test_case_15_a_plugin_printing_every_step_into_a_closed_pipe_does_not_fail_the_run(cli):
    (cli.cwd / "loud.py").write_text(PRINTING_OPTIMIZER)
    (cli.cwd / "tiny.toml").write_text(tiny_preset_text(
        iterations=400, points=2, replicates=2,
        configs={"loud": {"optimizer": "./loud.py:make", "learning_rate": 0.5, "batch_size": 16}}))
    proc = subprocess.Popen(optui_command() + ["run", "tiny.toml", "--headless", "--no-export"], cwd=cli.cwd,
                            env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()  # `| head -1`: one line, then the pipe is closed
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err
    assert "standard output failed" in err  # said once
    [run] = json.loads(cli("runs", "--json").stdout)
    assert run["status"] == "done"
