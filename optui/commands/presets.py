"""`optui presets validate|show FILE`."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import user_errors


def register(app: typer.Typer) -> None:
    presets_app = typer.Typer(help="Check and inspect study presets.")
    app.add_typer(presets_app, name="presets")

    @presets_app.command("validate")
    def validate(files: list[Path] = typer.Argument(..., help="Preset files."),
                 set_: list[str] = typer.Option([], "--set", help="Override: KEY=VALUE.")) -> None:
        """Check presets without touching the device; exit 2 on the first error."""
        from .. import presets

        for f in files:
            with user_errors():
                study = presets.load(f, set_)
            print(f"{f}: ok ({study.workload}, {len(study.configs)} configs, "
                  f"{len(study.search)} search spaces, {len(study.compare)} comparisons)")

    @presets_app.command("show")
    def show(file: Path = typer.Argument(...),
             set_: list[str] = typer.Option([], "--set", help="Override: KEY=VALUE.")) -> None:
        """Print the study as optui reads it, with defaults filled in."""
        from rich.console import Console
        from rich.table import Table

        from .. import presets

        with user_errors():
            study = presets.load(file, set_)
        c = Console()
        c.print(f"[bold]{study.name}[/]: workload {study.workload}; {study.description}")
        c.print(f"workload from {study.resolved.origin}", highlight=False)
        c.print(f"data {study.data}")
        c.print(f"model {study.model}   eval {study.eval}")
        c.print(f"budget {study.budget.describe()}   replicates {study.replicates_count} "
                f"(seed {study.replicates_seed})   engine {study.engine}")
        t = Table(title="configs")
        for col in ("name", "optimizer", "batch size", "hyperparameters"):
            t.add_column(col)
        for cfg in study.configs.values():
            t.add_row(cfg.name, cfg.optimizer, str(cfg.batch_size),
                      ", ".join(f"{k}={v:g}" for k, v in cfg.hyperparams.items()))
        c.print(t)
        for cmp in study.compare:
            c.print(f"compare ({cmp.metric}) {cmp.title}: {', '.join(cmp.configs)}")
        for name, space in study.search.items():
            c.print(f"search {name}: {space}")
