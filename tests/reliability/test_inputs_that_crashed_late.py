"""Case 8: inputs that looked valid and crashed later, and a damaged store.

A budget beyond what a step counter holds, a study name with a NUL or 300 characters, a 200 KB
preset nested thousands deep: each is refused when the preset loads (exit 2, one line, nothing
created). A store with a damaged row lists every run with the damaged ones marked, and the rest
stay usable (show, export).
"""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from typer.testing import CliRunner

from optui.cli import app
from optui.store import DB_NAME, Store

from support.checks import one_error
from support.common import tiny_preset_text


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_case_8_a_budget_beyond_the_step_counter_is_refused_before_a_run(workdir, write_preset):
    preset = write_preset()
    line = one_error(invoke("run", preset, "--headless", "--set", "budget.iterations=1000000000000"))
    assert "budget.iterations must be an integer in [1, 2147483647]" in line
    assert not (workdir / "runs").exists()  # no failed run left behind
    # examples and epochs are checked once the batch size is known, still before any training
    line = one_error(invoke("run", preset, "--headless", "--set", "budget={examples=100000000000000}"))
    assert "a run has at most 2,147,483,647 steps" in line
    assert Store.open(workdir / "runs").list_runs() == []


@pytest.mark.parametrize("toml_name, why", [('"a\\u0000b"', "control character '\\x00'"),
                                            ('"' + "x" * 300 + '"', "is not a usable study name")],
                         ids=["null-byte", "300-characters"])
def test_case_8_unusable_study_names_are_refused_when_the_preset_loads(workdir, write_preset, toml_name, why):
    preset = write_preset(text=tiny_preset_text().replace('study = "tiny"', f"study = {toml_name}"))
    for command in (("presets", "validate", preset), ("run", preset, "--headless")):
        assert why in one_error(invoke(*command))
    assert not (workdir / "runs").exists() and not (workdir / "exports").exists()


def test_case_8_a_deeply_nested_preset_is_refused_not_a_recursion_error(workdir, tmp_path):
    deep = tmp_path / "deep.toml"
    deep.write_text('workload = "twnet"\nx = ' + "[" * 100_000 + "]" * 100_000 + "\n")
    assert deep.stat().st_size > 200_000
    assert "nested too deeply" in one_error(invoke("presets", "validate", deep))
    shallow_but_deep = tmp_path / "tables.toml"
    shallow_but_deep.write_text('workload = "twnet"\nx = ' + "[" * 40 + "1" + "]" * 40 + "\n")
    assert "nested more than 16 deep" in one_error(invoke("presets", "validate", shallow_but_deep))


def damaged_store(root, studies=("alpha", "beta", "gamma")) -> dict[str, str]:
    """A store with one finished run per study; each run's losses fill overflow pages of their own."""
    store = Store.open(root)
    ids = {}
    for study in studies:
        text = tiny_preset_text(study=study, configs={"sgd": {"optimizer": "sgd", "learning_rate": 0.5,
                                                              "batch_size": 16}})
        run_id = store.create_run(study, "twnet", "study", text, None, {"device": "cpu"})
        store.add_unit(run_id, "sgd", {"optimizer": "sgd", "batch_size": 16}, 2, 4000, 1)
        rng = np.random.default_rng(len(ids))
        store.write_chunk(run_id, "sgd", -1, 0, np.zeros((2, 0)), 0, {"test_loss": np.ones(2)}, np.full(2, -1))
        store.write_chunk(run_id, "sgd", 0, 0, rng.random((2, 4000)) + 0.1, 4000,
                          {"test_loss": np.full(2, 0.5)}, np.full(2, -1))
        store.finish_unit(run_id, "sgd", "done", 1.0)
        store.finish_run(run_id, "done", 1.0)
        ids[study] = run_id
    store.close()
    return ids


def corrupt_chunk_pages(db, run_id: str) -> None:
    """Overwrite the overflow pages that hold this run's loss history with garbage, as a bad disk
    sector or a torn copy would."""
    conn = sqlite3.connect(db)
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA journal_mode=DELETE")
    pages = [p for (p,) in conn.execute("SELECT pageno FROM dbstat WHERE name='chunks' AND pagetype='overflow'"
                                         " ORDER BY pageno")]
    conn.close()
    # Runs were written one after another: the middle third of the overflow pages is beta's.
    third = len(pages) // 3
    with open(db, "r+b") as f:
        for p in pages[third:2 * third]:
            f.seek((p - 1) * page)
            f.write(b"\xff" * page)


def test_case_8_a_damaged_store_lists_every_run_marks_the_bad_and_the_rest_work(workdir):
    ids = damaged_store(workdir / "runs")
    corrupt_chunk_pages(workdir / "runs" / DB_NAME, ids["beta"])
    listed = invoke("runs", "--json")
    assert listed.exit_code == 0, listed.output
    rows = {r["study"]: r for r in json.loads(listed.stdout)}
    assert set(rows) == {"alpha", "beta", "gamma"}
    assert rows["beta"]["status"] == "damaged" and rows["beta"]["damaged"]
    assert rows["alpha"]["status"] == rows["gamma"]["status"] == "done"
    table = invoke("runs")
    assert table.exit_code == 0 and "damaged" in table.stdout and "Traceback" not in table.output

    shown = invoke("runs", "show", ids["alpha"])
    assert shown.exit_code == 0, shown.output
    bad = invoke("runs", "show", ids["beta"])
    assert bad.exit_code == 1 and "Traceback" not in bad.output and ids["beta"] in bad.stderr

    exported = invoke("export", "--json")
    assert exported.exit_code == 0, exported.output
    assert (workdir / "exports" / "alpha" / ids["alpha"] / "summary.json").exists()
    assert (workdir / "exports" / "gamma" / ids["gamma"] / "summary.json").exists()
    assert not (workdir / "exports" / "beta").exists()


def test_case_8_one_bad_metadata_row_leaves_optui_runs_usable(workdir):
    ids = damaged_store(workdir / "runs")
    conn = sqlite3.connect(workdir / "runs" / DB_NAME)
    conn.execute("UPDATE runs SET meta='{not json' WHERE id=?", (ids["beta"],))
    conn.execute("UPDATE chunks SET diverged_at=x'00ff' WHERE run_id=?", (ids["gamma"],))
    conn.commit()
    conn.close()
    listed = invoke("runs", "--json")
    assert listed.exit_code == 0, listed.output
    rows = {r["study"]: r for r in json.loads(listed.stdout)}
    assert rows["alpha"]["status"] == "done"
    assert rows["beta"]["status"] == rows["gamma"]["status"] == "damaged"
    assert "metadata is damaged" in rows["beta"]["error"]
    assert invoke("runs").exit_code == 0
    assert invoke("runs", "show", ids["alpha"]).exit_code == 0
    assert invoke("export", ids["alpha"], "--json").exit_code == 0
