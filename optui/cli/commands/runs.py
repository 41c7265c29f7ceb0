"""`optui runs`: the history of runs in the store."""

from __future__ import annotations

import json
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from .common import STORE_OPTION, user_errors
from .export import BandKind


class PaperFormat(str, Enum):
    markdown = "markdown"
    latex = "latex"
    csv = "csv"


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-"


def _printable(text: str) -> str:
    """Names from an older store may hold control characters: show them escaped, never raw."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def register(app: typer.Typer) -> None:
    runs_app = typer.Typer(help="List and inspect recorded runs.", invoke_without_command=True)
    app.add_typer(runs_app, name="runs")

    @runs_app.callback()
    def runs(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON."),
             store: Path = STORE_OPTION) -> None:
        """List runs: id, study, configs, status, replicates done and diverged, wall time."""
        if ctx.invoked_subcommand is not None:
            return
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        from ...store import DB_NAME, Store

        if not (store / DB_NAME).is_file():  # listing creates nothing: no store, no runs
            if as_json:
                print("[]")
            else:
                print(f"no runs: no run store in {store}/ (nothing has run in this folder; --store DIR)")
            return
        with user_errors():
            rows = Store.open(store, create=False).list_runs()
        if as_json:
            keep = ("id", "study", "kind", "workload", "status", "created", "wall_time_s", "units",
                    "unit_status", "replicates_done", "replicates_total", "diverged", "error", "damaged")
            print(json.dumps([{k: r.get(k) for k in keep} for r in rows], indent=2))
            return
        from rich import box

        # Fits 80 columns: ids whole (they start with the date and time), configs wrap.
        t = Table(title=f"runs in {store}/", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  padding=(0, 1))
        for col in ("id", "study", "configs", "status", "reps", "div", "wall s"):
            t.add_column(col, no_wrap=col in ("id", "status"),
                          justify="right" if col in ("reps", "div", "wall s") else "left")
        colours = {"done": "green", "interrupted": "yellow", "failed": "red", "running": "cyan",
                   "damaged": "bold red"}
        for r in rows:
            study = r["study"] if r["kind"] == "study" else f"{r['study']} ({r['kind']})"
            units = ", ".join(r["units"][:6]) + (" ..." if len(r["units"]) > 6 else "")
            t.add_row(escape(str(r["id"])), escape(_printable(study)), escape(_printable(units)),
                      f"[{colours.get(r['status'], 'white')}]{escape(r['status'])}[/]",
                      f"{r['replicates_done']}/{r['replicates_total']}", str(r["diverged"]),
                      f"{float(r['wall_time_s'] or 0):.0f}")
        console = Console()
        console.print(t)
        for r in rows:
            if r.get("damaged"):
                console.print(escape(f"run {r['id']} is {r['error']}"), style="red", highlight=False)

    @runs_app.command("show")
    def show(run_id: str = typer.Argument(..., help="Run id, a unique prefix, or 'latest'."),
             as_json: bool = typer.Option(False, "--json", help="Print JSON: settings, meta and per-config statistics."),
             fmt: Optional[PaperFormat] = typer.Option(None, "--format", "-f", help=(
                 "Print the results as a table for papers: final values per config (a search: its "
                 "ranked trials) as markdown, latex (booktabs) or csv.")),
             band: BandKind = typer.Option(BandKind.ci95, "--band", help="Band of the final values (with --format)."),
             store: Path = STORE_OPTION) -> None:
        """One run: its settings, device, versions and per-config results."""
        from rich import box
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        from ...export.tables import summary
        from ...store import Store

        if as_json and fmt is not None:
            print(f"error: --json and --format {fmt.value} ask for two outputs; choose one", file=sys.stderr)
            raise typer.Exit(2)
        with user_errors():
            s = Store.open(store, create=False)
            run = s.load_run(run_id)
            info = s.run_info(run.run_id)
            if fmt is not None:
                from ...export import final_values_table, search_trials_table
                from ...export.paper import render

                table = search_trials_table(s, run) if run.kind == "search" else final_values_table(run, band.value)
                print(render(table, fmt.value), end="")
                return
        data = summary(run)
        if as_json:
            print(json.dumps({**data, "meta": info["meta"], "error": info["error"]}, indent=2, default=str))
            return
        console = Console()
        meta = info["meta"]
        console.print(f"[bold]{escape(run.run_id)}[/]  {escape(_printable(run.study))} ({run.workload}, {run.kind})  status "
                      f"[bold]{run.status}[/]  started {_when(run.created)}  wall {run.wall_time_s:.1f} s")
        if meta:
            console.print(f"device {meta.get('device', '?')}  strategy {meta.get('strategy', '?')}  "
                          f"budget {meta.get('budget', '?')}  eval points {meta.get('eval_points', '?')}")
            if len(meta.get("devices_used") or []) > 1:
                console.print("trained on " + "; then ".join(map(escape, meta["devices_used"])))
            if meta.get("worker_devices"):
                console.print("ray workers " + ", ".join(map(escape, meta["worker_devices"])))
            if meta.get("versions"):
                console.print("versions " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
            if run.kind == "search" and meta.get("space"):
                space = meta["space"]
                pruned = sum(u.status == "pruned" for u in run.units.values())
                console.print(f"search {escape(str(meta.get('space_name')))}: sampler {space.get('sampler', 'random')}, "
                              f"pruner {space.get('pruner', 'none')}" + (f", {pruned} pruned" if pruned else ""))
        if info["error"]:
            console.print(f"[red]error: {escape(_printable(info['error']))}[/]")
        # Fits 80 columns: short headers, no vertical rules; each config's spec is listed below.
        # One column per metric the workload declares (recorded with the run), up to five.
        from ...results.metrics import RunMetrics

        run_metrics = RunMetrics.of_run(run)
        objective = run_metrics.objective
        # The objective first, then the others in declared order.
        metrics = ([objective] if objective else []) + [m for m in run_metrics if m is not objective]
        metrics = metrics[:5]
        t = Table(title="final values, mean over replicates", box=box.SIMPLE_HEAD, show_edge=False,
                  pad_edge=False, collapse_padding=True)
        for col in ("config", "status", "reps", "div", "steps", *(m.label for m in metrics)):
            t.add_column(col.replace(" ", "\n", 1) if len(metrics) > 3 else col,
                         no_wrap=col in ("config", "steps"),
                         justify="left" if col in ("config", "status") else "right")
        specs = []
        for name, unit in run.units.items():
            c = data["configs"][name]
            specs.append(f"  {_printable(name)}: " + ", ".join(f"{k}={v}" for k, v in unit.spec.items() if k != "steps"))
            t.add_row(escape(_printable(name)), unit.status, str(unit.replicates), str(unit.diverged),
                      f"{unit.minibatch_loss.shape[1]}/{unit.total_steps}",
                      *(m.format((c.get(f"final_{m.name}") or {}).get("mean")) for m in metrics))
        console.print(t)
        if objective is not None:
            console.print(f"objective: {escape(objective.label)} ({run_metrics.direction()})", highlight=False)
        console.print(escape("\n".join(specs)), highlight=False)
