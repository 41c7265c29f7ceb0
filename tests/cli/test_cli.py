"""The CLI end to end on a tiny TwNet study, in a scratch folder: run, exports, runs, presets, and
bad input (exit 2, one line on stderr, no traceback)."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from optui.store import Store

from support.common import ROOT, Cli, cli_env, optui_command, tiny_preset_text

# The same shape as the crash tests in test_store.py, so the compiled programs are shared.
STUDY_ARGS = dict(study="tiny-e2e", iterations=40, points=10, replicates=3)


@pytest.fixture(scope="session")
def finished(tmp_path_factory, jax_cache_dir):
    """One headless study run through the CLI, with exports, shared by the tests below."""
    cwd = tmp_path_factory.mktemp("cli-e2e")
    (cwd / "tiny.toml").write_text(tiny_preset_text(**STUDY_ARGS))
    cli = Cli(cwd, cli_env(jax_cache_dir))
    result = cli("run", "tiny.toml", "--headless")
    return cli, result


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# --- a finished study ---------------------------------------------------------------------------

def test_headless_run_succeeds(finished):
    cli, result = finished
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "tiny-e2e" in result.stdout and "wrote" in result.stdout


def test_summary_json(finished):
    cli, result = finished
    assert result.returncode == 0, result.stderr
    summary = json.loads((cli.cwd / "exports" / "tiny-e2e" / "latest" / "summary.json").read_text())
    assert summary["study"] == "tiny-e2e" and summary["workload"] == "twnet"
    assert summary["device"].startswith("cpu") and summary["wall_time_s"] > 0
    assert set(summary["configs"]) == {"sgd", "adam"}
    store = Store.open(cli.cwd / "runs")
    run = store.load_run("latest")
    store.close()
    for name, cfg in summary["configs"].items():
        assert cfg["replicates"] == 3 and cfg["diverged"] == 0 and cfg["wall_time_s"] > 0
        for metric in ("final_train_loss", "final_test_loss"):
            stats = cfg[metric]
            assert {"mean", "median", "min", "max"} <= set(stats)
            assert stats["min"] <= stats["median"] <= stats["max"]
            assert stats["min"] <= stats["mean"] <= stats["max"]
            finals = run.units[name].eval[metric.removeprefix("final_")][:, -1]
            assert stats["mean"] == pytest.approx(float(np.mean(finals)), rel=1e-9)
            assert stats["min"] == pytest.approx(float(np.min(finals)), rel=1e-9)


def test_exports_written(finished):
    cli, _ = finished
    out = cli.cwd / "exports" / "tiny-e2e" / "latest"  # a link to the run's own folder
    assert out.resolve().parent == (cli.cwd / "exports" / "tiny-e2e").resolve()
    names = {p.name for p in out.iterdir()}
    assert {"summary.json", "mlruns.p", "histories.csv", "config-sgd.png", "config-adam.png"} <= names
    assert any(n.startswith("compare-01-") and n.endswith(".png") for n in names)
    assert not any(n.startswith(".") or n.endswith(".tmp") for n in names)  # no temporary leftovers


def test_run_recorded_in_full(finished):
    cli, _ = finished
    store = Store.open(cli.cwd / "runs")
    try:
        run = store.load_run("latest")
        info = store.run_info(run.run_id)
    finally:
        store.close()
    assert run.status == "done" and run.kind == "study" and run.study == "tiny-e2e"
    assert run.preset_text == (cli.cwd / "tiny.toml").read_text()
    assert info["meta"]["eval_points"] == 10 and info["meta"]["budget"] == "40 iterations"
    assert "jax" in info["meta"]["versions"]
    for unit in run.units.values():
        assert unit.minibatch_loss.shape == (3, 40) and np.all(np.isfinite(unit.minibatch_loss))
        assert unit.eval_steps.tolist() == list(range(0, 41, 4))
        # Replicates differ only in their batches: the same start, different paths.
        assert np.allclose(unit.eval["test_loss"][:, 0], unit.eval["test_loss"][0, 0])
        assert not np.allclose(unit.minibatch_loss[0], unit.minibatch_loss[1])


def test_runs_lists_the_run(finished):
    cli, _ = finished
    result = cli("runs")
    assert result.returncode == 0, result.stderr
    assert "tiny-e2e" in result.stdout and "done" in result.stdout and "6/6" in result.stdout


def test_runs_json(finished):
    cli, _ = finished
    result = cli("runs", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 1
    row = rows[0]
    assert row["study"] == "tiny-e2e" and row["status"] == "done" and row["kind"] == "study"
    assert row["units"] == ["sgd", "adam"]
    assert (row["replicates_done"], row["replicates_total"], row["diverged"]) == (6, 6, 0)


def test_runs_show(finished):
    cli, _ = finished
    run_id = json.loads(cli("runs", "--json").stdout)[0]["id"]
    result = cli("runs", "show", run_id[:-3])  # a unique prefix
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert run_id in out and "done" in out and "sgd" in out and "adam" in out and "40/40" in out
    shown = json.loads(cli("runs", "show", "latest", "--json").stdout)
    assert shown["run_id"] == run_id and set(shown["configs"]) == {"sgd", "adam"}
    assert shown["meta"]["eval_points"] == 10


def test_runs_show_unknown_id(finished):
    cli, _ = finished
    result = cli("runs", "show", "no-such-run")
    assert result.returncode == 2  # bad input
    assert "no-such-run" in one_line_error(result)


def test_runs_in_an_empty_folder(cli):
    result = cli("runs", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


# --- presets ------------------------------------------------------------------------------------

def test_presets_validate_shipped(cli):
    result = cli("presets", "validate", ROOT / "presets" / "twnet.toml")
    assert result.returncode == 0, result.stderr
    assert "ok (twnet, 4 configs" in result.stdout and "6 comparisons" in result.stdout


def test_presets_show(cli, write_preset):
    path = write_preset(**STUDY_ARGS)
    result = cli("presets", "show", path, "--set", "replicates.count=7")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "tiny-e2e" in out and "40 iterations" in out and "replicates 7" in out
    assert "sgd" in out and "adam" in out and "learning_rate=0.01" in out


def test_presets_validate_bad_file(cli, write_preset):
    path = write_preset(text=tiny_preset_text().replace("learning_rate = 0.01", "learning_rate = -1.0"))
    result = cli("presets", "validate", path)
    assert result.returncode == 2
    line = one_line_error(result)
    assert str(path) in line and "configs.adam.learning_rate" in line and "(0, inf)" in line


def test_presets_validate_bad_override(cli, write_preset):
    result = cli("presets", "validate", write_preset(), "--set", "configs.adam.b1=1.5")
    assert result.returncode == 2
    assert "configs.adam.b1" in one_line_error(result)


# --- bad input to `run` -------------------------------------------------------------------------

@pytest.mark.parametrize("text, fragment", [
    ('workload = "twnet"\n[budget\n', "not valid TOML"),
    (tiny_preset_text().replace('"sgd"', '"sgdd"', 1), "configs.sgd.optimizer"),
])
def test_run_bad_preset(cli, write_preset, text, fragment):
    path = write_preset(text=text)
    result = cli("run", path, "--headless")
    assert result.returncode == 2, result.stdout + result.stderr
    line = one_line_error(result)
    assert str(path) in line and fragment in line
    assert not (cli.cwd / "runs").exists() or Store.open(cli.cwd / "runs").list_runs() == []


def test_run_missing_preset(cli):
    result = cli("run", "nowhere.toml", "--headless")
    assert result.returncode == 2
    assert "nowhere.toml" in one_line_error(result)


def test_run_batch_larger_than_the_training_set(cli, write_preset):
    result = cli("run", write_preset(), "--headless", "--set", "configs.sgd.batch_size=100000")
    assert result.returncode == 2
    assert "training set size" in one_line_error(result)


def test_resume_unknown_run(cli, write_preset):
    result = cli("run", write_preset(), "--headless", "--resume", "nope")
    assert result.returncode == 2  # bad input
    assert "nope" in one_line_error(result)


def test_help_lists_the_commands():
    result = subprocess.run(optui_command() + ["--help"], capture_output=True, text=True,
                            env=cli_env(None), timeout=60)
    assert result.returncode == 0
    for command in ("run", "runs", "presets"):
        assert command in result.stdout


# --- the MNIST study's preset, end to end on the real t10k images (a tiny CNN) ------------------

def test_offline_mnist_study_runs_and_reports_accuracy(shared_data, cli):
    """presets/mnist-offline.toml through the CLI: the IDX split, training, eval, summary.json."""
    t10k = shared_data / "mnist-t10k"
    result = cli("run", str(ROOT / "presets" / "mnist-offline.toml"), "--headless",
                 "--set", f"data.path={t10k}", "--set", "model.conv1=4", "--set", "model.conv2=4",
                 "--set", "model.dense=16", "--set", "budget.examples=2000",
                 "--set", "eval.points=4", "--replicates", "2",
                 "--config", "sgd-default", "--config", "adam-default")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((cli.cwd / "exports" / "mnist-offline" / "latest" / "summary.json").read_text())
    assert summary["workload"] == "mnist" and set(summary["configs"]) == {"sgd-default", "adam-default"}
    for cfg in summary["configs"].values():
        assert cfg["replicates"] == 2 and cfg["diverged"] == 0
        acc = cfg["final_test_accuracy"]
        # 15 steps of a 4-filter net already beat chance (10%) on the held-out images.
        assert 0.2 < acc["min"] <= acc["mean"] <= acc["max"] <= 1.0
        assert cfg["final_train_loss"]["mean"] < 2.3  # below the untrained ln(10)
