"""Tables for papers: Markdown, booktabs LaTeX and CSV from `optui compare`, `optui runs show`
and `optui export`, with n, mean, the chosen band and the paired comparison."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from optui.export.paper import PaperTable, latex_escape, render
from optui.results.stats import distribution, final_values, interval, paired_comparison

from support.stores import make_store


def invoke(*args):
    from optui.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def store(tmp_path):
    s, study_id, search_id = make_store(tmp_path / "runs")
    return s, study_id, search_id, tmp_path / "runs"


def test_render_formats():
    t = PaperTable(["Config", "n", "Mean", "95% CI"], [["sgd_default", 20, 0.123456, (0.11, 0.13)],
                                                      ["a&b", 3, 1.5e-5, None]],
                   caption="final test_loss", notes=["50% of runs"])
    md = render(t, "markdown")
    assert "| Config | n | Mean | 95% CI |" in md and "|:---|---:|---:|---:|" in md
    assert "| sgd_default | 20 | 0.1235 | [0.11, 0.13] |" in md and "50% of runs" in md
    tex = render(t, "latex")
    for rule in ("\\toprule", "\\midrule", "\\bottomrule", "\\begin{tabular}{lrrr}"):
        assert rule in tex
    assert "sgd\\_default & 20 & 0.1235 & [0.11, 0.13] \\\\" in tex
    assert "a\\&b & 3 & $1.500 \\times 10^{-5}$ & -- \\\\" in tex
    assert "\\caption{final test\\_loss}" in tex and "50\\% of runs" in tex
    rows = list(csv.reader(io.StringIO(render(t, "csv"))))
    assert rows[0] == ["Config", "n", "Mean", "95% CI low", "95% CI high"]
    assert rows[1] == ["sgd_default", "20", "0.123456", "0.11", "0.13"]  # full precision
    assert rows[2] == ["a&b", "3", "1.5e-05", "", ""]
    with pytest.raises(ValueError, match="cells"):
        PaperTable(["a", "b"], [[1]])
    assert latex_escape("x<1 & #2 ~ ^_") == "x\\textless{}1 \\& \\#2 \\textasciitilde{} \\textasciicircum{}\\_"


def test_compare_csv_has_n_mean_band_and_paired_values(store):
    s, study_id, _, root = store
    result = invoke("compare", f"{study_id}:sgd", f"{study_id}:adam", "--format", "csv", "--band", "iqr",
                    "--store", root)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    run = s.load_run(study_id)
    sgd, adam = (final_values(run.units[n], "test_loss") for n in ("sgd", "adam"))
    assert [r["Config"] for r in rows] == ["sgd", "adam"]
    assert int(rows[1]["n"]) == 2 and int(rows[1]["Diverged"]) == 1  # one adam replicate diverged
    assert float(rows[0]["Mean"]) == pytest.approx(np.mean(sgd))
    lo, hi = interval(adam, "iqr")
    assert float(rows[1]["IQR low"]) == pytest.approx(lo) and float(rows[1]["IQR high"]) == pytest.approx(hi)
    paired = paired_comparison(adam, sgd)
    assert float(rows[1]["P(below sgd)"]) == pytest.approx(paired["p_a_below_b"])
    assert float(rows[1]["Mean diff."]) == pytest.approx(paired["mean_difference"])
    assert rows[0]["P(below sgd)"] == ""  # the baseline is not paired with itself


def test_compare_latex_and_markdown(store):
    _, study_id, _, root = store
    tex = invoke("compare", f"{study_id}:sgd", f"{study_id}:adam", "-f", "latex", "--store", root).stdout
    assert tex.startswith("\\begin{table}") and "\\toprule" in tex and "\\bottomrule" in tex
    assert "95\\% CI of mean" in tex and "P(below sgd)" in tex and "Wilcoxon p" in tex
    md = invoke("compare", f"{study_id}:sgd", f"{study_id}:adam", "-f", "markdown", "--band", "minmax",
                "--target", "0.5", "--store", root).stdout
    assert "| Config | n | Diverged | Mean | min-max | % of run to < 0.5 |" in md


def test_compare_json_and_terminal_table(store):
    s, study_id, _, root = store
    result = invoke("compare", f"{study_id}:sgd", f"{study_id}:adam", "--json", "--store", root)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["baseline"]["config"] == "sgd" and data["band"] == "ci95"
    adam = data["configs"][1]
    finals = final_values(s.load_run(study_id).units["adam"], "test_loss")
    assert adam["n"] == 2 and adam["mean"] == pytest.approx(distribution(finals)["mean"])
    assert set(adam["paired_with_baseline"]) >= {"p_a_below_b", "ci95", "wilcoxon_p", "ttest_p"}
    table = invoke("compare", f"{study_id}:sgd", f"{study_id}:adam", "--store", root)
    assert table.exit_code == 0 and "P(below sgd)" in table.stdout and "Wilcoxon p" in table.stdout


def test_compare_bad_input_exits_2(store):
    _, study_id, _, root = store
    for args, fragment in (([f"{study_id}:nope"], "no config 'nope'"),
                           ([f"{study_id}:sgd", "--metric", "bogus"], "unknown --metric 'bogus'; this run records: minibatch_loss"),
                           ([f"{study_id}:sgd", "--json", "-f", "latex"], "choose one"),
                           (["sgd"], "expected RUN:CONFIG")):
        result = invoke("compare", *args, "--store", root)
        assert result.exit_code == 2, (args, result.output)
        assert fragment in result.output


def test_runs_show_format_for_a_study_and_a_search(store):
    s, study_id, search_id, root = store
    tex = invoke("runs", "show", study_id, "--format", "latex", "--store", root)
    assert tex.exit_code == 0, tex.output
    assert "\\toprule" in tex.stdout and "sgd & 3 & 0" in tex.stdout
    rows = list(csv.DictReader(io.StringIO(invoke("runs", "show", search_id, "-f", "csv", "--store", root).stdout)))
    assert [r["Trial"] for r in rows] == ["adam-t002", "adam-t001", "adam-t003"]  # best first
    assert rows[0]["Rank"] == "1" and float(rows[0]["final_test_loss"]) == pytest.approx(0.3)
    assert rows[2]["Status"] == "diverged" and rows[2]["Rank"] == "" and rows[2]["final_test_loss"] == ""
    assert rows[0]["Alpha"] == "0.05" and rows[0]["Batch Size"] == "24"
    md = invoke("runs", "show", search_id, "-f", "markdown", "--store", root).stdout
    assert "| 1 | adam-t002 | done | 0.3 | 0.05 | 24 |" in md


def test_export_writes_table_files_for_studies_and_searches(store, tmp_path):
    _, study_id, search_id, root = store
    out = tmp_path / "exports"
    result = invoke("export", study_id, search_id, "--format", "markdown,latex", "--format", "csv",
                    "--store", root, "--out", out)
    assert result.exit_code == 0, result.output
    study_files = {p.name for p in (out / "demo" / study_id).iterdir()}
    assert study_files == {"final-values.md", "final-values.tex", "histories.csv"}
    search_files = {p.name for p in (out / "demo" / search_id).iterdir()}
    assert search_files == {"search-adam.md", "search-adam.tex", "search-adam.csv"}
    assert "\\bottomrule" in (out / "demo" / search_id / "search-adam.tex").read_text()
    bad = invoke("export", study_id, "--format", "gif", "--store", root, "--out", out)
    assert bad.exit_code == 2 and "'gif' is not a format" in bad.output
