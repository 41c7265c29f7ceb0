"""Case 10: `optui import FILE` refuses any pickle that names a global outside the allow-list
(numpy's array reconstruction, scalars and dtypes, builtin containers), before anything runs.

Each payload would create a marker file if it ran. The refusal exits 2 with one line naming the
refused global, no marker appears, and the store keeps exactly what it held (an earlier import).
The cases run the `optui import` command in-process (the same code as the installed CLI, so a
payload that ran would run here); one runs the real CLI in a subprocess.
"""

from __future__ import annotations

import builtins
import os
import pickle
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from optui.cli import app
from optui.store import Store

from support.checks import dump


class Shell:
    """os.system: pickled as posix.system on Linux."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class Exec:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",))


class Spawn:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (subprocess.Popen, (["touch", str(self.marker)],))


class Sneaky:
    """No __reduce__ of its own: unpickling it imports this module and calls __setstate__."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __setstate__(self, state):
        open(state["marker"], "w").close()


def report(payload) -> dict:
    """A report-layout dict with real histories, and the payload hidden beside them."""
    return {"sgd_default_loss_histories": [[1.0, 0.5], [0.9, 0.4]], "sgd_default_test_losses": payload}


def object_array(payload) -> np.ndarray:
    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = 0.5, payload
    return arr


def in_reconstruct(marker: Path) -> bytes:
    """Protocol 0 by hand: numpy's allowed _reconstruct(ndarray, (0,), dtype), with the dtype
    argument computed by posix.system."""
    return (b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n(I0\nt"
            b"cposix\nsystem\n(Vtouch " + str(marker).encode() + b"\ntRtR.")


PAYLOADS = {
    # name: (build(marker) -> bytes, the global the message must name)
    "os.system": (lambda m: pickle.dumps(report(Shell(m))), f"{os.system.__module__}.system"),
    "builtins.exec": (lambda m: pickle.dumps(report(Exec(m)), protocol=4), "builtins.exec"),
    "builtins.exec-protocol-2": (lambda m: pickle.dumps(report(Exec(m)), protocol=2), ".exec"),
    "subprocess.Popen": (lambda m: pickle.dumps(report(Spawn(m))), "subprocess.Popen"),
    "posix.system-by-hand": (lambda m: b"cposix\nsystem\n(Vtouch " + str(m).encode() + b"\ntR.",
                             "posix.system"),
    "custom-class": (lambda m: pickle.dumps(report(Sneaky(m))), f"{Sneaky.__module__}.Sneaky"),
    "inside-an-ndarray": (lambda m: pickle.dumps(report(object_array(Shell(m)))),
                          f"{os.system.__module__}.system"),
    "inside-an-ndarray-protocol-2": (lambda m: pickle.dumps(object_array(Exec(m)), protocol=2), ".exec"),
    "in-reconstruct-arguments": (in_reconstruct, "posix.system"),
}


@pytest.fixture
def store(tmp_path) -> tuple[Path, list[str]]:
    """A store holding one good import, and its content."""
    good = tmp_path / "mlruns.p"
    good.write_bytes(pickle.dumps({"sgd_default_loss_histories": np.array([[1.0, 0.5], [0.8, 0.3]]),
                                   "sgd_default_test_losses": np.array([0.4, 0.3], np.float32)}))
    runs = tmp_path / "runs"
    result = CliRunner().invoke(app, ["import", str(good), "--store", str(runs)])
    assert result.exit_code == 0, result.output
    before = dump(runs)
    s = Store.open(runs)
    assert len(s.list_runs()) == 1
    s.close()
    return runs, before


def ran(marker: Path, wait: float = 0.0) -> bool:
    """Whether the payload ran; wait gives a spawned process a moment to create its marker."""
    deadline = time.monotonic() + wait
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return marker.exists()


def refused_line(output: str, stderr: str) -> str:
    assert "Traceback" not in output + stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.mark.parametrize("case", list(PAYLOADS))
def test_pickle_naming_a_forbidden_global_is_refused(store, tmp_path, case):
    runs, before = store
    build, refused = PAYLOADS[case]
    marker = tmp_path / "ran"
    path = tmp_path / "evil.p"
    path.write_bytes(build(marker))
    result = CliRunner().invoke(app, ["import", str(path), "--store", str(runs)])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    line = refused_line(result.stdout, result.stderr)
    assert str(path) in line and "refused" in line and refused in line, line
    assert not ran(marker, wait=0.5 if "Popen" in refused else 0.0)
    assert dump(runs) == before  # no run added, none changed


def test_real_cli_refuses_a_code_running_pickle(cli, store, tmp_path):
    runs, before = store
    marker = tmp_path / "ran"
    path = tmp_path / "evil.p"
    path.write_bytes(pickle.dumps(report(object_array(Spawn(marker)))))
    result = cli("import", path, "--store", runs, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    line = refused_line(result.stdout, result.stderr)
    assert str(path) in line and "subprocess.Popen" in line and "nothing was run" in line
    assert not ran(marker, wait=0.5)
    assert dump(runs) == before
