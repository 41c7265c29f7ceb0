"""Case 4: --resume checks what it resumes.

A run records a fingerprint of its resolved preset and of its data when it starts. Resuming it
with edited data, another preset, other --set values, --config or --replicates is refused with
exit 2 and a message naming what changed, and the run is left as it was; settings that only
decide memory use (engine.replicates_per_batch) may change.
"""

from __future__ import annotations

import json
import re
import signal
import time

import pytest

from optui.store import Store

from support.checks import dump, interrupted_run
from support.common import chunk_counts, tiny_preset_text


def network(users: int = 12, topic_words: int = 3) -> dict:
    names = [f"u{i}" for i in range(users)]
    return {"dataset": [
        {"user": u, "corpus": "common words " + " ".join([f"t{i % topic_words}"] * 4),
         "followers": [names[(i + 1) % users]], "followings": [names[(i + 2) % users]]}
        for i, u in enumerate(names)]}


@pytest.fixture
def json_run(tmp_path):
    """An interrupted study on a JSON data file: (folder, preset, data file, run id)."""
    data = tmp_path / "net.json"
    data.write_text(json.dumps(network()))
    text = tiny_preset_text(study="net", iterations=24, points=4, replicates=2,
                            data={"source": "json", "path": str(data), "min_count": 1})
    for line in ("users = 30\n", "vocab = 200\n", "topics = 3\n"):
        text = text.replace(line, "")
    preset = tmp_path / "net.toml"
    preset.write_text(text)
    run_id = interrupted_run(preset, tmp_path / "runs")
    return tmp_path, preset, data, run_id


def resume(cli, preset, run_id, *extra):
    return cli("run", preset, "--headless", "--no-export", "--resume", run_id, *extra)


def refused(result) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "cannot resume run" in result.stderr
    return result.stderr


def test_case_4_edited_data_is_refused(cli, json_run):
    folder, preset, data, run_id = json_run
    before = dump(folder / "runs")
    data.write_text(json.dumps(network(users=14)))  # two more users: more edges
    err = refused(resume(cli, preset, run_id))
    assert "data changed" in err and "users 12 -> 14" in err
    assert dump(folder / "runs") == before  # the run is left as it was


def test_case_4_a_smaller_vocabulary_is_refused_not_a_traceback(cli, json_run):
    folder, preset, data, run_id = json_run
    data.write_text(json.dumps(network(topic_words=2)))  # one topic word fewer
    err = refused(resume(cli, preset, run_id))
    assert "data changed" in err and "tokens" in err


def test_case_4_a_different_preset_or_set_is_refused_naming_the_key(cli, json_run):
    folder, preset, _, run_id = json_run
    text = preset.read_text()
    other = folder / "edited.toml"
    other.write_text(text.replace("learning_rate = 0.5", "learning_rate = 0.25"))
    err = refused(resume(cli, other, run_id))
    assert "configs.sgd.learning_rate was 0.5, now 0.25" in err

    err = refused(resume(cli, preset, run_id, "--set", "budget.iterations=48"))
    assert "budget.iterations was 24, now 48" in err


def test_case_4_config_and_replicates_options_are_checked(cli, json_run):
    _, preset, _, run_id = json_run
    err = refused(resume(cli, preset, run_id, "--config", "sgd"))
    assert "--config sgd: the run trains sgd, adam" in err
    err = refused(resume(cli, preset, run_id, "--replicates", "3"))
    assert "--replicates 3: the run has 2 replicates" in err


def test_case_4_memory_settings_may_change_and_the_same_preset_resumes(cli, json_run):
    folder, preset, _, run_id = json_run
    result = resume(cli, preset, run_id, "--set", "engine.replicates_per_batch=1")
    assert result.returncode == 0, result.stdout + result.stderr
    run = Store.open(folder / "runs").load_run(run_id)
    assert run.status == "done" and all(u.minibatch_loss.shape == (2, 24) for u in run.units.values())


SPACE = ("\n[search.adam]\noptimizer = \"adam\"\ntrials = 3\nseed = 1\n"
         "learning_rate = { low = 0.001, high = 0.1, scale = \"log\" }\nbatch_size = 16\n")


def wait_for_any_chunks(proc, db, at_least: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while sum(chunk_counts(db).values()) < at_least:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out waiting for chunks"
        time.sleep(0.05)


def test_case_4_a_search_resumed_with_another_space_is_refused(cli, write_preset):
    preset = write_preset(iterations=40, points=8, replicates=1, extra=SPACE)
    proc = cli.popen("search", preset, "--headless", "--no-export", throttle_s=0.3)
    wait_for_any_chunks(proc, cli.cwd / "runs" / "optui.sqlite", 2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    run_id = re.search(r"--resume (\S+)", out).group(1)

    preset.write_text(preset.read_text().replace("high = 0.1,", "high = 0.5,"))
    err = refused(cli("search", preset, "--headless", "--no-export", "--resume", run_id))
    assert "search.adam.intervals.learning_rate.high was 0.1, now 0.5" in err
