"""Plain helpers every kind of test uses: the checkout's root, tiny presets, running the CLI in
a subprocess (with a shared JAX cache), and reading a store's chunk counts while a run goes on."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
import pytest

ROOT = Path(__file__).resolve().parents[2]


SHARED_DATA = ROOT.parent / "shared" / "data"


TINY_DATA = {"users": 30, "vocab": 200, "topics": 3}


# Two configs with different optimisers: the run compiles two programs, as real studies do.
TINY_CONFIGS: dict[str, dict[str, Any]] = {
    "sgd": {"optimizer": "sgd", "learning_rate": 0.5, "batch_size": 16},
    "adam": {"optimizer": "adam", "learning_rate": 0.01, "b1": 0.9, "b2": 0.999, "batch_size": 16},
}


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


def tiny_preset_text(study: str = "tiny", iterations: int = 40, points: int = 4, replicates: int = 3,
                     seed: int = 0, configs: dict[str, dict[str, Any]] | None = None,
                     data: dict[str, Any] | None = None, compare: bool = True, extra: str = "") -> str:
    """A small, valid TwNet study as TOML text."""
    configs = TINY_CONFIGS if configs is None else configs
    lines = [f"study = {_toml_value(study)}", 'workload = "twnet"', "", "[data]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in {**TINY_DATA, **(data or {})}.items()]
    lines += ["", "[budget]", f"iterations = {iterations}", "", "[eval]", f"points = {points}", "",
              "[replicates]", f"count = {replicates}", f"seed = {seed}"]
    for name, cfg in configs.items():
        lines += ["", f"[configs.{name}]"] + [f"{k} = {_toml_value(v)}" for k, v in cfg.items()]
    if compare and len(configs) >= 2:
        names = list(configs)[:2]
        lines += ["", "[[compare]]", f"configs = {_toml_value(names)}", 'metric = "test_loss"']
    return "\n".join(lines) + "\n" + extra


def optui_command() -> list[str]:
    """The installed entry point next to this interpreter, else `python -m optui.cli`."""
    exe = Path(sys.executable).with_name("optui")
    if exe.exists() and os.access(exe, os.X_OK):
        return [str(exe)]
    return [sys.executable, "-m", "optui.cli"]


def cli_env(jax_cache: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["JAX_PLATFORMS"] = "cpu"
    env["COLUMNS"] = "250"  # rich wraps at 80 columns when it is not on a terminal
    env["NO_COLOR"] = "1"
    if jax_cache is not None:
        env["JAX_COMPILATION_CACHE_DIR"] = str(jax_cache)
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    return env


SLOW_CHUNKS = """
import time
from optui.engine import core
_run_calls = core.run_calls
core.TARGET_CALL_SECONDS = 0.0  # a slow device: one eval block per call
def run_calls(*args, **kwargs):
    for item in _run_calls(*args, **kwargs):
        time.sleep(0.3)
        yield item
core.run_calls = run_calls
"""


@dataclass
class Cli:
    """Runs `optui ...` with its working directory set to `cwd`."""

    cwd: Path
    env: dict[str, str]

    def __call__(self, *args: str, timeout: float = 240, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(optui_command() + [str(a) for a in args], cwd=cwd or self.cwd, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def popen(self, *args: str, throttle_s: float = 0.0) -> subprocess.Popen:
        """Start `optui ARGS` in the background. throttle_s > 0 pauses before each chunk is written,
        so a test can stop the run part-way at a predictable moment; the results are unchanged."""
        if throttle_s > 0:
            code = ("import sys, time\n"
                    "from optui import store\n"
                    "from optui.engine import core\n"
                    "core.TARGET_CALL_SECONDS = 0.0\n"  # a slow device: one chunk per call and write
                    "_write = store.Store.write_chunks\n"
                    "def slow_write(self, *a, **k):\n"
                    f"    time.sleep({throttle_s!r})\n"
                    "    return _write(self, *a, **k)\n"
                    "store.Store.write_chunks = slow_write\n"
                    "from optui.cli import app\n"
                    "sys.argv[0] = 'optui'\n"
                    "app()\n")
            cmd = [sys.executable, "-c", code]
        else:
            cmd = optui_command()
        return subprocess.Popen(cmd + [str(a) for a in args], cwd=self.cwd, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def chunk_counts(db: Path) -> dict[str, int]:
    """Chunks written per unit, read while another process writes (WAL allows it)."""
    if not db.exists():
        return {}
    try:
        conn = sqlite3.connect(db, timeout=5)
        try:
            return dict(conn.execute("SELECT unit, COUNT(*) FROM chunks GROUP BY unit").fetchall())
        finally:
            conn.close()
    except sqlite3.OperationalError:  # tables not created yet
        return {}


def wait_for_chunks(proc: subprocess.Popen, db: Path, unit: str, at_least: int, timeout: float = 180) -> int:
    """Poll the store until `unit` has at_least chunks; fails if the process ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = chunk_counts(db).get(unit, 0)
        if n >= at_least:
            return n
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"optui exited ({proc.returncode}) before {at_least} chunks of {unit}:\n{out}\n{err}")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    pytest.fail(f"timed out waiting for {at_least} chunks of {unit}")
