"""CLI conventions: every command's help page renders right (flags without value placeholders,
bracketed words kept, exit codes at the foot), --version, Typer's shell completion, --json on
every listing command, and NO_COLOR."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import typer
from typer.testing import CliRunner

from optui import __version__
from optui.cli import app
from optui.cli.help import EXIT_CODES, _help_option

from support.common import cli_env, optui_command, tiny_preset_text
from support.stores import make_store

HELP_ENV = {"TERMINAL_WIDTH": "250", "COLUMNS": "250", "NO_COLOR": "1"}


def command_paths() -> list[tuple[tuple[str, ...], object]]:
    """Every command of the CLI as (path, click command), the root first."""
    root = typer.main.get_command(app)
    out = []

    def walk(cmd, path):
        out.append((path, cmd))
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            walk(sub, (*path, name))

    walk(root, ())
    return out


PATHS = command_paths()


def render_help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env=HELP_ENV, prog_name="optui")
    assert result.exit_code == 0, result.output
    return result.output


def test_every_command_is_covered():
    names = {" ".join(p) for p, _ in PATHS}
    assert {"", "run", "search", "export", "import", "compare", "ui", "runs", "runs show", "presets",
            "presets validate", "presets show"} <= names
    assert names - {""} <= set(EXIT_CODES)  # a new command must document its exit codes


@pytest.mark.parametrize("path", [p for p, _ in PATHS], ids=lambda p: " ".join(p) or "optui")
def test_help_page_reads_right(path):
    text = render_help(path)
    command = dict(PATHS)[path]
    assert "<bool>" not in text
    params = list(command.params) + [_help_option(command)]
    for param in params:
        if param is None or param.param_type_name != "option":
            continue
        names = [*param.opts, *param.secondary_opts]
        row = next((line for line in text.splitlines()
                    if re.match(r"[│|\s*]*" + re.escape(names[0]) + r"(\s|,|$)", line)), None)
        assert row is not None, f"{names[0]} missing from the help of {path}"
        if param.is_flag:  # a flag takes no value: no placeholder after its names
            assert not re.search(r"(--?[\w-]+\s+)+<", row), row
        elif param.metavar != "[DIR]":
            assert "<" in row or "[" in row, row  # an option with a value shows what it takes
        for bracketed in re.findall(r"\[[^\]\s]+\]", param.help or ""):
            assert bracketed in text, f"{bracketed} lost from the help of {path}"
    for bracketed in re.findall(r"\[[^\]\s]+\]", command.help or ""):
        assert bracketed in text
    key = " ".join(path) or "optui"
    assert "Exit codes: " + EXIT_CODES[key].split(";")[0] in text


def test_search_help_keeps_the_bracketed_section_name():
    text = render_help(("search",))
    assert "Study preset (TOML) with [search.NAME] spaces." in text
    assert re.search(r"--headless\s+Run in the terminal", text)


def test_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"optui {__version__}"


def test_shell_completion(tmp_path):
    env = cli_env(None)
    script = subprocess.run(optui_command() + ["--show-completion", "bash"], capture_output=True,
                            text=True, env=env, timeout=60)
    assert script.returncode == 0 and "_OPTUI_COMPLETE" in script.stdout
    complete = dict(env, _OPTUI_COMPLETE="complete_bash", COMP_WORDS="optui export --for", COMP_CWORD="2")
    words = subprocess.run(optui_command(), capture_output=True, text=True, env=complete, timeout=60)
    assert words.stdout.split() == ["--format"]
    help_text = render_help(())
    assert "--install-completion" in help_text and "--show-completion" in help_text


def test_every_listing_command_prints_json(tmp_path):
    _, study_id, search_id = make_store(tmp_path / "runs")
    store = ["--store", str(tmp_path / "runs")]
    preset = tmp_path / "demo.toml"
    preset.write_text(tiny_preset_text(study="demo"))
    listings = {
        "runs": (["runs", "--json", *store], lambda d: [r["id"] for r in d] == [study_id, search_id]),
        "runs show": (["runs", "show", search_id, "--json", *store],
                      lambda d: d["kind"] == "search" and "adam-t002" in d["configs"]),
        "compare": (["compare", f"{study_id}:sgd", f"{study_id}:adam", "--json", *store],
                    lambda d: [c["config"] for c in d["configs"]] == ["sgd", "adam"]),
        "presets show": (["presets", "show", str(preset), "--json"],
                         lambda d: d["study"] == "demo" and set(d["configs"]) == {"sgd", "adam"}),
        "workloads": (["workloads", "--json"], lambda d: {"twnet", "mnist"} <= {w["name"] for w in d["workloads"]}
                      if isinstance(d, dict) else {"twnet", "mnist"} <= {w["name"] for w in d}),
        "optimizers": (["optimizers", "--json"],
                       lambda d: {"sgd", "adam", "lion"} <= {o["name"] for o in d["optimizers"]}),
    }
    for name, (args, check) in listings.items():
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, (name, result.output)
        assert check(json.loads(result.stdout)), name


def has_colour(text: str) -> bool:
    """An SGR sequence that sets a colour (30-37, 90-97, 38;...), not just bold or dim."""
    for params in re.findall(r"\x1b\[([0-9;]*)m", text):
        codes = params.split(";")
        if any(c in ("38", "48") or (c.isdigit() and (30 <= int(c) <= 37 or 90 <= int(c) <= 97)) for c in codes):
            return True
    return False


@pytest.mark.parametrize("args", [["--help"], ["runs"], ["export", "--help"]])
def test_no_color_is_respected(tmp_path, args):
    make_store(tmp_path / "runs")  # runs to list, their statuses in colour
    env = {k: v for k, v in cli_env(None).items() if k != "NO_COLOR"}
    env.update(FORCE_COLOR="1", TERM="xterm-256color")  # colour as on a terminal
    coloured = subprocess.run(optui_command() + args, capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=60)
    plain = subprocess.run(optui_command() + args, capture_output=True, text=True,
                           env=dict(env, NO_COLOR="1"), cwd=tmp_path, timeout=60)
    assert coloured.returncode == plain.returncode == 0, plain.stderr
    assert has_colour(coloured.stdout)  # the check can fail: colour is there without NO_COLOR
    assert not has_colour(plain.stdout), plain.stdout[:500]
