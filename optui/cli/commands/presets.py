"""`optui presets validate|show FILE`."""

from __future__ import annotations

import dataclasses
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
        from ...study import presets

        for f in files:
            with user_errors():
                study = presets.load(f, set_)
            print(f"{f}: ok ({study.workload}, {len(study.configs)} configs, "
                  f"{len(study.search)} search spaces, {len(study.compare)} comparisons)")

    @presets_app.command("show")
    def show(file: Path = typer.Argument(..., help="Preset file."),
             set_: list[str] = typer.Option([], "--set", help="Override: KEY=VALUE."),
             as_json: bool = typer.Option(False, "--json", help="Print the resolved study as JSON.")) -> None:
        """Print the study as optui reads it, with defaults filled in."""
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        from ...optim import registry as optimizers
        from ...study import presets

        with user_errors():
            study = presets.load(file, set_)
        if as_json:
            from ...export.tables import dumps_json

            print(dumps_json(_study_record(study)), end="")
            return
        c = Console(highlight=False)
        # Every value from the file is escaped: "[/]" in a description is text, not markup.
        c.print(f"[bold]{escape(study.name)}[/]: workload {study.workload}; {escape(study.description)}")
        c.print(escape(f"workload from {study.resolved.origin}"))
        c.print(escape(f"data {study.data}"))
        c.print(escape(f"model {study.model}   eval {study.eval}"))
        c.print(escape(f"budget {study.budget.describe()}   replicates {study.replicates_count} "
                       f"(seed {study.replicates_seed})   engine {dataclasses.asdict(study.engine)}"))
        t = Table(title="configs")
        for col in ("name", "optimizer", "batch size", "hyperparameters"):
            t.add_column(col)
        for cfg in study.configs.values():
            t.add_row(escape(cfg.name), optimizers.label(cfg.optimizer), str(cfg.batch_size),
                      ", ".join(f"{k}={v}" if isinstance(v, str) else f"{k}={v:g}"
                                for k, v in optimizers.display(cfg.hyperparams).items()))
        c.print(t)
        for cmp in study.compare:
            c.print(escape(f"compare ({cmp.metric}) {cmp.title}: {', '.join(cmp.configs)}"))
        for name, space in study.search.items():
            c.print(escape(f"search {name}: {space}"))


def _study_record(study) -> dict:
    """The resolved study as plain data (what `presets show --json` prints)."""
    return {
        "study": study.name, "workload": study.workload, "description": study.description,
        "path": study.path, "overrides": study.overrides, "data": study.data, "model": study.model,
        "budget": study.budget.describe(), "eval": study.eval,
        "replicates": {"count": study.replicates_count, "seed": study.replicates_seed},
        "engine": dataclasses.asdict(study.engine),
        "configs": {name: cfg.as_dict() for name, cfg in study.configs.items()},
        "search": {name: space.as_dict() for name, space in study.search.items()},
        "compare": [{"title": c.title, "configs": list(c.configs), "metric": c.metric,
                     "labels": list(c.labels)} for c in study.compare],
    }
