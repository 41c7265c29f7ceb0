"""The optui command line's Typer app: its callback and the command groups it registers."""

from __future__ import annotations

import importlib

import typer

from .help import OptuiGroup, version_callback

app = typer.Typer(
    name="optui",
    help="Compare stochastic optimisers: presets, random search, seed replicates, loss bands, exports.",
    no_args_is_help=False,
    add_completion=True,  # Typer's own --install-completion and --show-completion
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    cls=OptuiGroup,
)

# Each module exposes register(app); heavy imports stay inside the commands so --help is quick.
COMMAND_MODULES = (
    "optui.cli.commands.run",
    "optui.cli.commands.runs",
    "optui.cli.commands.presets",
    "optui.cli.commands.search",
    "optui.cli.commands.export",
    "optui.cli.commands.optimizers",
    "optui.cli.commands.workloads",
    "optui.cli.commands.ui",
)


@app.callback(invoke_without_command=True)
def main(ctx: typer.Context,
         version: bool = typer.Option(False, "--version", is_eager=True, callback=version_callback,
                                      help="Print optui's version and exit.")) -> None:
    """With no command, open the interactive session on the current folder."""
    if ctx.invoked_subcommand is None:
        from .commands.ui import open_ui

        open_ui(None)


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)

