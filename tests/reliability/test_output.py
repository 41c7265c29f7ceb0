"""Cases 2 and 10: output is a view of a run, and no terminal means no interactive session.

Case 2: `optui run ... | head -1` (a pipe closed after one line) and `> /dev/full` (every write
fails) used to kill the study: exit 1 and "failed", or a traceback with the run left "running".
Training goes on; the failure is said once on stderr.
Case 10: `optui run PRESET < /dev/null > log` without --headless started the interactive session
into the log and hung. With no terminal it runs headless; `optui ui` exits 2 saying why.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from support.common import optui_command


def runs(cli) -> list[dict]:
    return json.loads(cli("runs", "--json").stdout)


def test_case_2_a_closed_stdout_does_not_stop_the_run(cli, write_preset):
    preset = write_preset(iterations=20, points=4, replicates=2)
    command = " ".join(f"'{a}'" for a in optui_command() + ["run", str(preset), "--headless"])
    result = subprocess.run(["bash", "-c", f"set -o pipefail; {command} | head -1"], cwd=cli.cwd,
                            env=cli.env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(result.stdout.splitlines()) == 1
    assert result.stderr.count("standard output failed") == 1, result.stderr
    assert "Traceback" not in result.stderr
    [run] = runs(cli)
    assert run["status"] == "done" and run["error"] is None
    assert (cli.cwd / "exports" / "tiny" / "latest" / "summary.json").exists()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_case_2_a_full_stdout_does_not_stop_the_run(cli, write_preset):
    preset = write_preset(iterations=20, points=4, replicates=2)
    with open("/dev/full", "w") as full:
        proc = subprocess.run(optui_command() + ["run", str(preset), "--headless", "--no-export"], cwd=cli.cwd,
                              env=cli.env, stdout=full, stderr=subprocess.PIPE, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert "No space left on device" in proc.stderr and "Traceback" not in proc.stderr
    [run] = runs(cli)
    assert run["status"] == "done"


def test_case_10_no_terminal_runs_headless(cli, write_preset):
    preset = write_preset(iterations=20, points=4, replicates=2)
    log = cli.cwd / "log"
    with open(os.devnull) as stdin, open(log, "w") as stdout:
        proc = subprocess.run(optui_command() + ["run", str(preset), "--no-export"], cwd=cli.cwd, env=cli.env,
                              stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr + log.read_text()
    assert "running headless" in proc.stderr
    assert "running tiny as run" in log.read_text() and "\x1b[?1049h" not in log.read_text()
    assert runs(cli)[0]["status"] == "done"


def test_case_10_the_session_without_a_terminal_exits_2(cli):
    for args in ([], ["ui"]):
        with open(os.devnull) as stdin:
            proc = subprocess.run(optui_command() + args, cwd=cli.cwd, env=cli.env, stdin=stdin,
                                  capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "needs a terminal" in proc.stderr and "--headless" in proc.stderr
