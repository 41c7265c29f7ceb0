"""Round 3, cases 4 and 5: searches are planned like studies, and the estimate counts what grows
with the batch.

4: a search too big for memory is refused before its run exists (exit 2, with the numbers),
   as a study is, or trained in smaller vmapped calls.
5: a member's activations are measured per workload and batch size (XLA's memory analysis of
   its compiled step), so MNIST at batch 4,000 is no longer estimated at 54 MiB a replicate; the
   workload's real eval metrics are counted; a refusal never says "0.0 MiB".
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from optui.engine import memory
from optui.errors import PresetError
from optui.service import build_workload, plan_units, resolve_strategy
from optui.service.studies import fit_memory
from optui.study import presets
from support.common import ROOT, tiny_preset_text

SEARCH = """
[search.sgd]
optimizer = "sgd"
trials = 100
learning_rate = { low = 0.01, high = 1.0 }
batch_size = 16
"""


def test_case_4_a_search_too_big_is_refused_before_its_run_exists(cli, write_preset):
    preset = write_preset(extra=SEARCH)
    refused = cli("search", preset, "--headless", "--space", "sgd", "--trials", "100",
                  "--set", "search.sgd.replicates=10000", "--set", "budget.iterations=10000000")
    assert refused.returncode == 2, refused.stdout[-2000:] + refused.stderr
    err = refused.stderr
    assert "Traceback" not in err and "ran out of memory" not in err
    assert "search sgd (100 trials x 10,000 replicates at batch size 16" in err
    assert re.search(r"needs about [\d,.]+ (GiB|MiB)", err) and "is free" in err
    assert not (cli.cwd / "runs").exists()  # no run, no store
    assert json.loads(cli("runs", "--json").stdout) == []


def test_case_4_a_search_whose_group_fits_only_in_smaller_calls_gets_a_plan():
    from optui.service import SearchRunner

    study = presets.loads(tiny_preset_text(iterations=20, points=2, extra=SEARCH), "tiny.toml",
                          ["search.sgd.replicates=10"])
    runner = SearchRunner(study, "sgd", store=None)  # planning needs no store
    runner._prepare(None)
    from optui.study.search_space import fair_budget

    budget, _ = fair_budget(runner.space, study.budget)
    needs = memory.unit_needs(runner.workload, [_one(runner, budget)], study.eval_points)
    per_member = needs[0].working_bytes_per_member
    # Room for every member's state and a tenth of the group (1,000 members) in one call.
    free = int((1000 * needs[0].resident_per_member + 100 * per_member + memory.reserve_bytes())
               / memory.USABLE_SHARE)
    original = memory.free_memory
    memory.free_memory = lambda: (free, 100 * free, "test")
    try:
        with pytest.warns(UserWarning, match="training .* at a time"):
            runner._plan_memory(budget, 100)
    finally:
        memory.free_memory = original
    assert 50 <= runner.strategy.max_members <= 150


def _one(runner, budget):
    from types import SimpleNamespace

    p = runner.space.sample(0)
    return SimpleNamespace(name="sgd", optimizer="sgd", hyperparams={"learning_rate": p["learning_rate"]},
                           batch_size=16, steps=budget.steps(16, runner.workload.n_train), replicates=1000)


def test_case_5_activations_grow_with_the_batch_and_are_measured():
    study = presets.loads(tiny_preset_text(iterations=20, points=2), "tiny.toml")
    workload = build_workload(study)
    small = memory.activation_bytes(workload, "sgd", {"learning_rate": 0.1}, 8)
    large = memory.activation_bytes(workload, "sgd", {"learning_rate": 0.1}, 2000)
    assert 0 < small < large
    # measured per workload, not a multiple of its data
    assert large != int(memory.ACTIVATIONS_PER_DATA_BYTE * memory.data_bytes(workload))


def test_case_5_the_workloads_own_metrics_are_counted():
    study = presets.loads(tiny_preset_text(iterations=20, points=10), "tiny.toml")
    workload = build_workload(study)
    units = plan_units(study, workload)
    one = memory.unit_needs(workload, units, study.eval_points, metrics=1)[0]
    four = memory.unit_needs(workload, units, study.eval_points, metrics=4)[0]
    assert four.history_bytes - one.history_bytes == 8 * 3 * (study.eval_points + 1)


def test_case_5_a_refusal_never_says_zero():
    study = presets.loads(tiny_preset_text(replicates=1000, iterations=20, points=2), "tiny.toml")
    workload = build_workload(study)
    units = plan_units(study, workload)
    with pytest.raises(PresetError) as caught:
        fit_memory(resolve_strategy(study, workload), workload, units, study, free=(200_000, 10**12, "test"))
    message = str(caught.value)
    assert "0.0 MiB" not in message and "0 bytes" not in message
    assert re.search(r"\(\d[\d,.]* (KiB|MiB|bytes) per replicate", message), message


def test_case_5_mnist_at_a_large_batch_is_estimated_by_its_activations(shared_data):
    preset = ROOT / "presets" / "mnist-offline.toml"
    study = presets.load(preset, [f"data.path={shared_data / 'mnist-t10k'}", "replicates.count=8",
                                  "configs.adam-default.batch_size=4000"])
    workload = build_workload(study)
    units = plan_units(study, workload, ["adam-default"])
    [need] = memory.unit_needs(workload, units, study.eval_points, metrics=len(study.spec.metrics))
    assert need.per_replicate > 2 * 2**30  # the report measured 3.56 GB peak RSS for one replicate
    # 4 GiB free (2 usable): not even one replicate at batch 4,000 fits; refused, saying why
    with pytest.raises(PresetError) as caught:
        fit_memory(resolve_strategy(study, workload), workload, units, study, free=(4 * 2**30, 64 * 2**30, "test"))
    message = str(caught.value)
    assert "of activations in a call at batch size 4,000" in message and "smaller batch size" in message
