"""Case 9: names are checked when the preset loads.

A study name with ESC, BEL or a newline reached the terminal raw (`presets show` retitled it)
and became a folder name; configs "a b" and "A+B" both exported as config-a-b.png (one lost);
configs a-b and a_b collided in the report pickle, found only at export after training.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from optui.cli import app

from support.checks import one_error
from support.common import tiny_preset_text

def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("escaped", ["\\u001b]0;owned\\u0007", "\\u0007", "line\\nbreak", "\\u202egnp.exe"],
                         ids=["esc-title", "bel", "newline", "bidi"])
def test_case_9_control_characters_in_a_study_name_are_refused(tmp_path, monkeypatch, write_preset, escaped):
    monkeypatch.chdir(tmp_path)
    preset = write_preset(text=tiny_preset_text().replace('study = "tiny"', f'study = "x{escaped}"'))
    for command in (("presets", "show", preset), ("presets", "validate", preset), ("run", preset, "--headless")):
        result = invoke(*command)
        line = one_error(result)
        assert "control character" in line
        assert not any(c in result.output for c in "\x1b\x07\u202e")  # nothing raw reaches the terminal
    assert not (tmp_path / "exports").exists() and not (tmp_path / "runs").exists()


def with_configs(*names: str) -> str:
    """The tiny preset with these configs (quoted table names, as "a b" needs)."""
    text = tiny_preset_text(configs={}, compare=False)
    for name in names:
        text += f'\n[configs."{name}"]\noptimizer = "sgd"\nlearning_rate = 0.1\nbatch_size = 16\n'
    return text


def test_case_9_configs_that_would_share_a_file_are_refused(write_preset):
    for first, second in (("A+B", "a-b"), ("a-b", "a_b"), ("Adam", "adam")):
        preset = write_preset(text=with_configs(first, second))
        line = one_error(invoke("presets", "validate", preset))
        assert "would share the file name config-" in line and "rename one" in line


def test_case_9_a_config_name_with_a_space_is_refused(write_preset):
    preset = write_preset(text=with_configs("ok", "a b"))
    assert "'a b' is not a usable config name" in one_error(invoke("presets", "validate", preset))


def test_case_9_markup_in_a_description_is_shown_as_text(write_preset):
    preset = write_preset()
    text = preset.read_text().replace('workload = "twnet"', 'workload = "twnet"\ndescription = "a [/] b [red]c"')
    preset.write_text(text)
    result = invoke("presets", "show", preset)
    assert result.exit_code == 0, result.output
    assert "a [/] b [red]c" in result.stdout


def test_case_9_import_study_names_are_checked(tmp_path):
    result = invoke("import", tmp_path / "x.p", "--study", "a\x1bb", "--store", tmp_path / "runs")
    assert "--study" in one_error(result) and "\x1b" not in result.output
