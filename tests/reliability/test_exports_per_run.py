"""Case 3: exports per run.

`optui export` with no ids took each study's latest run even when it failed (a partial run
exported over a complete one, silently), and three `--config` runs left one folder holding
figures of runs 1 and 2 beside run 3's summary. Now every run exports to a folder of its own,
exports/<study>/<run-id>/, with exports/<study>/latest pointing at the newest finished run; the
default picks that run and says which newer runs it passed over.
"""

from __future__ import annotations

import json
import time

from support.checks import interrupted_run, recorded_run


def test_case_3_three_config_runs_do_not_mix(cli, write_preset):
    preset = write_preset(iterations=12, points=2, replicates=2)
    ids = []
    for config in ("sgd", "adam", "sgd"):
        result = cli("run", preset, "--headless", "--config", config)
        assert result.returncode == 0, result.stdout + result.stderr
        ids.append(json.loads(cli("runs", "--json").stdout)[-1]["id"])
    study = cli.cwd / "exports" / "tiny"
    assert sorted(p.name for p in study.iterdir()) == sorted(ids + ["latest"])
    for run_id, config in zip(ids, ("sgd", "adam", "sgd")):
        names = {p.name for p in (study / run_id).iterdir()}
        assert f"config-{config}.png" in names
        assert {n for n in names if n.startswith("config-")} == {f"config-{config}.png"}  # nothing of the others
        assert json.loads((study / run_id / "summary.json").read_text())["run_id"] == run_id
    assert (study / "latest").resolve() == (study / ids[-1]).resolve()


def test_case_3_default_export_takes_the_newest_finished_run_and_says_so(cli, write_preset):
    preset = write_preset(iterations=12, points=3, replicates=2)
    done = cli("run", preset, "--headless", "--no-export")
    assert done.returncode == 0, done.stderr
    finished = json.loads(cli("runs", "--json").stdout)[0]["id"]
    partial = interrupted_run(preset, cli.cwd / "runs", chunks=2)  # newer, and only part done

    result = cli("export", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"run {partial} is interrupted" in result.stdout and f"optui export {partial}" in result.stdout
    study = cli.cwd / "exports" / "tiny"
    assert [p.name for p in study.iterdir() if p.name != "latest"] == [finished]
    assert json.loads((study / "latest" / "summary.json").read_text())["run_id"] == finished

    by_id = cli("export", partial, "--json")  # asked for by id: exported as it stands, latest unmoved
    assert by_id.returncode == 0, by_id.stdout + by_id.stderr
    assert "interrupted: as it stands" in by_id.stdout
    assert json.loads((study / partial / "summary.json").read_text())["status"] == "interrupted"
    assert (study / "latest").resolve().name == finished


def test_case_3_export_of_an_older_run_keeps_latest_on_the_newest(cli):
    first = recorded_run(cli.cwd / "runs")
    time.sleep(1.1)  # run ids begin with the second they were made
    second = recorded_run(cli.cwd / "runs")
    assert cli("export", second, "--json").returncode == 0
    assert cli("export", first, "--json").returncode == 0
    study = cli.cwd / "exports" / "tiny"
    assert (study / "latest").resolve().name == second
    assert sorted(p.name for p in study.iterdir()) == sorted([first, second, "latest"])
