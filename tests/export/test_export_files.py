"""Pickles, CSV and JSON exports, atomic writes, output-folder checks and the export command."""

from __future__ import annotations

import csv
import json
import os
import pickle
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from optui.export import ExportError, export_run
from optui.export import atomic, safe_pickle
from optui.export.pickles import report_layout, rich_layout
from optui.export.report_import import load_report
from optui.export.tables import summary
from optui.results import RunResult, UnitResult


def make_run(study="demo", diverge=False):
    rng = np.random.default_rng(0)
    units = {}
    for name, level in (("sgd-default", 1.0), ("adam-optimal", 0.5)):
        mb = (level * rng.uniform(0.5, 1.5, (3, 10))).astype(np.float32)
        div = np.array([-1, -1, -1])
        ev = {"train_loss": level * rng.uniform(0.5, 1.0, (3, 3)), "test_loss": level * rng.uniform(0.6, 1.1, (3, 3))}
        if diverge and name == "adam-optimal":
            div[1] = 4
            mb[1, 4:] = np.nan
            ev["train_loss"][1, 1:] = np.nan
            ev["test_loss"][1, 1:] = np.nan
        units[name] = UnitResult(name=name, spec={"optimizer": name.split("-")[0], "learning_rate": np.float64(0.1)},
                                 minibatch_loss=mb, eval_steps=np.array([0, 5, 10]), eval=ev,
                                 diverged_at=div, total_steps=10, wall_time_s=1.5)
    return RunResult(run_id="r1", study=study, workload="twnet", kind="study", status="done", device="cpu",
                     created=0.0, wall_time_s=3.0, preset_text="", units=units)


def test_report_pickle_layout_matches_the_report(tmp_path):
    run = make_run()
    layout = report_layout(run)
    assert sorted(layout) == ["adam_optimal_loss_histories", "adam_optimal_test_losses",
                              "sgd_default_loss_histories", "sgd_default_test_losses"]
    hist = layout["sgd_default_loss_histories"]
    assert len(hist) == 3 and len(hist[0]) == 10 and all(isinstance(v, float) for v in hist[0])
    np.testing.assert_allclose(layout["sgd_default_test_losses"], run.units["sgd-default"].eval["test_loss"][:, -1])
    # It reads back through the importer as the same histories.
    paths = export_run(run, tmp_path, {"pickle"})
    back = load_report(tmp_path / "mlruns.p")
    assert [p.name for p in paths] == ["mlruns.p", "demo-histories.p"]
    np.testing.assert_allclose(back.units["adam-optimal"].minibatch_loss, run.units["adam-optimal"].minibatch_loss)
    assert pickle.loads((tmp_path / "mlruns.p").read_bytes()).keys() == layout.keys()


def test_rich_pickle_is_readable_by_the_restricted_unpickler(tmp_path):
    run = make_run(diverge=True)
    export_run(run, tmp_path, {"pickle"})
    data = safe_pickle.load(tmp_path / "demo-histories.p")
    assert data["format"] == "optui-histories" and data["study"] == "demo"
    cfg = data["configs"]["adam-optimal"]
    assert cfg["minibatch_loss"].shape == (3, 10) and cfg["eval"]["test_loss"].shape == (3, 3)
    assert list(cfg["diverged_at"]) == [-1, 4, -1]
    assert cfg["spec"]["learning_rate"] == 0.1 and type(cfg["spec"]["learning_rate"]) is float
    assert rich_layout(run)["configs"].keys() == data["configs"].keys()


def test_csv_is_long_format_with_every_value(tmp_path):
    run = make_run(diverge=True)
    export_run(run, tmp_path, {"csv"})
    with open(tmp_path / "histories.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["study", "config", "replicate", "step", "percent", "metric", "value"]
    # 2 configs x 3 replicates x (10 minibatch + 3 train + 3 test)
    assert len(rows) == 2 * 3 * 16
    mb = [r for r in rows if r["config"] == "sgd-default" and r["metric"] == "minibatch_loss" and r["replicate"] == "2"]
    assert [int(r["step"]) for r in mb] == list(range(1, 11))
    assert float(mb[-1]["percent"]) == 100.0
    assert float(mb[3]["value"]) == pytest.approx(float(run.units["sgd-default"].minibatch_loss[2, 3]))
    test = [r for r in rows if r["config"] == "adam-optimal" and r["metric"] == "test_loss" and r["replicate"] == "1"]
    assert [r["step"] for r in test] == ["0", "5", "10"] and test[-1]["value"] == "nan"


def test_summary_json_statistics_and_no_nan(tmp_path):
    run = make_run(diverge=True)
    export_run(run, tmp_path, {"json"}, targets={"test_loss": 10.0})
    text = (tmp_path / "summary.json").read_text()
    assert "NaN" not in text
    data = json.loads(text)
    adam = data["configs"]["adam-optimal"]
    assert adam["diverged"] == 1 and adam["final_test_loss"]["n"] == 2
    expected = run.units["adam-optimal"].eval["test_loss"][[0, 2], -1].mean()
    assert adam["final_test_loss"]["mean"] == pytest.approx(expected)
    assert adam["time_to_target"]["test_loss"] == {"target": 10.0, "percent": 0.0}
    assert data["configs"].keys() == summary(run)["configs"].keys()


def test_atomic_write_replaces_whole_files_and_leaves_no_temp(tmp_path):
    target = tmp_path / "f.txt"
    atomic.write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_open(target, "w") as f:
            f.write("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)  # not left with mkstemp's private mode


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_folder_is_refused_before_any_work(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(ExportError, match="not writable"):
            export_run(make_run(), ro)
    finally:
        ro.chmod(0o700)


def test_unwritable_folder_is_refused_even_for_root(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)
    with pytest.raises(ExportError, match="not writable.*Permission denied"):
        export_run(make_run(), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_uncreatable_or_file_folder_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ExportError, match="is a file"):
        export_run(make_run(), blocker)
    with pytest.raises(ExportError, match="cannot create"):
        export_run(make_run(), blocker / "sub")
    with pytest.raises(ExportError, match="unknown export format 'gif'"):
        export_run(make_run(), tmp_path / "out", {"gif"})
    assert not (tmp_path / "out").exists()  # checked before the folder was made


def test_export_command_writes_latest_run_of_each_study(tmp_path, monkeypatch):
    from optui.cli import app
    from optui.store import Store

    store = Store.open(tmp_path / "runs")
    ids = {}
    for study, level in (("alpha", 1.0), ("alpha", 0.5), ("beta", 2.0)):
        run_id = store.create_run(study, "twnet", "study", "", None, {})
        for name in ("a", "b"):
            store.add_unit(run_id, name, {"optimizer": "sgd"}, 2, 4, 1)
            store.write_chunk(run_id, name, 0, 0, np.full((2, 4), level, np.float32), 4,
                              {"test_loss": np.array([level, level])}, np.array([-1, -1]))
            store.finish_unit(run_id, name, "done", 0.1)
        store.finish_run(run_id, "done", 0.2)
        ids.setdefault(study, []).append(run_id)
        time.sleep(0.01)
    out = tmp_path / "exports"
    result = CliRunner().invoke(app, ["export", "--store", str(tmp_path / "runs"), "--out", str(out),
                                      "--json", "--png", "--dpi", "40"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["alpha", "beta"]
    # A folder per run, and `latest` pointing at the newest finished one.
    assert sorted(p.name for p in (out / "alpha").iterdir()) == [ids["alpha"][1], "latest"]
    alpha = json.loads((out / "alpha" / "latest" / "summary.json").read_text())
    assert alpha["run_id"] == ids["alpha"][1]  # the latest of the two
    assert alpha["configs"]["a"]["final_test_loss"]["mean"] == pytest.approx(0.5)
    assert sorted(p.name for p in (out / "beta" / ids["beta"][0]).iterdir()) == [
        "compare-01-a-vs-b.png", "config-a.png", "config-b.png", "summary.json"]
    bad = CliRunner().invoke(app, ["export", "nope", "--store", str(tmp_path / "runs"), "--out", str(out)])
    assert bad.exit_code != 0 and "nope" in bad.output
