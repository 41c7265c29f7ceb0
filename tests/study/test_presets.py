"""Preset validation: the shipped TwNet study, every kind of bad file, --set overrides, budgets."""

from __future__ import annotations

import re

import pytest

from optui.optim import registry as optimizers
from optui.study import presets
from optui.errors import PresetError
from optui.study.presets import Budget

from support.common import ROOT, tiny_preset_text


def load_text(tmp_path, text: str, overrides=None, name="bad.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path, presets.load(path, overrides)


def error_for(tmp_path, text: str, overrides=None, name="bad.toml") -> tuple[str, str]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PresetError) as info:
        presets.load(path, overrides)
    return str(path), str(info.value)


# --- the shipped preset -------------------------------------------------------------------------

def test_shipped_twnet_preset_is_the_reports_study():
    study = presets.load(ROOT / "presets" / "twnet.toml")
    assert study.workload == "twnet"
    assert set(study.configs) == {"sgd-default", "sgd-optimal", "adam-default", "adam-optimal"}
    assert study.budget == Budget("iterations", 3000)
    assert study.replicates_count == 20
    assert study.eval_points == 100
    assert len(study.compare) == 6
    # The report's table, section 1.
    adam = study.configs["adam-optimal"]
    assert (adam.optimizer, adam.batch_size) == ("adam", 960)
    assert adam.hyperparams["learning_rate"] == pytest.approx(1.9)
    assert adam.hyperparams["b1"] == pytest.approx(0.869)
    assert adam.hyperparams["b2"] == pytest.approx(0.662)
    sgd = study.configs["sgd-optimal"]
    assert (sgd.optimizer, sgd.batch_size, sgd.hyperparams["learning_rate"]) == ("sgd", 2000, 1000.0)
    for cmp in study.compare:
        assert set(cmp.configs) <= set(study.configs)
    assert {c.metric for c in study.compare} == {"test_loss", "train_test"}


def test_tiny_preset_loads_with_defaults_filled(write_preset):
    study = presets.load(write_preset())
    assert study.name == "tiny"
    assert study.data["users"] == 30 and study.data["source"] == "synthetic"
    assert study.data["min_count"] == 3 and study.data["train_fraction"] == 0.75
    assert study.model == {"loss": "cosine", "init": 1.0}
    assert study.configs["adam"].hyperparams == {"learning_rate": 0.01, "b1": 0.9, "b2": 0.999, "eps": 1e-8}
    assert study.engine.strategy == "auto"


# --- bad files ----------------------------------------------------------------------------------

def test_malformed_toml_names_file_line_and_column(tmp_path):
    path, msg = error_for(tmp_path, 'workload = "twnet"\n[budget\niterations = 3\n')
    assert path in msg and "not valid TOML" in msg
    assert re.search(r"line 2, column \d+", msg), msg


def test_duplicate_key_is_refused(tmp_path):
    text = tiny_preset_text().replace("[budget]\niterations = 40", "[budget]\niterations = 40\niterations = 50")
    path, msg = error_for(tmp_path, text)
    assert path in msg and re.search(r"line \d+", msg), msg


@pytest.mark.parametrize("extra, key, allowed", [
    ("colour = 1\n", "colour", "allowed top-level keys"),
])
def test_unknown_top_level_key(tmp_path, extra, key, allowed):
    path, msg = error_for(tmp_path, extra + tiny_preset_text())
    assert f"{path}: {key}" in msg and allowed in msg and "budget" in msg


def test_unknown_section_key(tmp_path):
    text = tiny_preset_text().replace("[replicates]\n", "[replicates]\ncuont = 3\n")
    path, msg = error_for(tmp_path, text)
    assert f"{path}: replicates.cuont" in msg and "count" in msg and "seed" in msg


def test_unknown_data_key(tmp_path):
    text = tiny_preset_text().replace("[data]\n", "[data]\nsauce = 1\n")
    path, msg = error_for(tmp_path, text)
    assert f"{path}: data.sauce" in msg and "source" in msg


def test_unknown_config_key(tmp_path):
    configs = {"adam": {"optimizer": "adam", "learning_rate": 0.1, "batch_size": 8, "beta1": 0.9}}
    path, msg = error_for(tmp_path, tiny_preset_text(configs=configs))
    assert f"{path}: configs.adam.beta1" in msg
    assert "b1" in msg and "b2" in msg and "batch_size" in msg


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_nan_and_inf_are_refused(tmp_path, value):
    configs = {"adam": {"optimizer": "adam", "learning_rate": 0.1, "batch_size": 8}}
    text = tiny_preset_text(configs=configs).replace("learning_rate = 0.1", f"learning_rate = {value}")
    path, msg = error_for(tmp_path, text)
    assert f"{path}: configs.adam.learning_rate" in msg and "finite" in msg


def test_nan_inside_compare_or_data_is_refused(tmp_path):
    text = tiny_preset_text().replace("[data]\n", "[data]\ntrain_fraction = nan\n")
    path, msg = error_for(tmp_path, text)
    assert f"{path}: data.train_fraction" in msg and "finite" in msg


@pytest.mark.parametrize("setting, value, key, allowed", [
    ("b1", 1.5, "b1", "[0, 1)"),
    ("b2", 1.0, "b2", "[0, 1)"),
    ("learning_rate", -0.1, "learning_rate", "(0, inf)"),
    ("learning_rate", 0.0, "learning_rate", "(0, inf)"),
    ("eps", -1e-8, "eps", "[0, inf)"),
    ("batch_size", 0, "batch_size", "[1,"),
])
def test_out_of_range_values(tmp_path, setting, value, key, allowed):
    cfg = {"optimizer": "adam", "learning_rate": 0.1, "batch_size": 8, setting: value}
    path, msg = error_for(tmp_path, tiny_preset_text(configs={"adam": cfg}))
    assert f"{path}: configs.adam.{key}" in msg
    assert allowed in msg, msg
    assert repr(value) in msg or str(value) in msg


def test_out_of_range_section_values(tmp_path):
    path, msg = error_for(tmp_path, tiny_preset_text(replicates=0))
    assert f"{path}: replicates.count" in msg and "[1, 100000]" in msg
    text = tiny_preset_text().replace("[data]\n", "[data]\ntrain_fraction = 1.0\n")
    path, msg = error_for(tmp_path, text)
    assert f"{path}: data.train_fraction" in msg and "(0, 1)" in msg


def test_non_integer_batch_size(tmp_path):
    cfg = {"optimizer": "sgd", "learning_rate": 0.1, "batch_size": 12.5}
    path, msg = error_for(tmp_path, tiny_preset_text(configs={"sgd": cfg}))
    assert f"{path}: configs.sgd.batch_size" in msg and "integer" in msg and "12.5" in msg


def test_integral_float_batch_size_is_accepted(tmp_path):
    cfg = {"optimizer": "sgd", "learning_rate": 0.1, "batch_size": 12.0}
    _, study = load_text(tmp_path, tiny_preset_text(configs={"sgd": cfg}), name="ok.toml")
    assert study.configs["sgd"].batch_size == 12 and isinstance(study.configs["sgd"].batch_size, int)


def test_string_where_a_number_belongs(tmp_path):
    cfg = {"optimizer": "sgd", "learning_rate": "fast", "batch_size": 8}
    path, msg = error_for(tmp_path, tiny_preset_text(configs={"sgd": cfg}))
    assert f"{path}: configs.sgd.learning_rate" in msg and "'fast'" in msg


def test_empty_config_set(tmp_path):
    text = tiny_preset_text(configs={}) + "\n[configs]\n"
    path, msg = error_for(tmp_path, text)
    assert f"{path}: configs" in msg and "at least one config" in msg


def test_missing_config_set(tmp_path):
    path, msg = error_for(tmp_path, tiny_preset_text(configs={}))
    assert f"{path}: configs" in msg


def test_compare_naming_unknown_config(tmp_path):
    text = tiny_preset_text() + '\n[[compare]]\nconfigs = ["sgd", "rmsprop-fast"]\n'
    path, msg = error_for(tmp_path, text)
    assert f"{path}: compare[1].configs" in msg and "'rmsprop-fast'" in msg
    assert "sgd" in msg and "adam" in msg  # the known configs


def test_compare_with_bad_metric(tmp_path):
    text = tiny_preset_text() + '\n[[compare]]\nconfigs = ["sgd"]\nmetric = "accuracy"\n'
    path, msg = error_for(tmp_path, text)
    assert f"{path}: compare[1].metric" in msg and "'test_loss'" in msg


def test_unknown_workload_lists_known(tmp_path):
    text = tiny_preset_text().replace('workload = "twnet"', 'workload = "imagenet"')
    path, msg = error_for(tmp_path, text)
    assert f'{path}: workload = "imagenet": no installed workload' in msg
    assert "mnist, twnet" in msg and "optui.workloads" in msg and "package.module:factory" in msg


def test_missing_workload(tmp_path):
    text = tiny_preset_text().replace('workload = "twnet"\n', "")
    path, msg = error_for(tmp_path, text)
    assert f"{path}: workload is required" in msg and "twnet" in msg


def test_unknown_optimizer_lists_known(tmp_path):
    cfg = {"optimizer": "adamm", "learning_rate": 0.1, "batch_size": 8}
    path, msg = error_for(tmp_path, tiny_preset_text(configs={"x": cfg}))
    assert f"{path}: configs.x.optimizer" in msg and "'adamm'" in msg
    for name in optimizers.OPTIMIZERS:
        assert name in msg


def test_optimizer_that_is_not_a_string(tmp_path):
    # A list is unhashable: validation must say what is wrong, not crash with a TypeError.
    text = tiny_preset_text(configs={"x": {"optimizer": "sgd", "learning_rate": 0.1, "batch_size": 8}})
    text = text.replace('optimizer = "sgd"', 'optimizer = ["sgd"]')
    path, msg = error_for(tmp_path, text)
    assert f"{path}: configs.x.optimizer" in msg


def test_budget_needs_exactly_one_kind(tmp_path):
    text = tiny_preset_text().replace("iterations = 40", "iterations = 40\nepochs = 1")
    path, msg = error_for(tmp_path, text)
    assert f"{path}: budget" in msg and "exactly one" in msg
    text = tiny_preset_text().replace("iterations = 40", "steps = 40")
    path, msg = error_for(tmp_path, text)
    assert f"{path}: budget.steps" in msg and "iterations" in msg


def test_json_source_needs_a_path(tmp_path):
    text = tiny_preset_text(data={"source": "json"})
    path, msg = error_for(tmp_path, text)
    assert f"{path}: data." in msg


def test_oversized_file(tmp_path):
    text = tiny_preset_text() + "# " + "x" * (presets.MAX_PRESET_BYTES + 10) + "\n"
    path, msg = error_for(tmp_path, text)
    assert path in msg and "limit" in msg and f"{presets.MAX_PRESET_BYTES:,}" in msg


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.toml"
    with pytest.raises(PresetError, match="no such preset file") as info:
        presets.load(path)
    assert str(path) in str(info.value)


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(PresetError, match="is a folder"):
        presets.load(tmp_path)


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(tiny_preset_text().encode() + b"# caf\xe9\n")
    with pytest.raises(PresetError, match="UTF-8"):
        presets.load(path)


# --- --set overrides ----------------------------------------------------------------------------

def test_overrides_are_typed(write_preset):
    study = presets.load(write_preset(), [
        "replicates.count=5", "configs.adam.b1=0.5", "budget.iterations=12", "model.loss=mse",
        "data.train_fraction=0.5",
    ])
    assert study.replicates_count == 5 and isinstance(study.replicates_count, int)
    assert study.configs["adam"].hyperparams["b1"] == 0.5
    assert study.budget == Budget("iterations", 12)
    assert study.model["loss"] == "mse"
    assert study.data["train_fraction"] == 0.5
    assert study.overrides == ["replicates.count=5", "configs.adam.b1=0.5", "budget.iterations=12",
                               "model.loss=mse", "data.train_fraction=0.5"]


def test_override_strings_bare_and_quoted(write_preset):
    study = presets.load(write_preset(), ["study=other name", 'description="a b"'])
    assert study.name == "other name"
    assert study.description == "a b"


def test_override_creates_nested_keys(write_preset):
    study = presets.load(write_preset(), ["configs.extra.optimizer=momentum", "configs.extra.learning_rate=0.2",
                                          "configs.extra.batch_size=4", "engine.strategy=step-sequential"])
    extra = study.configs["extra"]
    assert extra.optimizer == "momentum" and extra.batch_size == 4
    assert extra.hyperparams == {"learning_rate": 0.2, "momentum": 0.9}
    assert study.engine.strategy == "step-sequential"


def test_override_replaces_budget_kind_only_with_the_same_key(write_preset):
    # Setting a second budget kind is caught, not silently ignored.
    with pytest.raises(PresetError, match="exactly one"):
        presets.load(write_preset(), ["budget.epochs=1"])


def test_bad_override_is_validated_like_the_file(write_preset):
    path = write_preset()
    with pytest.raises(PresetError) as info:
        presets.load(path, ["configs.adam.b1=1.5"])
    msg = str(info.value)
    assert "configs.adam.b1" in msg and "[0, 1)" in msg and "1.5" in msg
    with pytest.raises(PresetError, match="replicates.cuont"):
        presets.load(path, ["replicates.cuont=3"])
    with pytest.raises(PresetError, match="finite"):
        presets.load(path, ["configs.sgd.learning_rate=nan"])


@pytest.mark.parametrize("item, fragment", [
    ("replicates.count", "KEY=VALUE"),
    ("=3", "dotted names"),
    ("a..b=3", "dotted names"),
])
def test_malformed_override(write_preset, item, fragment):
    with pytest.raises(PresetError, match=fragment):
        presets.load(write_preset(), [item])


def test_override_into_a_value_that_is_not_a_table(write_preset):
    with pytest.raises(PresetError, match="not a table"):
        presets.load(write_preset(), ["workload.x=1"])


def test_loads_and_load_agree(write_preset):
    path = write_preset()
    a = presets.load(path, ["replicates.count=2"])
    b = presets.loads(path.read_text(), str(path), ["replicates.count=2"])
    assert a.configs == b.configs and a.budget == b.budget and a.replicates_count == b.replicates_count == 2


# --- budgets ------------------------------------------------------------------------------------

def test_budget_steps():
    assert Budget("iterations", 3000).steps(128, 32_745) == 3000
    assert Budget("iterations", 3000).steps(2000, 10) == 3000
    # One epoch of 60,000 MNIST images: the report's 468, 1,224 and 612 iterations.
    assert Budget("epochs", 1).steps(128, 60_000) == 468
    assert Budget("epochs", 1).steps(49, 60_000) == 1224
    assert Budget("epochs", 1).steps(98, 60_000) == 612
    assert Budget("epochs", 2.5).steps(128, 60_000) == 1170
    # examples: the same data seen whatever the batch size.
    assert Budget("examples", 2_880_000).steps(960, 1) == 3000
    assert Budget("examples", 2_880_000).steps(128, 1) == 22_500
    # Never zero steps.
    assert Budget("examples", 10).steps(128, 1) == 1
    assert Budget("epochs", 0.001).steps(128, 1000) == 1


def test_budget_describe():
    assert Budget("iterations", 3000).describe() == "3,000 iterations"
    assert Budget("epochs", 0.5).describe() == "0.5 epochs"


@pytest.mark.parametrize("budget, fragment", [
    ("epochs = 0", "budget.epochs"),
    ("iterations = 0", "budget.iterations"),
    ("iterations = 2.5", "budget.iterations"),
    ("examples = -5", "budget.examples"),
])
def test_bad_budget_values(tmp_path, budget, fragment):
    text = tiny_preset_text().replace("iterations = 40", budget)
    path, msg = error_for(tmp_path, text)
    assert f"{path}: {fragment}" in msg
