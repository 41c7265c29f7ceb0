"""`optui optimizers [NAME]`: the catalogue, installed plug-ins, and each one's hyperparameters."""

from __future__ import annotations

import json
from typing import Any, Optional

import typer

from .common import user_errors


def _default(field: Any) -> str:
    if field.required:
        return "required"
    d = field.default
    return "-" if d is None else (d if isinstance(d, str) else f"{d:g}")


def _describe(spec: Any) -> dict[str, Any]:
    return {
        "name": spec.name, "summary": spec.summary, "source": spec.source, "note": spec.note,
        "schedule_param": spec.schedule_param,
        "evaluated_at": "averaged parameters" if spec.eval_params else "parameters",
        "uses_loss": spec.uses_loss,
        "hyperparams": {k: {"default": None if f.required else f.default, "allowed": f.allowed(), "help": f.help}
                        for k, f in spec.hyperparams.items()},
    }


def _plugins() -> tuple[list[Any], dict[str, str]]:
    """Installed plug-ins (entry points), resolved; those that fail to load, with the reason."""
    from ...optim import registry as optimizers
    from ...errors import PresetError
    from ...optim import plugins

    found, failed = [], {}
    for name in plugins.entry_point_names():
        if name in optimizers.OPTIMIZERS:
            failed[name] = f"shadowed by the built-in {name!r}; write its reference instead"
            continue
        try:
            found.append(optimizers.resolve(name, None, "optimizer"))
        except PresetError as exc:
            failed[name] = str(exc).split(": ", 2)[-1]
    return found, failed


def register(app: typer.Typer) -> None:
    @app.command("optimizers")
    def optimizers_command(
        name: Optional[str] = typer.Argument(None, help="One optimiser (a name, plug-in or module:factory) "
                                             "to describe in full."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """List the optimisers a preset may name, with their hyperparameters and defaults."""
        from rich import box
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        from ...optim import registry as optimizers

        console = Console()
        if name is not None:
            with user_errors():
                spec = optimizers.resolve(name, None, "optimizer")
            if as_json:
                print(json.dumps(_describe(spec), indent=2))
                return
            console.print(f"[bold]{escape(spec.name)}[/]: {escape(spec.summary)}  [dim]({escape(spec.source)})[/]")
            if spec.note:
                console.print(f"  {escape(spec.note)}")
            t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
            for col in ("hyperparameter", "default", "allowed", "meaning"):
                t.add_column(col, no_wrap=col == "hyperparameter")
            for key, field in spec.hyperparams.items():
                t.add_row(escape(key), _default(field), escape(field.allowed()), escape(field.help))
            console.print(t)
            extras = [k for k in optimizers.config_fields(spec) if k not in spec.hyperparams]
            if spec.schedule_param is None:
                extras = [k for k in extras if k not in ("schedule", "warmup_fraction", "final_fraction",
                                                         "step_every", "step_factor")]
            console.print(f"also: {', '.join(extras)} (see `optui optimizers` for what they do)")
            return

        found, failed = _plugins()
        specs = list(optimizers.OPTIMIZERS.values()) + found
        if as_json:
            print(json.dumps({"optimizers": [_describe(s) for s in specs],
                              "chain_elements": {k: {"allowed": f.allowed(), "help": f.help}
                                                 for k, f in optimizers.EXTRA_FIELDS.items()},
                              "refused": optimizers.REFUSED, "plugins_failed": failed}, indent=2))
            return
        t = Table(title=f"{len(specs)} optimisers (`optui optimizers NAME` for ranges and meanings)",
                  box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        t.add_column("name", no_wrap=True)
        t.add_column("hyperparameters (default)")
        t.add_column("what it is")
        for spec in specs:
            hps = ", ".join(f"{k}={_default(f)}" if not f.required else f"{k} (required)"
                            for k, f in spec.hyperparams.items())
            origin = {"optax": "", "optax.contrib": " (optax.contrib)"}.get(spec.source, f" ({spec.source})")
            t.add_row(escape(spec.name), escape(hps), escape(spec.summary + origin))
        console.print(t)
        console.print("[bold]Every config may add[/] (absent unless set; numbers are traced data):")
        for key, field in optimizers.EXTRA_FIELDS.items():
            console.print(f"  {key}: {escape(field.help)} ({escape(field.allowed())})")
        console.print("[bold]Your own[/]: optimizer = \"package.module:factory\" or \"./my_opt.py:factory\", "
                      f"or an installed entry point (group {optimizers.ENTRY_POINT_GROUP!r}); see README.")
        for refused, why in optimizers.REFUSED.items():
            console.print(f"[dim]not offered: {refused}: {escape(why)}[/]")
        for plugin, why in failed.items():
            console.print(f"[yellow]plug-in {escape(plugin)} unusable: {escape(why)}[/]")
