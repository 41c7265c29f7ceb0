"""`optui export`, `optui import` and `optui compare`: figures and files out, report pickles in,
and statistics of finished configs side by side."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from .common import STORE_OPTION, user_errors

EXPORT_KINDS = ("study", "import")


class BandKind(str, Enum):
    minmax = "minmax"
    iqr = "iqr"
    ci95 = "ci95"


class Centre(str, Enum):
    mean = "mean"
    median = "median"


def _fail_input(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(2)


def _runs_to_export(store, run_ids: list[str], say) -> list[str]:
    """The given runs (ids, prefixes or 'latest'), else the newest finished study or import run
    of each study; say() tells which, and which newer unfinished runs were passed over."""
    from ..errors import StoreError

    if run_ids:
        return list(dict.fromkeys(store.resolve(r) for r in run_ids))
    chosen: dict[str, str] = {}
    passed_over: dict[str, list[dict]] = {}
    for row in store.list_runs():  # oldest first, so later runs replace earlier ones
        if row.get("damaged"):
            say(f"run {row['id']} ({row['study']}) is {row['error']}: not exported")
            continue
        if row["kind"] not in EXPORT_KINDS:
            continue
        if row["status"] == "done":
            chosen[row["study"]] = row["id"]
            passed_over[row["study"]] = []
        else:
            passed_over.setdefault(row["study"], []).append(row)
    for study, rows in passed_over.items():
        for row in rows:
            what = (f"{study}: run {row['id']} is {row['status']} "
                    f"({row['replicates_done']}/{row['replicates_total']} replicates done)")
            if study in chosen:
                say(f"{what}, newer than the finished run exported; `optui export {row['id']}` "
                    f"exports it as it stands")
            else:
                say(f"{what} and the study has no finished run: nothing exported for it; "
                    f"`optui export {row['id']}` exports it as it stands")
    if not chosen:
        raise StoreError(f"{store.path}: no finished study or import run to export; run "
                         f"`optui run PRESET --headless` or `optui import FILE` first, or name a run")
    return list(chosen.values())


def _split_target(item: str) -> tuple[str, str]:
    if ":" not in item:
        _fail_input(f"{item!r}: expected RUN:CONFIG, for example latest:adam-optimal")
    run_id, config = item.rsplit(":", 1)
    if not run_id or not config:
        _fail_input(f"{item!r}: expected RUN:CONFIG, for example latest:adam-optimal")
    return run_id, config


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}" if abs(value) < 1e-3 or abs(value) >= 1e4 else f"{value:.{digits}f}"


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export(
        run_ids: list[str] = typer.Argument(None, help="Run ids (or unique prefixes, or 'latest'); "
                                            "default: the newest finished run of each study."),
        png: bool = typer.Option(False, "--png", help="Figures: one per comparison and per config."),
        pickle: bool = typer.Option(False, "--pickle", help="mlruns.p (report layout) and <study>-histories.p."),
        csv: bool = typer.Option(False, "--csv", help="histories.csv in long format."),
        json_: bool = typer.Option(False, "--json", help="summary.json with per-config statistics."),
        out: Path = typer.Option(Path("exports"), "--out", help="Exports folder; files go to OUT/<study>/<run-id>/."),
        band: BandKind = typer.Option(BandKind.minmax, "--band", help="Band across replicates."),
        centre: Centre = typer.Option(Centre.mean, "--centre", help="Centre line."),
        linear: bool = typer.Option(False, "--linear", help="Linear y axis instead of log."),
        dpi: int = typer.Option(120, "--dpi", min=20, max=1200, help="Figure resolution."),
        width: float = typer.Option(8.0, "--width", min=1, max=50, help="Figure width, inches."),
        height: float = typer.Option(5.0, "--height", min=1, max=50, help="Figure height, inches."),
        store: Path = STORE_OPTION,
    ) -> None:
        """Write figures, pickles, CSV and summary JSON of runs (all formats unless some are chosen)."""
        from rich.console import Console

        from rich.markup import escape

        from ..export import FORMATS, FigureStyle
        from ..export.atomic import ensure_writable_dir
        from ..export.layout import LATEST, export_to_run_folder, run_dir
        from ..store import Store

        chosen = {f for f, on in (("png", png), ("pickle", pickle), ("csv", csv), ("json", json_)) if on}
        formats = chosen or set(FORMATS)
        console = Console()
        with user_errors():
            style = FigureStyle(band=band.value, centre=centre.value, log_y=not linear, dpi=dpi,
                                width=width, height=height)
            s = Store.open(store, create=False)
            ids = _runs_to_export(s, run_ids or [], lambda text: console.print(escape(text), highlight=False))
            runs = [s.load_run(r) for r in ids]
            for run in runs:  # every folder is checked before any figure is drawn
                ensure_writable_dir(run_dir(out, run.study, run.run_id))
            for run in runs:
                folder, files, latest = export_to_run_folder(run, out, formats, style)
                state = "" if run.status == "done" else f", {run.status}: as it stands"
                console.print(escape(f"{run.study} ({run.run_id}, {run.kind}{state}): {len(files)} files "
                                     f"in {folder}/") + (f" ({LATEST} points here)" if latest else ""),
                              highlight=False, soft_wrap=True)
                for f in files:
                    console.print(f"  {escape(f.name)}", highlight=False)

    @app.command("import")
    def import_(
        file: Path = typer.Argument(..., help="A pickle in the report's mlruns.p layout."),
        study: Optional[str] = typer.Option(None, "--study", help="Study name (default: the file name)."),
        store: Path = STORE_OPTION,
    ) -> None:
        """Import report-layout histories (read safely: no code in the file runs) as a run."""
        from rich.console import Console
        from rich.table import Table

        from ..export.report_import import import_report
        from ..stats import distribution, final_values
        from ..store import Store

        with user_errors():
            if study is not None:
                from ..schema import check_name

                check_name(study, None, "--study", "study")
            s = Store.open(store)
            run_id = import_report(file, s, study)
            run = s.load_run(run_id)
        console = Console()
        t = Table(title=f"imported {file} as run {run_id} (study {run.study})")
        for col in ("config", "replicates", "steps", "mean final test loss", "min..max"):
            t.add_column(col, justify="left" if col == "config" else "right")
        for name, unit in run.units.items():
            finals = final_values(unit, "test_loss")
            d = distribution(finals) if finals is not None else {}
            t.add_row(name, str(unit.replicates), str(unit.minibatch_loss.shape[1]), _fmt(d.get("mean")),
                      f"{_fmt(d.get('min'))}..{_fmt(d.get('max'))}")
        console.print(t)
        console.print(f"next: optui export {run_id}")

    @app.command("compare")
    def compare(
        targets: list[str] = typer.Argument(..., help="RUN:CONFIG pairs; RUN is a run id, a prefix or 'latest'."),
        metric: str = typer.Option("test_loss", "--metric", help="minibatch_loss, train_loss, test_loss, "
                                   "or any recorded eval metric."),
        target: Optional[float] = typer.Option(None, "--target", help="Report when the mean first falls below this."),
        store: Path = STORE_OPTION,
    ) -> None:
        """Final-value statistics of configs side by side, paired when exactly two share replicate keys."""
        from rich import box
        from rich.console import Console
        from rich.table import Table

        from ..stats import distribution, final_values, metric_curve, paired_comparison, time_to_target
        from ..store import Store

        pairs = [_split_target(item) for item in targets]
        rows = []
        with user_errors():
            s = Store.open(store, create=False)
            loaded = {}
            for run_ref, config in pairs:
                run_id = s.resolve(run_ref)
                if run_id not in loaded:
                    loaded[run_id] = s.load_run(run_id)
                run = loaded[run_id]
                unit = run.units.get(config)
                if unit is None:
                    _fail_input(f"run {run_id} has no config {config!r}; it has: {', '.join(run.units)}")
                finals = final_values(unit, metric)
                if finals is None:
                    recorded = ["minibatch_loss"] * (unit.minibatch_loss.shape[-1] > 0) + list(unit.eval)
                    _fail_input(f"run {run_id} config {config!r} recorded no {metric}; "
                                f"recorded: {', '.join(recorded) or 'nothing yet'}")
                ttt = None
                if target is not None:
                    x, values = metric_curve(unit, metric)
                    ttt = time_to_target(x, values[unit.healthy], target)
                rows.append((run, unit, finals, distribution(finals), ttt))
        console = Console()
        run_ids = list(dict.fromkeys(run.run_id for run, *_ in rows))
        t = Table(title=f"final {metric}" + (" (mean of the last 1% of steps)" if metric == "minibatch_loss" else ""),
                  caption="runs: " + ", ".join(f"[{i + 1}] {r}" for i, r in enumerate(run_ids)),
                  box=box.SIMPLE_HEAD)
        # One column per config: fits 80 columns for the usual two to four configs.
        t.add_column("", justify="left", no_wrap=True)
        for run, unit, *_ in rows:
            label = unit.name if len(run_ids) == 1 else f"[{run_ids.index(run.run_id) + 1}] {unit.name}"
            t.add_column(label, justify="right", no_wrap=True)
        stats = [("replicates", lambda u, d, x: str(u.replicates)),
                 ("diverged", lambda u, d, x: str(u.diverged)),
                 ("mean", lambda u, d, x: _fmt(d["mean"])),
                 ("median", lambda u, d, x: _fmt(d["median"])),
                 ("min", lambda u, d, x: _fmt(d["min"])),
                 ("max", lambda u, d, x: _fmt(d["max"])),
                 ("IQR", lambda u, d, x: _fmt(d["iqr"])),
                 ("mean 95% CI low", lambda u, d, x: _fmt(d["ci95"][0]) if d["ci95"] else "-"),
                 ("mean 95% CI high", lambda u, d, x: _fmt(d["ci95"][1]) if d["ci95"] else "-")]
        if target is not None:
            stats.append((f"% of run to < {target:g}", lambda u, d, x: "never" if x is None else f"{x:.1f}%"))
        for name, cell in stats:
            t.add_row(name, *(cell(unit, d, ttt) for _, unit, _, d, ttt in rows))
        console.print(t)
        if len(rows) == 2:
            (ra, ua, fa, _, _), (rb, ub, fb, _, _) = rows
            if fa.shape != fb.shape:
                console.print(f"no paired comparison: {ua.name} has {fa.size} replicates, {ub.name} {fb.size}")
                return
            p = paired_comparison(fa, fb)
            if p["pairs"] == 0:
                console.print("no paired comparison: no replicate pair where both finished")
                return
            console.print(
                f"P({ua.name} ends below {ub.name}) = {p['p_a_below_b']:.2f} "
                f"(95% CI {p['ci95'][0]:.2f}..{p['ci95'][1]:.2f}) over {p['pairs']} replicate pairs; "
                f"mean difference {_fmt(p['mean_difference'])}")
            if ra.run_id != rb.run_id:
                console.print("[dim]pairs are matched by replicate index; they share PRNG keys only if "
                              "both runs used the same replicates.seed[/]")
