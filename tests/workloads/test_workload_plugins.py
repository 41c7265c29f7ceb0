"""Workload plug-ins: discovery through the entry-point group, "module:factory" and "./file.py:factory"
references, declared settings in the validator, and every kind of bad reference refused with exit 2
and a message naming the preset, the key and what was tried, with nothing written to the store."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from optui.study import presets
from optui.cli import app
from optui.errors import PresetError
from optui.workloads import registry

from support.common import ROOT, cli_env
from support.plugin_sources import BREAKS, TOY, broken, toy_preset, write_dist_info, write_module

EXAMPLE = ROOT / "examples" / "digits"


@pytest.fixture(autouse=True)
def fresh_registry():
    registry.clear_cache()
    importlib.invalidate_caches()
    yield
    registry.clear_cache()


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.output
    return lines[0]


# -- references that work ----------------------------------------------------------------------

def test_a_module_factory_reference(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    module = write_module(tmp_path)
    study = presets.loads(toy_preset(f"{module}:make"), "toy.toml")
    assert study.spec.name == "toy" and study.spec.metric_names == ("train_loss",)
    assert study.model == {"scale": 1.0} and study.eval == {"points": 2}
    assert f"module {module}" in study.resolved.origin
    from optui.service import build_workload

    workload = build_workload(study)  # built and checked against the contract
    assert workload.n_train == 16


def test_a_file_reference_relative_to_the_working_folder_or_the_preset(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "presets").mkdir(parents=True)
    (project / "my_workload.py").write_text(TOY, encoding="utf-8")
    monkeypatch.chdir(project)
    preset = project / "presets" / "toy.toml"
    preset.write_text(toy_preset("./my_workload.py:make"), encoding="utf-8")
    study = presets.load(preset)
    assert study.spec.name == "toy" and str(project / "my_workload.py") in study.resolved.origin
    # Beside the preset, from another working folder.
    shutil.move(project / "my_workload.py", project / "presets" / "my_workload.py")
    monkeypatch.chdir(tmp_path)
    registry.clear_cache()
    assert presets.load(preset).spec.name == "toy"


def test_an_entry_point_in_an_installed_distribution(tmp_path, monkeypatch):
    module = write_module(tmp_path)
    write_dist_info(tmp_path, "toy-plugin", {"toy": f"{module}:make"}, "2.5")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    assert registry.providers()["toy"][0].distribution == "toy-plugin 2.5"
    study = presets.loads(toy_preset("toy"), "toy.toml")
    assert study.spec.name == "toy" and "toy-plugin 2.5" in study.resolved.origin
    # optui's own workloads are registered the same way.
    assert {"twnet", "mnist"} <= set(registry.providers())


def test_the_spec_settings_drive_validation(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    module = write_module(tmp_path)
    for extra, fragments in [
        ("[model]\nscale = 500.0\n", ["toy.toml: model.scale must be a number in [0, 100]", "500"]),
        ("[model]\nscael = 1.0\n", ["toy.toml: model.scael: unknown key", "scale"]),
        ("[data]\npath = 'x'\n", ["toy.toml: data.path: unknown key"]),
        ("[model]\nscale = 13.0\n", ["toy.toml: model.scale must not be 13"]),  # check_settings
    ]:
        with pytest.raises(PresetError) as err:
            presets.loads(toy_preset(f"{module}:make", extra), "toy.toml")
        for fragment in fragments:
            assert fragment in str(err.value), (fragment, str(err.value))


def test_search_objectives_and_compare_metrics_come_from_the_declarations(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    module = write_module(tmp_path)
    ok = toy_preset(f"{module}:make", "[search.s]\noptimizer = 'sgd'\nbatch_size = 4\n"
                                      "learning_rate = { low = 0.01, high = 0.1 }\n")
    space = presets.loads(ok, "toy.toml").search["s"]
    assert space.objective == "final_train_loss" and space.metric == "train_loss" and space.goal == "min"
    with pytest.raises(PresetError, match="search.s.objective must be one of 'final_train_loss', 'mean_last'"):
        presets.loads(ok + "objective = 'final_test_loss'\n", "toy.toml")
    with pytest.raises(PresetError, match=r"compare\[0\].metric must be one of 'minibatch_loss', 'train_loss'"):
        presets.loads(toy_preset(f"{module}:make", "[[compare]]\nconfigs = ['sgd']\nmetric = 'test_loss'\n"),
                      "toy.toml")


# -- bad references: exit 2, a message naming preset, key and what was tried, no run stored ---------

def refuse(tmp_path, workload: str, *fragments: str, command: str = "run") -> str:
    preset = tmp_path / "bad.toml"
    extra = "[search.s]\noptimizer = 'sgd'\nbatch_size = 4\nlearning_rate = { low = 0.01, high = 0.1 }\n"
    preset.write_text(toy_preset(workload, extra), encoding="utf-8")
    result = invoke(command, preset, "--headless", "--store", tmp_path / "runs", "--exports", tmp_path / "exports")
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert f'{preset}: workload = "{workload}"' in line, line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert not (tmp_path / "runs").exists(), "the store was touched"
    assert "Traceback" not in result.output
    return line


@pytest.mark.parametrize("reference, fragments", [
    ("nosuchworkload", ["no installed workload has that name", "optui.workloads", "mnist, twnet"]),
    ("nosuchpackage.mod:make", ["no module named 'nosuchpackage'", "is its package installed"]),
    ("optui.workloads.twnet:nope", ["optui.workloads.twnet has no 'nope'", "its functions:", "workload"]),
    ("optui.workloads.twnet:SETTINGS", ["expected a WorkloadSpec or a function returning one, got dict"]),
    ("./missing.py:make", ["no such file; tried", "missing.py"]),
    ("./missing.py", ["name the factory in the file too"]),
    ("optui.workloads.twnet:no-such", ["is not a Python name"]),
], ids=["unknown-name", "no-module", "missing-function", "not-a-factory", "no-file", "file-without-factory",
        "bad-attribute"])
def test_unresolvable_references(tmp_path, reference, fragments):
    refuse(tmp_path, reference, *fragments)


WHAT_IS_SAID = {
    "import-error": ["importing", "failed: RuntimeError: plug-in broken at import"],
    "factory-raises": ["calling the factory failed: ValueError: no spec today"],
    "factory-wrong-type": ["the factory returned int, expected optui.workloads.WorkloadSpec"],
    "objective-not-declared": ["objective 'test_accuracy' is not one of its metrics (train_loss)"],
    "check-settings-raises": ["workload toy's check_settings failed: KeyError: 'nope'"],
    "build-raises": ["build(settings) failed: ZeroDivisionError"],
    "init-not-a-pair": ["init(key) must return (params, model_state)"],
    "init-nan": ["init(key) gave 2 NaN or inf value(s) in parameter ['w']"],
    "loss-not-scalar": ["loss(...) must return a scalar float loss first, got an array of shape (8,)", "for a batch of 8"],
    "state-changes-shape": ["loss(...) must return a model_state with the same structure as init's"],
    "strategy-not-a-strategy": ["choose_strategy('cpu') must return an optui.workloads.Strategy, got str"],
    "evaluate-wrong-metrics": ["evaluate(...) must return exactly the declared metrics (train_loss)",
                               "missing train_loss; undeclared loss"],
    "evaluate-not-scalar": ["evaluate(...)['train_loss'] must be a scalar, got an array of shape (16,)"],
}
assert set(WHAT_IS_SAID) == set(BREAKS)


@pytest.mark.parametrize("kind", list(BREAKS))
def test_broken_plug_ins(tmp_path, monkeypatch, kind):
    monkeypatch.syspath_prepend(str(tmp_path))
    module = write_module(tmp_path, broken(kind))
    line = refuse(tmp_path, f"{module}:make", *WHAT_IS_SAID[kind])
    assert f"{module}" in line.split(":make", 1)[1]  # what was loaded, from where


@pytest.mark.parametrize("kind", ["init-nan", "evaluate-wrong-metrics"])
def test_broken_plug_ins_refused_by_search_too(tmp_path, monkeypatch, kind):
    monkeypatch.syspath_prepend(str(tmp_path))
    module = write_module(tmp_path, broken(kind))
    refuse(tmp_path, f"{module}:make", *WHAT_IS_SAID[kind], command="search")


def test_a_broken_file_workload_names_the_file(tmp_path, monkeypatch):
    (tmp_path / "w.py").write_text(broken("import-error"), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    line = refuse(tmp_path, "./w.py:make", f"running {tmp_path / 'w.py'} failed: RuntimeError")
    assert "w.py:3" in line  # where in the file


def test_two_packages_registering_one_name(tmp_path, monkeypatch):
    module = write_module(tmp_path)
    write_dist_info(tmp_path / "a", "plugin-a", {"toy": f"{module}:make"})
    write_dist_info(tmp_path / "b", "plugin-b", {"toy": f"{module}:other"})
    for sub in ("a", "b", ""):
        monkeypatch.syspath_prepend(str(tmp_path / sub))
    importlib.invalidate_caches()
    line = refuse(tmp_path, "toy", "several installed packages register that name", "plugin-a 1.0",
                  "plugin-b 1.0", "package.module:factory")
    assert f"{module}:other" in line


def test_a_broken_entry_point_names_its_package(tmp_path, monkeypatch):
    write_dist_info(tmp_path, "broken-plugin", {"brk": "no_such_module_anywhere:make"}, "0.3")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    refuse(tmp_path, "brk", "entry point brk = no_such_module_anywhere:make (broken-plugin 0.3)",
           "no module named 'no_such_module_anywhere'")
    # `optui workloads` still lists it, with what is wrong, and the others.
    result = invoke("workloads")
    assert result.exit_code == 0, result.output
    assert "brk" in result.output and "cannot be used" in result.output and "twnet" in result.output


# -- optui workloads ---------------------------------------------------------------------------

def test_workloads_lists_origin_metrics_and_settings():
    result = invoke("workloads", "--json")
    assert result.exit_code == 0, result.output
    entries = {e["name"]: e for e in json.loads(result.output)}
    twnet, mnist = entries["twnet"], entries["mnist"]
    assert twnet["entry_point"] == "optui.workloads.twnet:workload" and "optui" in twnet["origin"]
    assert [(m["name"], m["goal"], m["default_objective"]) for m in mnist["metrics"]] == [
        ("train_loss", "min", False), ("test_loss", "min", True), ("train_accuracy", "max", False),
        ("test_accuracy", "max", False)]
    source = {r["name"]: r for r in twnet["settings"]["data"]}["source"]
    assert source["default"] == "synthetic" and "'json'" in source["allowed"] and source["help"]
    text = invoke("workloads").output
    assert "test_loss *" in text and "data.source = \"synthetic\"" in text and "one of 'synthetic', 'json'" in text


def test_workloads_shows_one_reference(tmp_path, monkeypatch):
    (tmp_path / "w.py").write_text(TOY, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = invoke("workloads", "./w.py:make")
    assert result.exit_code == 0, result.output
    assert "a least-squares toy" in result.output and "model.scale = 1.0" in result.output
    bad = invoke("workloads", "nosuch")
    assert bad.exit_code == 2 and "no installed workload has that name" in bad.output


# -- the example, installed with pip into a folder of its own ------------------------------------

@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    """examples/digits installed by pip into a temporary target folder (no network: no build
    isolation, no dependencies); the copy keeps pip's build files out of the source tree."""
    pytest.importorskip("sklearn", reason="the digits example needs scikit-learn (the examples extra)")
    root = tmp_path_factory.mktemp("example")
    source = root / "src"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = root / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(target), str(source)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (target / "optui_digits").is_dir()
    return target


def run_with(target, *args: str, cwd=None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = cli_env(None)
    env["PYTHONPATH"] = f"{ROOT}:{target}"
    return subprocess.run([sys.executable, "-m", "optui.cli", *map(str, args)], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_the_installed_example_is_discovered_through_its_entry_point(installed_example):
    listed = run_with(installed_example, "workloads", "--json")
    assert listed.returncode == 0, listed.stderr
    digits = {e["name"]: e for e in json.loads(listed.stdout)}["digits"]
    assert digits["origin"] == "optui-digits 0.1.0" and digits["entry_point"] == "optui_digits:workload"
    assert digits["objective"] == "test_accuracy"
    assert {m["name"]: m["goal"] for m in digits["metrics"]}["test_accuracy"] == "max"
    assert [r["name"] for r in digits["settings"]["model"]] == ["hidden", "dropout", "bn_momentum"]
    checked = run_with(installed_example, "presets", "validate", EXAMPLE / "digits.toml")
    assert checked.returncode == 0, checked.stderr
    assert "ok (digits, 3 configs, 2 search spaces, 3 comparisons)" in checked.stdout
    # Without the package the same preset is refused, and says what is installed.
    missing = run_with(ROOT / "no-such-folder", "presets", "validate", EXAMPLE / "digits.toml")
    assert missing.returncode == 2 and 'workload = "digits": no installed workload' in missing.stderr


@pytest.mark.slow
def test_the_installed_example_runs_its_study_and_a_search(installed_example, tmp_path):
    sizes = ["--set", "budget.epochs=1", "--set", "eval.points=4"]
    study = run_with(installed_example, "run", EXAMPLE / "digits.toml", "--headless", *sizes,
                     "--replicates", "2", cwd=tmp_path, timeout=900)
    assert study.returncode == 0, study.stdout + study.stderr
    assert "test acc" in study.stdout and "digits" in study.stdout
    files = {p.name for p in (tmp_path / "exports" / "digits" / "latest").iterdir()}  # the run's folder
    assert any(f.startswith("compare-01-") for f in files) and {"summary.json", "ranking.png"} <= files
    search = run_with(installed_example, "search", EXAMPLE / "digits.toml", "--headless", "--space", "adam",
                      "--trials", "3", *sizes, cwd=tmp_path, timeout=900)
    assert search.returncode == 0, search.stdout + search.stderr
    assert "final_test_accuracy" in search.stdout
