"""Importing report-layout pickles: the published mlruns.p and hand-made good and bad ones."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from typer.testing import CliRunner

from optui.errors import DataError
from optui.export import comparisons_for
from optui.export.figures import compare_figure
from optui.export.report_import import import_report, load_report, units_from_report
from optui.results.stats import final_values
from optui.store import Store

REPORT = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "report-histories" / "mlruns.p"
needs_report = pytest.mark.skipif(not REPORT.exists(), reason=f"shared data not present: {REPORT}")
REPORT_MEANS = {"sgd-default": 0.1466, "sgd-optimal": 0.0498, "adam-default": 0.0517, "adam-optimal": 0.0470}
REPORT_STEPS = {"sgd-default": 468, "sgd-optimal": 1224, "adam-default": 468, "adam-optimal": 612}
FIGURES = [("Constant: Default vs. Optimal", ["Optimal", "Default"]),
           ("Adam: Default vs. Optimal", ["Optimal", "Default"]),
           ("Default Constant vs. Default Adam", ["Adam", "Constant"]),
           ("Optimal Constant vs. Optimal Adam", ["Constant", "Adam"])]


@needs_report
def test_published_histories_import_into_the_store_and_reproduce_the_report(tmp_path):
    store = Store.open(tmp_path / "runs")
    run_id = import_report(REPORT, store, "report-mnist")
    run = store.load_run(run_id)
    assert run.kind == "import" and run.study == "report-mnist" and run.status == "done"
    assert list(run.units) == list(REPORT_MEANS)
    for name, unit in run.units.items():
        assert unit.minibatch_loss.shape == (20, REPORT_STEPS[name])
        assert unit.eval["test_loss"].shape == (20, 1)
        assert list(unit.eval_steps) == [REPORT_STEPS[name]]
        assert round(float(np.mean(final_values(unit, "test_loss"))), 4) == REPORT_MEANS[name]
    compares = comparisons_for(run)
    assert [(c.title, list(c.labels)) for c in compares] == FIGURES
    for compare in compares:
        fig = compare_figure(run, compare)
        ax = fig.axes[0]
        assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 2
        assert [t.get_text() for t in ax.get_legend().get_texts()] == list(compare.labels)
        assert ax.get_yscale() == "log"
        # the mean line is the mean of the replicate histories of the first config
        first = run.units[compare.configs[0]].minibatch_loss
        np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), first.mean(axis=0), rtol=1e-5)


@needs_report
def test_import_command_prints_the_report_means(tmp_path):
    from optui.cli import app

    result = CliRunner().invoke(app, ["import", str(REPORT), "--store", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    for mean in ("0.1466", "0.0498", "0.0517", "0.0470"):
        assert mean in result.output


def write(tmp_path, obj, name="h.p"):
    path = tmp_path / name
    path.write_bytes(pickle.dumps(obj))
    return path


def test_hand_made_report_pickle_loads_with_divergence(tmp_path):
    hist = [[np.float32(v) for v in (1.0, 0.5, 0.25)], [1.0, float("nan"), float("nan")]]
    path = write(tmp_path, {"my_cfg_loss_histories": hist, "my_cfg_test_losses": [np.array(0.2, np.float32), 0.3]})
    run = load_report(path)
    unit = run.units["my-cfg"]
    assert run.study == "h"
    assert list(unit.diverged_at) == [-1, 1]
    assert unit.total_steps == 3
    assert comparisons_for(run) == []  # one config: nothing to compare


@pytest.mark.parametrize("obj, message", [
    ([1, 2, 3], "expected a dict"),
    ({}, "nothing to import"),
    ({"weird": [1]}, "unexpected key 'weird'"),
    ({"a_loss_histories": "abc"}, "one list of losses per replicate"),
    ({"a_loss_histories": [[1.0, 2.0], [1.0]]}, "different lengths"),
    ({"a_loss_histories": [[[1.0]]]}, "flat list of numbers"),
    ({"a_loss_histories": [["x", "y"]]}, "flat list of numbers"),
    ({"a_loss_histories": [[1.0]], "a_test_losses": [1.0, 2.0]}, "has 2 values but"),
    ({"a_loss_histories": [[1.0]], "b_test_losses": [1.0]}, "no matching"),
    ({"a_loss_histories": [[]]}, "hold no losses"),
])
def test_wrong_shapes_are_clear_errors(tmp_path, obj, message):
    path = write(tmp_path, obj)
    with pytest.raises(DataError, match=message) as info:
        load_report(path)
    assert str(path) in str(info.value)


def test_units_from_report_names_units_from_prefixes():
    units = units_from_report({"sgd_default_loss_histories": [[1.0, 2.0]]}, "mem")
    assert list(units) == ["sgd-default"]


def test_import_command_refuses_a_malicious_pickle(tmp_path):
    from optui.cli import app

    class Evil:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    path = write(tmp_path, {"a_loss_histories": Evil()}, "evil.p")
    result = CliRunner().invoke(app, ["import", str(path), "--store", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert "refused" in result.output and "evil.p" in result.output
    assert not (tmp_path / "pwned").exists()
    assert Store.open(tmp_path / "runs").list_runs() == []  # nothing half-imported
