"""Case 7: bad presets, in the file or through --set, are refused before any device work.

Every refusal exits 2 with one line on stderr (no traceback) naming the file, the key and what is
allowed. Most cases run the `optui presets validate` command in-process (the same code as the
installed CLI); two run the real CLI in a subprocess, `run --headless` included.
"""

from __future__ import annotations

import os
import re
import threading

import pytest
from typer.testing import CliRunner

from optui.optim import registry as optimizers
from optui.study import presets
from optui.cli import app
from optui.store import Store

from support.checks import one_error
from support.common import tiny_preset_text

BASE = tiny_preset_text()  # sgd and adam configs, [[compare]] sgd vs adam
ALL_OPTIMIZERS = list(optimizers.OPTIMIZERS)


def search(**params: str) -> str:
    """BASE plus one adam search space; params are TOML values, e.g. b1='{ low = 0, high = 1 }'."""
    lines = ["", "[search.s]", 'optimizer = "adam"', "batch_size = 8"]
    lines += [f"{k} = {v}" for k, v in params.items()]
    return BASE + "\n".join(lines) + "\n"


def validate(path, *sets: str):
    args = ["presets", "validate", str(path)]
    for s in sets:
        args += ["--set", s]
    return CliRunner().invoke(app, args)


def write(tmp_path, text: str, name: str = "bad.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- TOML syntax --------------------------------------------------------------------------------

def _duplicate_key() -> tuple[str, int]:
    lines = BASE.splitlines()
    at = lines.index("count = 3")
    lines.insert(at + 1, "count = 4")
    return "\n".join(lines) + "\n", at + 2


def _duplicate_table() -> tuple[str, int]:
    text = BASE + "\n[budget]\niterations = 5\n"
    return text, text.splitlines().index("[budget]", BASE.splitlines().index("[budget]") + 1) + 1


@pytest.mark.parametrize("text, line", [
    ('workload = "twnet"\n[budget\niterations = 3\n', 2),
    _duplicate_key(),
    _duplicate_table(),
], ids=["malformed", "duplicate-key", "duplicate-table"])
def test_toml_errors_give_line_and_column(tmp_path, text, line):
    path = write(tmp_path, text)
    msg = one_error(validate(path))
    assert str(path) in msg and "not valid TOML" in msg
    assert re.search(rf"line {line}, column \d+", msg), msg


# --- values in the file -------------------------------------------------------------------------

@pytest.mark.parametrize("text, fragments", [
    pytest.param("colour = 1\n" + BASE, ["colour", "allowed top-level keys", "budget", "configs"],
                 id="unknown-top-level-key"),
    pytest.param(BASE.replace("[replicates]\n", "[replicates]\ncuont = 3\n"),
                 ["replicates.cuont", "count, seed"], id="unknown-section-key"),
    pytest.param(BASE.replace("b1 = 0.9", "beta1 = 0.9"), ["configs.adam.beta1", "b1", "b2"],
                 id="unknown-config-key"),
    pytest.param(search(learning_rate="{ low = 0.1, high = 1.0, step = 2 }"),
                 ["search.s.learning_rate.step", "low, high, scale"], id="unknown-interval-key"),
    pytest.param(BASE.replace("learning_rate = 0.5", 'learning_rate = "fast"'),
                 ["configs.sgd.learning_rate", "(0, inf)", "'fast'"], id="string-for-number"),
    pytest.param(BASE.replace("count = 3", "count = true"), ["replicates.count", "[1, 100000]", "True"],
                 id="bool-for-int"),
    pytest.param(BASE.replace("batch_size = 16", "batch_size = 1.5", 1), ["configs.sgd.batch_size", "integer"],
                 id="fraction-for-int"),
    pytest.param(BASE.replace('workload = "twnet"', 'workload = ["twnet"]'),
                 ["workload", "installed: ", "mnist, twnet", "got ['twnet']"], id="list-for-workload"),
    pytest.param(search().replace('optimizer = "adam"\nbatch_size = 8', 'optimizer = ["adam"]\nbatch_size = 8'),
                 ["search.s.optimizer", *ALL_OPTIMIZERS, "module:factory", "got ['adam']"], id="list-for-search-optimizer"),
    pytest.param(BASE + '\n[[compare]]\nconfigs = ["sgd", "adam"]\nlabels = [1, 2]\n',
                 ["compare[1].labels", "string"], id="numbers-for-labels"),
    pytest.param(BASE.replace("learning_rate = 0.5", "learning_rate = nan"),
                 ["configs.sgd.learning_rate", "finite"], id="nan"),
    pytest.param(BASE.replace("b2 = 0.999", "b2 = -inf"), ["configs.adam.b2", "finite"], id="inf"),
    pytest.param(search(learning_rate="{ low = nan, high = 1.0 }"), ["search.s.learning_rate.low", "finite"],
                 id="nan-in-interval"),
    pytest.param(BASE.replace("b1 = 0.9", "b1 = 1.5"), ["configs.adam.b1", "[0, 1)", "1.5"],
                 id="b1-out-of-range"),
    pytest.param(BASE.replace("count = 3", "count = 0"), ["replicates.count", "[1, 100000]", "got 0"],
                 id="count-out-of-range"),
    pytest.param(BASE.replace("iterations = 40", "epochs = 1e300"), ["budget.epochs", "(0, 1000000]"],
                 id="epochs-out-of-range"),
    pytest.param(search(learning_rate='{ low = 1.0, high = 0.1, scale = "log" }'),
                 ["search.s.learning_rate", "low (1) must not exceed high (0.1)"], id="inverted-interval"),
    pytest.param(search().replace("batch_size = 8", "batch_size = { low = 64, high = 8, int = true }") +
                 "learning_rate = 0.1\n", ["search.s.batch_size", "low (64) must not exceed high (8)"],
                 id="inverted-batch-interval"),
    pytest.param(search(learning_rate="0.1", b1='{ low = 0.0, high = 0.9, scale = "log" }'),
                 ["search.s.b1.low", 'must be > 0 with scale = "log"'], id="log-interval-from-zero"),
    pytest.param(search(learning_rate='{ low = -1.0, high = 1.0, scale = "log" }'),
                 ["search.s.learning_rate.low", "(0, inf)", "-1.0"], id="log-interval-negative"),
    pytest.param(BASE + '\n[[compare]]\nconfigs = ["sgd", "nope"]\n',
                 ["compare[1].configs", "'nope'", "known: sgd, adam"], id="compare-missing-config"),
    pytest.param(BASE.replace('workload = "twnet"', 'workload = "imagenet"'),
                 ['workload = "imagenet"', "mnist, twnet", "package.module:factory"], id="unknown-workload"),
    pytest.param(BASE.replace('optimizer = "sgd"', 'optimizer = "sgdd"'),
                 ["configs.sgd.optimizer", "'sgdd'", *ALL_OPTIMIZERS], id="unknown-optimizer"),
    pytest.param(search().replace('optimizer = "adam"\nbatch_size = 8', 'optimizer = "adamm"\nbatch_size = 8'),
                 ["search.s.optimizer", "'adamm'", *ALL_OPTIMIZERS], id="unknown-search-optimizer"),
])
def test_bad_value_names_file_key_and_what_is_allowed(tmp_path, text, fragments):
    path = write(tmp_path, text)
    msg = one_error(validate(path))
    assert f"{path}: " in msg, msg
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)


# --- size ---------------------------------------------------------------------------------------

def _feed(fifo, data: bytes) -> threading.Thread:
    def write_all():
        try:
            with open(fifo, "wb") as f:
                f.write(data)
        except BrokenPipeError:  # the reader stopped at the limit
            pass

    t = threading.Thread(target=write_all, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("kind", ["file", "pipe"])
def test_oversized_preset_is_refused(tmp_path, kind):
    # A valid preset padded with a comment past the limit. A pipe (`<(...)` in a shell) reports
    # size 0, so the limit must hold while reading, not only from the file's size.
    data = (BASE + "# " + "x" * (presets.MAX_PRESET_BYTES + 10) + "\n").encode()
    path = tmp_path / "big.toml"
    if kind == "file":
        path.write_bytes(data)
        result = validate(path)
    else:
        os.mkfifo(path)
        writer = _feed(path, data)
        try:
            result = validate(path)
        finally:
            os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))  # frees a writer never read
            writer.join(10)
    msg = one_error(result)
    assert str(path) in msg and "limit" in msg and f"{presets.MAX_PRESET_BYTES:,}" in msg


# --- --set overrides ----------------------------------------------------------------------------

OVERRIDES = [
    (["configs.sgd.learning_rate=nan"], ["configs.sgd.learning_rate", "finite"]),
    (["budget.iterations=1e400"], ["budget.iterations", "finite"]),
    (["configs.adam.b1=1.5"], ["configs.adam.b1", "[0, 1)", "1.5"]),
    (["replicates.cuont=3"], ["replicates.cuont", "count, seed"]),
    (["replicates.count=many"], ["replicates.count", "[1, 100000]", "'many'"]),
    (["workload=imagenet"], ['workload = "imagenet"', "mnist, twnet"]),
    (["configs.sgd.optimizer=sgdd"], ["configs.sgd.optimizer", *ALL_OPTIMIZERS]),
    (["search.s={optimizer='adam', batch_size=8, learning_rate={low=1.0, high=0.1}}"],
     ["search.s.learning_rate", "must not exceed"]),
    (["search.s.optimizer=adam", "search.s.batch_size=8", "search.s.learning_rate=0.1",
      "search.s.b1={low=0.0, high=0.5, scale='log'}"], ["search.s.b1.low", "> 0 with scale"]),
    (["compare=[{configs=['nope']}]"], ["compare[0].configs", "'nope'", "known: sgd, adam"]),
    (["replicates.count"], ["KEY=VALUE"]),
    (["workload.x=1"], ["workload", "not a table"]),
]


@pytest.mark.parametrize("sets, fragments", OVERRIDES, ids=[" ".join(s)[:48] for s, _ in OVERRIDES])
def test_bad_override_names_the_key_and_the_set(tmp_path, sets, fragments):
    path = write(tmp_path, BASE, "good.toml")
    msg = one_error(validate(path, *sets))
    # The file is fine: the message must say the value came from --set, not from the file.
    assert "--set" in msg, msg
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)


def test_override_error_names_the_offending_set(tmp_path):
    path = write(tmp_path, BASE, "good.toml")
    msg = one_error(validate(path, "replicates.count=2", "configs.adam.b1=1.5"))
    assert f"{path}: configs.adam.b1" in msg and "--set configs.adam.b1=1.5" in msg
    assert "replicates.count=2" not in msg  # the good override is not blamed


def test_error_in_the_file_is_reported_as_the_files(tmp_path):
    path = write(tmp_path, BASE.replace("b1 = 0.9", "b1 = 1.5"))
    msg = one_error(validate(path, "replicates.count=2"))
    assert f"{path}: configs.adam.b1" in msg and "--set" not in msg


# --- the real CLI -------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["validate", "run"])
def test_real_cli_refuses_before_device_work(cli, write_preset, command):
    if command == "validate":
        path = write_preset(text='workload = "twnet"\n[budget\n')
        args, fragments = ["presets", "validate", path], ["not valid TOML", "line 2, column"]
    else:
        path = write_preset()
        args = ["run", path, "--headless", "--set", "configs.adam.b1=1.5"]
        fragments = ["configs.adam.b1", "[0, 1)", "--set configs.adam.b1=1.5"]
    result = cli(*args, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert str(path) in lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    # Nothing was started: no run recorded (the store may not even exist).
    runs = cli.cwd / "runs"
    assert not runs.exists() or Store.open(runs).list_runs() == []
