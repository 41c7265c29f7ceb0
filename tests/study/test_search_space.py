"""Search spaces: parsing, validation errors that name file and key, and deterministic draws."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from optui.study import presets
from optui.errors import PresetError
from optui.study.search_space import Interval, parse_space

ROOT = Path(__file__).resolve().parents[2]
FILE = "space.toml"

ADAM = {
    "optimizer": "adam", "trials": 20, "seed": 3,
    "learning_rate": {"low": 0.1, "high": 100.0, "scale": "log"},
    "b1": {"low": 0.5, "high": 0.99}, "b2": {"low": 0.5, "high": 0.99},
    "batch_size": {"low": 12, "high": 2049, "int": True},
}


def space(**changes):
    raw = {**ADAM, **changes}
    return parse_space("adam", {k: v for k, v in raw.items() if v is not None}, FILE)


# -- sampling ------------------------------------------------------------------------------------

def test_draws_stay_inside_bounds_with_the_right_types():
    s = space()
    trials = s.sample_many(300)
    for t in trials:
        assert 0.1 <= t["learning_rate"] <= 100
        assert 0.5 <= t["b1"] <= 0.99 and 0.5 <= t["b2"] <= 0.99
        assert isinstance(t["batch_size"], int) and 12 <= t["batch_size"] <= 2049
        assert t["eps"] == 1e-8  # not in the space: the optimiser's default
    sizes = {t["batch_size"] for t in trials}
    assert len(sizes) > 100  # integers spread over the range, not a handful of values


def test_log_scale_is_uniform_in_log_space_and_uniform_is_not():
    lr = np.array([t["learning_rate"] for t in space().sample_many(2000)])
    # Log-uniform on [0.1, 100]: a third of the draws in each decade.
    for lo, hi in ((0.1, 1), (1, 10), (10, 100)):
        assert abs(np.mean((lr >= lo) & (lr < hi)) - 1 / 3) < 0.05
    lin = np.array([t["learning_rate"] for t in
                    space(learning_rate={"low": 0.1, "high": 100.0}).sample_many(2000)])
    assert np.mean(lin < 10) < 0.15  # uniform: under 10% of the range below 10


def test_int_interval_covers_both_ends_evenly():
    iv = Interval(1, 4, integer=True)
    values = [iv.value(u) for u in np.linspace(0, 1, 4000, endpoint=False)]
    counts = {v: values.count(v) for v in (1, 2, 3, 4)}
    assert set(values) == {1, 2, 3, 4}
    assert max(counts.values()) - min(counts.values()) <= 2


def test_buckets_snap_to_few_log_spaced_values_including_the_ends():
    s = space(batch_size={"low": 12, "high": 2048, "int": True, "scale": "log", "buckets": 8})
    sizes = sorted({t["batch_size"] for t in s.sample_many(400)})
    assert sizes == [12, 25, 52, 109, 226, 472, 983, 2048]
    ratios = np.diff(np.log(sizes))
    assert np.allclose(ratios, ratios.mean(), atol=0.05)


def test_floats_are_rounded_to_four_significant_digits_and_stay_in_bounds():
    s = space(b1={"low": 0.5, "high": 0.99999})
    for t in s.sample_many(200):
        assert t["b1"] < 1.0
        assert float(f"{t['learning_rate']:.4g}") == t["learning_rate"]


def test_same_seed_same_trials_and_a_new_seed_differs():
    assert space().sample_many(20) == space().sample_many(20)
    assert space(seed=4).sample_many(20) != space().sample_many(20)


def test_more_trials_extend_fewer_and_new_params_leave_the_others_alone():
    s = space()
    assert s.sample_many(30)[:20] == s.sample_many(20)
    assert s.sample_many(10, start=20) == s.sample_many(30)[20:]
    without_b2 = space(b2=None)
    for a, b in zip(s.sample_many(20), without_b2.sample_many(20)):
        assert a["learning_rate"] == b["learning_rate"] and a["batch_size"] == b["batch_size"]


def test_fixed_values_are_kept():
    s = space(batch_size=128, b2=0.999)
    assert {t["batch_size"] for t in s.sample_many(10)} == {128}
    assert {t["b2"] for t in s.sample_many(10)} == {0.999}


# -- validation ------------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, key, words", [
    ({"learning_rate": {"low": 10.0, "high": 1.0}}, "search.adam.learning_rate", "must not exceed"),
    ({"learning_rate": {"low": 0.0, "high": 1.0}}, "search.adam.learning_rate.low", "(0, inf)"),
    ({"b1": {"low": 0.0, "high": 0.9, "scale": "log"}}, "search.adam.b1.low", "> 0 with scale = \"log\""),
    ({"learning_rate": {"low": -1.0, "high": 1.0, "scale": "log"}}, "search.adam.learning_rate.low", ""),
    ({"batch_size": {"low": 0, "high": 10, "int": True, "scale": "log"}}, "search.adam.batch_size.low", ""),
    ({"b1": {"low": 0.5, "high": 1.0}}, "search.adam.b1.high", "[0, 1)"),
    ({"b2": {"low": -0.1, "high": 0.9}}, "search.adam.b2.low", "[0, 1)"),
    ({"b1": 1.5}, "search.adam.b1", "[0, 1)"),
    ({"batch_size": {"low": 0, "high": 64, "int": True}}, "search.adam.batch_size.low", "[1,"),
    ({"batch_size": 0}, "search.adam.batch_size", "[1,"),
    ({"trials": 0}, "search.adam.trials", "[1,"),
    ({"momentum": {"low": 0.1, "high": 0.9}}, "search.adam.momentum",
     "batch_size, learning_rate, b1, b2, eps"),
    ({"colour": "red"}, "search.adam.colour", "unknown key"),
    ({"learning_rate": {"low": 0.1, "high": 1.0, "step": 2}}, "search.adam.learning_rate.step", "unknown key"),
    ({"learning_rate": {"low": 0.1, "high": 1.0, "scale": "cubic"}}, "search.adam.learning_rate.scale",
     "'uniform', 'log'"),
    ({"learning_rate": {"low": 0.1}}, "search.adam.learning_rate.high", "required"),
    ({"learning_rate": None}, "search.adam.learning_rate", "required"),
    ({"batch_size": None}, "search.adam.batch_size", "required"),
    ({"batch_size": {"low": 12.5, "high": 64, "int": True}}, "search.adam.batch_size.low", "integer"),
    ({"batch_size": {"low": 12, "high": 64, "int": False}}, "search.adam.batch_size.int", "int = true"),
    ({"b1": {"low": 0.5, "high": 0.9, "buckets": 3}}, "search.adam.b1.buckets", "int = true"),
    ({"objective": "accuracy"}, "search.adam.objective", "final_train_loss"),
    ({"last_percent": 20}, "search.adam.last_percent", "mean_last"),
    ({"optimizer": "adamm"}, "search.adam.optimizer", "sgd"),
    ({"learning_rate": {"low": float("nan"), "high": 1.0}}, "search.adam.learning_rate.low", "finite"),
    ({"learning_rate": {"low": 0.1, "high": float("inf")}}, "search.adam.learning_rate.high", "finite"),
    ({"budget": {"iterations": 0}}, "search.adam.budget.iterations", ""),
    ({"budget": {"steps": 10}}, "search.adam.budget.steps", "unknown key"),
])
def test_bad_spaces_name_the_file_the_key_and_what_is_allowed(changes, key, words):
    with pytest.raises(PresetError) as err:
        space(**changes)
    message = str(err.value)
    assert message.startswith(f"{FILE}: {key}"), message
    assert words in message, message


def test_batch_sizes_above_the_training_set_are_refused_once_it_is_known():
    s = space(batch_size={"low": 12, "high": 2049, "int": True})
    s.check_batch_sizes(5000)
    with pytest.raises(PresetError, match=r"space.toml: search.adam.batch_size.high must be at most "
                                          r"the training set size \(300\), got 2,049"):
        s.check_batch_sizes(300)
    with pytest.raises(PresetError, match="search.adam.batch_size must be at most"):
        space(batch_size=512).check_batch_sizes(300)


def test_nan_and_inf_in_a_preset_file_are_refused(tmp_path):
    text = (ROOT / "presets" / "twnet.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('b1 = { low = 0.5, high = 0.99 }', 'b1 = { low = nan, high = 0.99 }'))
    with pytest.raises(PresetError, match=r"bad.toml: search.adam.b1.low must be a finite number"):
        presets.load(bad)


def test_unknown_space_key_via_override_names_the_file():
    with pytest.raises(PresetError, match=r"twnet.toml: search.sgd.b1: unknown key; sgd has the "
                                          r"hyperparameters batch_size, learning_rate"):
        presets.load(ROOT / "presets" / "twnet.toml", ["search.sgd.b1=0.9"])


# -- the shipped presets ---------------------------------------------------------------------------

def test_twnet_preset_ships_the_reports_ranges():
    study = presets.load(ROOT / "presets" / "twnet.toml")
    sgd, adam = study.search["sgd"], study.search["adam"]
    assert (sgd.optimizer, sgd.trials, adam.optimizer, adam.trials) == ("sgd", 20, "adam", 20)
    assert (sgd.intervals["learning_rate"].low, sgd.intervals["learning_rate"].high) == (1, 1000)
    assert (sgd.intervals["batch_size"].low, sgd.intervals["batch_size"].high) == (12, 2048)
    assert (adam.intervals["learning_rate"].low, adam.intervals["learning_rate"].high) == (0.1, 100)
    for b in ("b1", "b2"):
        assert (adam.intervals[b].low, adam.intervals[b].high) == (0.5, 0.99)
    assert (adam.intervals["batch_size"].low, adam.intervals["batch_size"].high) == (12, 2049)


@pytest.mark.parametrize("name", ["mnist.toml", "mnist-offline.toml"])
def test_mnist_presets_search_sections_validate(name):
    study = presets.load(ROOT / "presets" / name)
    assert set(study.search) == {"sgd", "adam"}
    adam = study.search["adam"]
    assert adam.intervals["learning_rate"].scale == "log"
    assert adam.objective == "final_test_loss"
    t = adam.sample(0)
    assert 1 <= t["batch_size"] <= 128 and 0.001 <= t["learning_rate"] <= 0.1


def test_linear_is_another_name_for_uniform():
    s = space(learning_rate={"low": 0.1, "high": 1.0, "scale": "linear"})
    assert s.intervals["learning_rate"].scale == "uniform"
    assert s.sample_many(5) == space(learning_rate={"low": 0.1, "high": 1.0}).sample_many(5)


def test_fair_default_budget_and_explicit_budgets():
    from optui.study.presets import Budget
    from optui.study.search_space import fair_budget

    s = space(batch_size={"low": 16, "high": 1024, "int": True})
    budget, note = fair_budget(s, Budget("iterations", 3000))
    assert (budget.kind, budget.value) == ("examples", 3000 * 128)  # sqrt(16 * 1024) = 128
    assert "fair" in note and "384,000 examples" in note
    assert budget.steps(16, 10**6) == 8 * budget.steps(128, 10**6)
    assert fair_budget(s, Budget("epochs", 1.0))[0] == Budget("epochs", 1.0)
    explicit = space(budget={"iterations": 500})
    assert fair_budget(explicit, Budget("epochs", 1.0))[0] == Budget("iterations", 500)
    assert math.isclose(space(batch_size=100).reference_batch(), 100)
