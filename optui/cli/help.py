"""How optui's help pages read: flags without value placeholders, argument names in capitals,
help text shown as written (no word in brackets taken for rich markup), and each command's exit
codes at the foot of its page.

The click command tree is tidied once, as the CLI starts (OptuiGroup.main), so every command
module keeps declaring plain Typer options.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

# Exit codes per command path; documented here, shown at the foot of each help page and in README.
# Typer itself exits 2 on a bad option or argument everywhere.
EXIT_CODES: dict[str, str] = {
    "optui": "0 done; 2 bad usage; otherwise that of the command run",
    "run": "0 done; 1 failed (the finished chunks are kept); 2 bad input (preset, data, options); "
           "130 interrupted (resume with --resume RUN_ID)",
    "search": "0 done; 1 failed (some trials failed; the rest are kept); 2 bad input (preset, "
              "space, options); 130 interrupted (resume with --resume RUN_ID)",
    "export": "0 written; 1 failed (store error, a folder or file cannot be written); 2 unknown run; "
              "2 bad options, or a missing optional package (the message names the install)",
    "import": "0 imported; 1 store error; 2 bad input (not a report-layout pickle, refused content)",
    "compare": "0 shown; 1 store error; 2 bad input (unknown run, RUN:CONFIG, metric, options)",
    "workloads": "0 listed; 2 unknown workload or bad reference (what was tried)",
    "optimizers": "0 listed; 2 unknown optimiser or bad reference (preset, config, what was tried)",
    "ui": "0 closed; 2 bad options",
    "serve": "0 stopped; 2 bad options, a missing preset, a taken port, or textual-serve not installed "
             "(the message names the install)",
    "runs": "0 listed; 1 store error; 2 bad options",
    "runs show": "0 shown; 1 store error; 2 unknown run or bad options",
    "presets": "0 done; 2 bad input",
    "presets validate": "0 every preset valid; 2 the first invalid one (file, key, allowed values)",
    "presets show": "0 shown; 2 bad input (file, key, allowed values)",
}


class OptuiGroup(TyperGroup):
    """The root command group: tidies every help page before the command line is parsed."""

    def main(self, args: Any = None, *rest: Any, **kwargs: Any) -> Any:
        from .commands.ray_option import expand_bare_ray

        tidy_help(self)
        return super().main(expand_bare_ray(args), *rest, **kwargs)


def tidy_help(command: Any, path: tuple[str, ...] = ()) -> None:
    """Fix flags, argument names, markup and exit codes on command and every subcommand."""
    if getattr(command, "_optui_tidy", False):
        return
    command._optui_tidy = True  # type: ignore[attr-defined]
    rich_markup = _rich_markup_on()
    key = " ".join(path) or "optui"
    if key in EXIT_CODES and not command.epilog:
        command.epilog = f"Exit codes: {EXIT_CODES[key]}."
    if rich_markup:
        for attr in ("help", "short_help", "epilog"):
            text = getattr(command, attr, None)
            if text:
                setattr(command, attr, _escape(text))
    for param in [*command.params, _help_option(command)]:
        if param is not None:
            _tidy_param(param, rich_markup)
    for name, sub in getattr(command, "commands", {}).items():
        tidy_help(sub, (*path, name))


def _tidy_param(param: Any, rich_markup: bool) -> None:
    if param.param_type_name == "option":
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""  # a flag takes no value: show none
        elif getattr(param, "multiple", False) and param.metavar is None:
            bare = _bare_type(param)
            if bare.startswith("list[") and bare.endswith("]"):
                param.metavar = f"<{bare[5:-1]}>"
                if param.help and "repeat" not in param.help:
                    param.help = param.help.rstrip(".") + " (repeatable)."
    elif param.param_type_name == "argument" and param.metavar is None and param.name:
        param.metavar = param.name.upper()
    if rich_markup and getattr(param, "help", None):
        param.help = _escape(param.help)


def _help_option(command: Any) -> Any:
    """The command's --help option. Click makes it on first use and keeps it, so making it here
    (it needs only the option's names) lets its page show it as the flag it is."""
    from types import SimpleNamespace

    return command.get_help_option(SimpleNamespace(help_option_names=["--help"]))


def _bare_type(param: Any) -> str:
    bare = getattr(param, "bare_type", None)
    try:
        return bare() if callable(bare) else ""
    except Exception:  # a parameter without Typer's type information
        return ""


def _rich_markup_on() -> bool:
    import typer.core

    return bool(getattr(typer.core, "HAS_RICH", False))


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def version_callback(value: bool) -> None:
    """--version: print optui's version and exit 0."""
    if value:
        from .. import __version__

        print(f"optui {__version__}")
        raise typer.Exit(0)
