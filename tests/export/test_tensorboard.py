"""`optui export --tensorboard`: event files read back with TensorBoard's own reader hold exactly
the store's values, on the step and examples axes, and a search fills the HParams table."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from optui.store import Store

from support.common import Cli, cli_env, tiny_preset_text
from support.stores import make_store

pytest.importorskip("tensorboardX")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def read_scalars(folder) -> dict[str, list]:
    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    return {tag: acc.Scalars(tag) for tag in acc.Tags()["scalars"]}


def hparams_content(folder) -> dict[str, bytes]:
    acc = event_accumulator.EventAccumulator(str(folder))
    acc.Reload()
    return acc.PluginTagToContent("hparams")


def export(store_root, *args):
    from optui.cli import app

    return CliRunner().invoke(app, ["export", "--store", str(store_root), *map(str, args)])


def check_run_against_store(logdir, run) -> int:
    """Every replicate's scalars equal the store's finite values on both axes; returns the count."""
    checked = 0
    for name, unit in run.units.items():
        batch = int(unit.spec["batch_size"])
        curves = {"minibatch_loss": (np.arange(1, unit.minibatch_loss.shape[1] + 1), unit.minibatch_loss)}
        curves.update({m: (unit.eval_steps, v) for m, v in unit.eval.items()})
        for r in range(unit.replicates):
            scalars = read_scalars(logdir / run.study / run.run_id / name / f"rep-{r:02d}")
            for metric, (steps, values) in curves.items():
                keep = np.isfinite(values[r])
                want_steps = np.asarray(steps)[keep]
                want = values[r][keep].astype(np.float32)  # TensorBoard keeps float32 scalars
                for axis, scale in (("by_step", 1), ("by_examples", batch)):
                    if not keep.any():  # nothing to draw: no tag at all
                        assert f"{axis}/{metric}" not in scalars
                        continue
                    got = scalars[f"{axis}/{metric}"]
                    assert [e.step for e in got] == (want_steps * scale).tolist(), (name, r, metric, axis)
                    np.testing.assert_array_equal(np.array([e.value for e in got], np.float32), want)
                    checked += len(got)
    return checked


def test_event_files_hold_the_store_values(tmp_path):
    store, study_id, _ = make_store(tmp_path / "runs")
    result = export(tmp_path / "runs", study_id, "--tensorboard", tmp_path / "tb")
    assert result.exit_code == 0, result.output
    assert "tensorboard --logdir" in result.output
    run = store.load_run(study_id)
    assert check_run_against_store(tmp_path / "tb", run) > 100
    # Replicate 1 of adam diverged at step 7: its later points are absent, not NaN.
    scalars = read_scalars(tmp_path / "tb" / "demo" / study_id / "adam" / "rep-01")
    assert [e.step for e in scalars["by_step/minibatch_loss"]] == list(range(1, 8))
    # --tensorboard alone writes no other export.
    assert not (tmp_path / "exports").exists()


def test_search_fills_the_hparams_table(tmp_path):
    from tensorboard.plugins.hparams import plugin_data_pb2

    store, _, search_id = make_store(tmp_path / "runs")
    assert export(tmp_path / "runs", search_id, "--tensorboard", tmp_path / "tb").exit_code == 0
    root = tmp_path / "tb" / "demo" / search_id
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        hparams_content(root)["_hparams_/experiment"]).experiment
    assert {h.name for h in experiment.hparam_infos} >= {"learning_rate", "batch_size", "b1", "status", "stage"}
    assert [m.name.tag for m in experiment.metric_infos] == ["hparams/final_test_loss"]
    run = store.load_run(search_id)
    for name, unit in run.units.items():
        start = plugin_data_pb2.HParamsPluginData.FromString(
            hparams_content(root / name)["_hparams_/session_start_info"]).session_start_info
        assert start.hparams["learning_rate"].number_value == pytest.approx(unit.spec["learning_rate"])
        assert start.hparams["batch_size"].number_value == unit.spec["batch_size"]
        assert start.hparams["status"].string_value == unit.status
        objective = read_scalars(root / name).get("hparams/final_test_loss")
        if unit.status == "done":
            assert objective[0].value == pytest.approx(unit.extra["objective"], rel=1e-6)
        else:  # a diverged trial has no objective: the table leaves its cell empty
            assert objective is None
    assert check_run_against_store(tmp_path / "tb", run) > 0


def test_exporting_again_replaces_the_event_files(tmp_path):
    _, study_id, _ = make_store(tmp_path / "runs")
    for _ in range(2):
        assert export(tmp_path / "runs", study_id, "--tensorboard", tmp_path / "tb").exit_code == 0
    rep = tmp_path / "tb" / "demo" / study_id / "sgd" / "rep-00"
    assert len(list(rep.glob("events.out.tfevents.*"))) == 1
    assert not [p for p in (tmp_path / "tb" / "demo").iterdir() if p.name.startswith(".")]


def test_tensorboard_without_a_folder_uses_out_and_keeps_other_formats(tmp_path):
    _, study_id, _ = make_store(tmp_path / "runs")
    out = tmp_path / "exports"
    result = export(tmp_path / "runs", study_id, "--json", "--tensorboard", "--out", out)
    assert result.exit_code == 0, result.output
    assert (out / "tensorboard" / "demo" / study_id / "sgd" / "rep-02").is_dir()
    assert (out / "demo" / study_id / "summary.json").is_file()  # a folder per run
    result = export(tmp_path / "runs", "--tensorboard=" + str(tmp_path / "tb2"), study_id)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "tb2" / "demo" / study_id).is_dir()


def test_a_run_id_after_tensorboard_is_not_taken_for_the_folder(tmp_path):
    _, study_id, _ = make_store(tmp_path / "runs")
    result = export(tmp_path / "runs", "--tensorboard", study_id)
    assert result.exit_code == 2
    assert "names a run" in result.output and "--tensorboard=DIR" in result.output
    assert not (tmp_path / study_id).exists()


def test_without_tensorboardx_the_flag_exits_2_with_the_install_command(tmp_path, monkeypatch):
    _, study_id, _ = make_store(tmp_path / "runs")
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import fails as if not installed
    result = export(tmp_path / "runs", study_id, "--tensorboard", tmp_path / "tb")
    assert result.exit_code == 2, result.output
    assert "pip install 'optui[tensorboard]'" in result.output
    assert not (tmp_path / "tb").exists()


def test_fill_optional_values():
    from optui.cli.commands.optional_value import DEFAULT, fill_optional_values

    opts = ("--tensorboard",)
    assert fill_optional_values(["--tensorboard"], opts) == ["--tensorboard", DEFAULT]
    assert fill_optional_values(["--tensorboard", "--png"], opts) == ["--tensorboard", DEFAULT, "--png"]
    assert fill_optional_values(["--tensorboard", "tb"], opts) == ["--tensorboard", "tb"]
    assert fill_optional_values(["--tensorboard=tb"], opts) == ["--tensorboard=tb"]
    assert fill_optional_values(["--", "--tensorboard"], opts) == ["--", "--tensorboard"]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, jax_cache_dir):
    """A real (tiny) study trained through the CLI: the shape test_cli.py uses, so the compiled
    programs come from the session's cache."""
    cwd = tmp_path_factory.mktemp("tb-real")
    (cwd / "tiny.toml").write_text(tiny_preset_text(study="tiny-e2e", iterations=40, points=10, replicates=3))
    cli = Cli(cwd, cli_env(jax_cache_dir))
    result = cli("run", "tiny.toml", "--headless", "--no-export")
    assert result.returncode == 0, result.stdout + result.stderr
    return cli


def test_real_run_read_back_from_tensorboard_files(real_run):
    result = real_run("export", "--tensorboard", "tb")
    assert result.returncode == 0, result.stdout + result.stderr
    store = Store.open(real_run.cwd / "runs")
    run = store.load_run("latest")
    assert check_run_against_store(real_run.cwd / "tb", run) == 2 * 2 * 3 * (40 + 11 * 2)


def test_odd_names_get_distinct_folders_and_killed_exports_are_swept(tmp_path):
    from optui.export.tensorboard import unit_folders, write_run

    store, study_id, _ = make_store(tmp_path / "runs")
    run = store.load_run(study_id)
    run.units = {"a/b": run.units["sgd"], "a-b": run.units["adam"], "..": run.units["sgd"]}
    assert unit_folders(run) == {"a/b": "a-b", "a-b": "a-b-2", "..": "figure"}
    run.study = "../up"
    dead = tmp_path / "tb" / "up" / f".{study_id}.999999999.tmp"  # an export killed part-way
    dead.mkdir(parents=True)
    folder = write_run(run, tmp_path / "tb")
    assert folder == tmp_path / "tb" / "up" / study_id  # never outside the log folder
    # a folder per config; the run folder's own event file is the HParams experiment
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["a-b", "a-b-2", "figure"]
    assert not dead.exists()
    result = export(tmp_path / "runs", study_id, "--tensorboard=")
    assert result.exit_code == 2 and "needs a folder name" in result.output
