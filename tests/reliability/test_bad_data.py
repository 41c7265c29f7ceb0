"""Case 8: bad data files are refused with one clear line, and a store that already holds a run
keeps it intact; awkward but valid data (an unknown followee, a user with no tokens) still runs.

A good TwNet study is run once through the real CLI; each refusal then runs against a copy of its
store. Refusals run the `optui run` command in-process (the same code as the installed CLI: the
data are read before any device work); the runs that train use the real CLI.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from optui.cli import app
from optui.store import Store

from support.checks import dump, one_error
from support.common import ROOT, Cli, cli_env, tiny_preset_text

N_USERS = 12
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049


# --- helpers ------------------------------------------------------------------------------------

def network(ghost: bool = False, silent: int | None = None) -> dict:
    """A small valid TwNet data set: user i follows i+2 and is followed by i+1, three topics.

    ghost: u0 also follows a user not in the data. silent: that user writes nothing."""
    users = [f"u{i}" for i in range(N_USERS)]
    ds = [{"user": u, "corpus": f"common words t{i % 3} t{i % 3} t{i % 3} t{i % 3}",
           "followers": [users[(i + 1) % N_USERS]], "followings": [users[(i + 2) % N_USERS]]}
          for i, u in enumerate(users)]
    if ghost:
        ds[0]["followings"].append("ghost")
    if silent is not None:
        ds[silent]["corpus"] = ""
    return {"dataset": ds}


def json_preset(folder: Path, data_path: Path, study: str) -> Path:
    text = tiny_preset_text(study=study, replicates=2,
                            data={"source": "json", "path": str(data_path), "min_count": 1})
    for line in ("users = 30\n", "vocab = 200\n", "topics = 3\n"):  # synthetic-only settings
        text = text.replace(line, "")
    path = folder / f"{study}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def run_in_process(preset: Path, runs: Path, *sets: str):
    args = ["run", str(preset), "--headless", "--store", str(runs), "--exports", str(runs.parent / "exports")]
    for s in sets:
        args += ["--set", s]
    return CliRunner().invoke(app, args)


@pytest.fixture(scope="module")
def good_store(tmp_path_factory, jax_cache_dir) -> Path:
    """runs/ holding one finished TwNet study, run through the real CLI."""
    cwd = tmp_path_factory.mktemp("good-study")
    data = cwd / "net.json"
    data.write_text(json.dumps(network()))
    result = Cli(cwd, cli_env(jax_cache_dir))("run", json_preset(cwd, data, "good"), "--headless", "--no-export")
    assert result.returncode == 0, result.stdout + result.stderr
    return cwd / "runs"


@pytest.fixture
def store(good_store, tmp_path) -> tuple[Path, list[str]]:
    """A copy of the good store for one test, and its content before the test."""
    runs = tmp_path / "runs"
    shutil.copytree(good_store, runs)
    before = dump(runs)
    assert any("INSERT INTO \"runs\"" in line and "'done'" in line for line in before)
    return runs, before


def assert_intact(runs: Path, before: list[str]) -> None:
    assert dump(runs) == before
    s = Store.open(runs)
    try:
        (run,) = s.list_runs()
        assert run["study"] == "good" and run["status"] == "done" and run["replicates_done"] == 4
    finally:
        s.close()


# --- MNIST IDX files ----------------------------------------------------------------------------

def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    return np.array([magic, *array.shape], dtype=">u4").tobytes() + array.astype(np.uint8).tobytes()


# A gzip header followed by a deflate block of the reserved type 3: zlib refuses it.
CORRUPT_GZIP = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + b"\x07" + b"\x00" * 40
FOREIGN = b"%PDF-1.4\n" + bytes(range(256)) * 40  # some other file under the MNIST name


@pytest.mark.parametrize("kind, fragment", [
    ("truncated", "truncated"),
    ("truncated.gz", "truncated"),
    ("foreign", "magic number"),
    ("foreign.gz", "magic number"),
    ("cut-stream.gz", "gzip"),
    ("corrupt-stream.gz", "gzip"),
])
def test_bad_idx_file_is_refused_and_the_store_kept(store, tmp_path, kind, fragment):
    runs, before = store
    rng = np.random.default_rng(0)
    images = idx_bytes(rng.integers(0, 256, (20, 28, 28)), IMAGE_MAGIC)
    labels = idx_bytes(rng.integers(0, 10, (20,)), LABEL_MAGIC)
    folder = tmp_path / "idx"
    folder.mkdir()
    (folder / "t10k-labels-idx1-ubyte").write_bytes(labels)
    content = {
        "truncated": images[:-100],
        "truncated.gz": gzip.compress(images[:-100]),
        "foreign": FOREIGN,
        "foreign.gz": gzip.compress(FOREIGN),
        "cut-stream.gz": gzip.compress(images)[:-40],
        "corrupt-stream.gz": CORRUPT_GZIP,
    }[kind]
    path = folder / ("t10k-images-idx3-ubyte" + (".gz" if kind.endswith(".gz") else ""))
    path.write_bytes(content)

    result = run_in_process(ROOT / "presets" / "mnist-offline.toml", runs, f"data.path={folder}",
                            "data.train_split=15", "data.test_split=5")
    msg = one_error(result)
    assert str(path) in msg and fragment in msg, msg
    if fragment == "magic number":
        assert str(IMAGE_MAGIC) in msg  # what was expected
    assert_intact(runs, before)


# --- TwNet JSON ---------------------------------------------------------------------------------

def _entries(**change) -> dict:
    doc = network()
    doc["dataset"][0].update(change)
    return doc


JSON_CASES = {
    "top-level-list": (network()["dataset"], ['{"dataset": [...]}']),
    "dataset-not-a-list": ({"dataset": {"u0": {}}}, ['{"dataset": [...]}']),
    "entry-not-an-object": ({"dataset": ["u0", "u1", "u2"]}, ["dataset[0]", "must be an object"]),
    "entry-missing-keys": ({"dataset": [{"user": "u0", "corpus": "a"}]}, ["dataset[0]", "followers, followings"]),
    "corpus-a-number": (_entries(corpus=3), ["dataset[0].corpus", "string or a list of tokens"]),
    "followers-a-string": (_entries(followers="u1"), ["dataset[0].followers", "list of user ids"]),
    "user-id-an-object": (_entries(user={"id": 0}), ["dataset[0].user", "string"]),
    "follower-id-a-list": (_entries(followers=[["u1"]]), ["dataset[0].followers", "user ids"]),
    "duplicate-user": (_entries(user="u1"), ["'u1' appears twice"]),
    "empty-dataset": ({"dataset": []}, ["at least 3 users", "found 0"]),
    "empty-corpus": ({"dataset": [{**e, "corpus": ""} for e in network()["dataset"]]},
                     ["no token occurs", "empty"]),
    "not-json": ('{"dataset": [', ["not valid JSON", "line 1"]),
    "nested-too-deep": ("[" * 100_000 + "]" * 100_000, ["not valid JSON"]),
    "number-too-long": ('{"dataset": [' + "1" * 5000 + "]}", ["not valid JSON"]),
}


@pytest.mark.parametrize("case", list(JSON_CASES))
def test_bad_twnet_json_is_refused_and_the_store_kept(store, tmp_path, case):
    runs, before = store
    doc, fragments = JSON_CASES[case]
    path = tmp_path / "net.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    msg = one_error(run_in_process(json_preset(tmp_path, path, "bad"), runs))
    assert f"{path}: " in msg, msg
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)
    assert_intact(runs, before)


# --- awkward but valid data: the run completes --------------------------------------------------

def warning_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning: ")]


def test_unknown_followee_is_skipped_with_a_warning(cli):
    data = cli.cwd / "net.json"
    data.write_text(json.dumps(network(ghost=True)))
    result = cli("run", json_preset(cli.cwd, data, "ghost"), "--headless", "--no-export")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    # One plain line, not Python's warning format with a source line under it.
    (line,) = [w for w in warning_lines(result.stderr) if "ghost" in w]
    assert str(data) in line and "skipped" in line
    assert "UserWarning" not in result.stderr
    s = Store.open(cli.cwd / "runs")
    (run,) = s.list_runs()
    s.close()
    assert run["status"] == "done" and run["replicates_done"] == run["replicates_total"] == 4
    assert any("ghost" in w for w in run["meta"]["data"]["warnings"])  # kept with the run


def test_user_without_tokens_trains_without_nan(cli):
    data = cli.cwd / "net.json"
    data.write_text(json.dumps(network(silent=5)))  # u5's word vector is all zeros
    result = cli("run", json_preset(cli.cwd, data, "silent"), "--headless", "--no-export")
    assert result.returncode == 0, result.stdout + result.stderr
    assert any("no token" in w for w in warning_lines(result.stderr)), result.stderr
    s = Store.open(cli.cwd / "runs")
    run = s.load_run("latest")
    s.close()
    assert run.status == "done"
    for unit in run.units.values():
        # A zero vector's cosine is defined as 0 with a finite gradient: a NaN anywhere would
        # reach the weights and every later loss, and mark the replicate diverged.
        assert unit.diverged == 0 and (unit.diverged_at == -1).all()
        assert unit.minibatch_loss.shape == (2, 40) and np.isfinite(unit.minibatch_loss).all()
        for metric in ("train_loss", "test_loss"):
            assert np.isfinite(unit.eval[metric]).all()
