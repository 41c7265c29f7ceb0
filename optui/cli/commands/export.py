"""`optui export`, `optui import` and `optui compare`: figures and files out, report pickles in,
and statistics of finished configs side by side."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from .common import STORE_OPTION, user_errors
from .optional_value import DEFAULT as OPTIONAL_DEFAULT
from .optional_value import optional_value_command

EXPORT_KINDS = ("study", "import")


class BandKind(str, Enum):
    minmax = "minmax"
    iqr = "iqr"
    ci95 = "ci95"


class Centre(str, Enum):
    mean = "mean"
    median = "median"


class TableFormat(str, Enum):
    table = "table"
    markdown = "markdown"
    latex = "latex"
    csv = "csv"
    json = "json"


def _fail_input(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(2)


def _runs_to_export(store, run_ids: list[str], say) -> list[str]:
    """The given runs (ids, prefixes or 'latest'), else the newest finished study or import run
    of each study; say() tells which, and which newer unfinished runs were passed over."""
    from ...errors import StoreError

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


def _chosen_formats(values: list[str], allowed: tuple[str, ...]) -> set[str]:
    """--format values, each one or several separated by commas; exit 2 naming a wrong one."""
    chosen = set()
    for value in values:
        for name in filter(None, (v.strip().lower() for v in value.split(","))):
            if name not in allowed:
                _fail_input(f"--format {name!r} is not a format; allowed: {', '.join(allowed)}")
            chosen.add(name)
    return chosen


def _refuse_run_as_folder(store, folder: str) -> None:
    """`optui export --tensorboard RUN_ID` would take the run id for the folder: say so instead."""
    from ...errors import StoreError

    if Path(folder).exists():
        return
    try:
        names_run = folder == "latest" or (len(folder) >= 8 and bool(store.resolve(folder)))
    except StoreError:
        names_run = False
    if names_run:
        _fail_input(f"--tensorboard took {folder!r} for its folder, but that names a run; put run ids "
                    f"before --tensorboard, or write --tensorboard=DIR")


def _missing_to_exit_2(require) -> None:
    from ...optional import MissingDependency

    try:
        require()
    except MissingDependency as exc:
        _fail_input(str(exc))


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


def _parse_targets(items: list[str]) -> dict[str, float]:
    """--target METRIC=VALUE items; a bad one exits 2 saying what is allowed."""
    import math

    out = {}
    for item in items:
        metric, _, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not metric.strip() or not math.isfinite(number):
            _fail_input(f"--target {item!r}: expected METRIC=NUMBER, e.g. test_loss=0.3 or test_accuracy=0.95")
        out[metric.strip()] = number
    return out


def _check_targets(runs, targets: dict[str, float]) -> None:
    """Every --target names a metric each (non-search) run records; else exit 2 naming those."""
    from ...results.metrics import RunMetrics, UnknownMetric

    for run in runs:
        if run.kind == "search":
            continue
        metrics = RunMetrics.of_run(run)
        for name in targets:
            try:
                metrics.check(name, "--target metric")
            except UnknownMetric as exc:
                _fail_input(f"run {run.run_id}: {exc}")


def _print_ranking(console, run, targets: dict[str, float]) -> None:
    """The ranking table of a study of three or more configs, as the export writes it."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    from ...export import ranking

    if not ranking.applies(run):
        return
    ranked = ranking.rank(run, targets)
    # The terminal shows the means and time-to-target; ranking.md has the bands too.
    o, x = ranked.objective, ranked.other if ranked.has_other else None
    t = Table(title=f"{run.study}: {ranking.title(ranked)}; means over healthy replicates (bands in ranking.md)",
              box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    cols = ["rank", "config", f"final {o.label}", *([x.label] if x else []),
            ranking.target_label(o, ranked.objective_target), "diverged"]
    for c in cols:
        t.add_column(escape(c), justify="left" if c == "config" else "right")
    for r in ranked.rows:
        cells = [str(r.rank), r.name, o.format(r.objective.dist["mean"])]
        if x:
            cells.append(x.format(r.other.dist["mean"] if r.other else None))
        cells += ["never" if r.objective.target_percent is None else f"{r.objective.target_percent:.0f}%",
                  f"{r.diverged}/{r.replicates}"]
        t.add_row(*(escape(c) for c in cells))
    console.print(t)


def register(app: typer.Typer) -> None:
    @app.command("export", cls=optional_value_command("--tensorboard"))
    def export(
        run_ids: list[str] = typer.Argument(None, help="Run ids (or unique prefixes, or 'latest'); "
                                            "default: the newest finished run of each study."),
        formats: list[str] = typer.Option([], "--format", "-f", help=(
            "png, pdf, svg (figures; fonts embedded in PDFs), pickle, csv, json, markdown, latex "
            "(tables for papers); repeatable or comma-separated.")),
        png: bool = typer.Option(False, "--png", help="Figures: one per comparison and per config (--format png)."),
        pickle: bool = typer.Option(False, "--pickle", help="mlruns.p (report layout) and <study>-histories.p."),
        csv: bool = typer.Option(False, "--csv", help="histories.csv in long format."),
        json_: bool = typer.Option(False, "--json", help="summary.json with per-config statistics."),
        tensorboard: Optional[str] = typer.Option(None, "--tensorboard", metavar="[DIR]", help=(
            "TensorBoard event files (needs tensorboardX) under DIR, default OUT/tensorboard; "
            "view with tensorboard --logdir DIR. Alone, it writes nothing else.")),
        out: Path = typer.Option(Path("exports"), "--out", help="Exports folder; files go to OUT/<study>/<run-id>/."),
        band: BandKind = typer.Option(BandKind.minmax, "--band", help="Band across replicates (figures and tables)."),
        centre: Centre = typer.Option(Centre.mean, "--centre", help="Centre line."),
        linear: bool = typer.Option(False, "--linear", help="Linear y axis instead of log."),
        dpi: int = typer.Option(120, "--dpi", min=20, max=1200, help="PNG resolution."),
        width: float = typer.Option(8.0, "--width", min=1, max=50, help="Figure width, inches."),
        height: float = typer.Option(5.0, "--height", min=1, max=50, help="Figure height, inches."),
        target: list[str] = typer.Option([], "--target", help="METRIC=VALUE: time-to-target threshold of a "
                                         "metric the run records, e.g. test_loss=0.3; reached when the mean "
                                         "gets to it in the metric's direction (default: the configs' median)."),
        store: Path = STORE_OPTION,
    ) -> None:
        """Write figures, pickles, CSV, summary JSON, tables and TensorBoard files of runs.
        Studies of three or more configs also get a ranking (table and figure).

        With no format chosen: png, pickle, csv and json (a search run: png, markdown, csv, json).
        """
        from rich.console import Console
        from rich.markup import escape

        import warnings

        from ...export import (DEFAULT_FORMATS, FORMATS, SEARCH_DEFAULT_FORMATS, ComparisonWarning, FigureStyle,
                              export_run, export_search_run)
        from ...export.atomic import ensure_writable_dir
        from ...export.layout import LATEST, export_to_run_folder, run_dir
        from ...store import Store

        targets = _parse_targets(target)
        chosen = _chosen_formats(formats, FORMATS)
        chosen |= {f for f, on in (("png", png), ("pickle", pickle), ("csv", csv), ("json", json_)) if on}
        logdir = None
        if tensorboard is not None and not tensorboard.strip():
            _fail_input("--tensorboard needs a folder name, or no value for OUT/tensorboard")
        if tensorboard is not None:
            logdir = out / "tensorboard" if tensorboard == OPTIONAL_DEFAULT else Path(tensorboard)
        console = Console()
        with user_errors():
            style = FigureStyle(band=band.value, centre=centre.value, log_y=not linear, dpi=dpi,
                                width=width, height=height)
            s = Store.open(store, create=False)
            if tensorboard not in (None, OPTIONAL_DEFAULT):
                _refuse_run_as_folder(s, tensorboard)
            if logdir is not None:
                from ...export.tensorboard import require_tensorboardx

                _missing_to_exit_2(require_tensorboardx)
            ids = _runs_to_export(s, run_ids or [], lambda text: console.print(escape(text), highlight=False))
            runs = [s.load_run(r) for r in ids]
            _check_targets(runs, targets)
            files_wanted = bool(chosen) or logdir is None
            dirs = [run_dir(out, run.study, run.run_id) for run in runs]
            for folder in (dirs if files_wanted else []):  # every folder is checked before any work
                ensure_writable_dir(folder)
            if logdir is not None:
                ensure_writable_dir(logdir)
            for run, folder in zip(runs, dirs):
                state = "" if run.status == "done" else f", {run.status}: as it stands"
                head = f"[bold]{escape(run.study)}[/] ({run.run_id}, {run.kind}{state})"
                if files_wanted:
                    latest = False
                    if run.kind == "search":
                        wanted = chosen or set(SEARCH_DEFAULT_FORMATS)
                        if "pickle" in wanted:
                            console.print(f"{head}: no pickles for a search run")
                        wanted = wanted - {"pickle"}
                        files = export_search_run(s, run, folder, wanted) if wanted else []
                    else:
                        with warnings.catch_warnings(record=True) as said:
                            warnings.simplefilter("always", ComparisonWarning)
                            folder, files, latest = export_to_run_folder(run, out, chosen or set(DEFAULT_FORMATS),
                                                                         style, targets)
                        for w in said:
                            if issubclass(w.category, ComparisonWarning):
                                console.print(f"[yellow]warning:[/] {escape(str(w.message))}", soft_wrap=True)
                            else:
                                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
                    console.print(f"{head}: {len(files)} files in {escape(str(folder))}/"
                                  + (f" ({LATEST} points here)" if latest else ""), soft_wrap=True)
                    for f in files:
                        console.print(f"  {escape(f.name)}", highlight=False)
                    if run.kind != "search":
                        _print_ranking(console, run, targets)
                if logdir is not None:
                    from ...export.tensorboard import write_run

                    written = write_run(run, logdir)
                    console.print(f"{head}: TensorBoard files in {escape(str(written))}/", highlight=False)
            if logdir is not None and runs:
                console.print(f"view them with: tensorboard --logdir {escape(str(logdir))}", highlight=False)

    @app.command("import")
    def import_(
        file: Path = typer.Argument(..., help="A pickle in the report's mlruns.p layout."),
        study: Optional[str] = typer.Option(None, "--study", help="Study name (default: the file name)."),
        store: Path = STORE_OPTION,
    ) -> None:
        """Import report-layout histories (read safely: no code in the file runs) as a run."""
        from rich.console import Console
        from rich.table import Table

        from ...export.report_import import import_report
        from ...results.metrics import RunMetrics
        from ...results.stats import distribution, final_values
        from ...store import Store

        with user_errors():
            if study is not None:
                from ...schema import check_name

                check_name(study, None, "--study", "study")
            s = Store.open(store)
            run_id = import_report(file, s, study)
            run = s.load_run(run_id)
        console = Console()
        objective = RunMetrics.of_run(run).objective
        t = Table(title=f"imported {file} as run {run_id} (study {run.study})")
        for col in ("config", "replicates", "steps", f"mean final {objective.label if objective else '-'}",
                    "min..max"):
            t.add_column(col, justify="left" if col == "config" else "right")
        for name, unit in run.units.items():
            finals = final_values(unit, objective.name) if objective else None
            d = distribution(finals) if finals is not None else {}
            t.add_row(name, str(unit.replicates), str(unit.minibatch_loss.shape[1]), _fmt(d.get("mean")),
                      f"{_fmt(d.get('min'))}..{_fmt(d.get('max'))}")
        console.print(t)
        console.print(f"next: optui export {run_id}")

    @app.command("compare")
    def compare(
        targets: list[str] = typer.Argument(..., help="RUN:CONFIG pairs; RUN is a run id, a prefix or "
                                            "'latest'. The first is the baseline of the paired comparison."),
        metric: Optional[str] = typer.Option(None, "--metric", help="minibatch_loss or any metric the runs "
                                             "recorded; default: the workload's objective."),
        target: Optional[float] = typer.Option(None, "--target", help="Report when the mean first reaches "
                                               "this: falls to it or below when lower is better, rises to it "
                                               "or above when higher is better (the metric's direction)."),
        band: BandKind = typer.Option(BandKind.ci95, "--band", help="Band of the final values in tables for "
                                      "papers: min-max, IQR, or the bootstrap 95% CI of the mean."),
        fmt: TableFormat = typer.Option(TableFormat.table, "--format", "-f", help="table (the terminal), "
                                        "markdown, latex (booktabs), csv or json; to stdout."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON (the same as --format json)."),
        store: Path = STORE_OPTION,
    ) -> None:
        """Final-value statistics of configs side by side, each paired with the first by replicate."""
        from ...export import comparison as cmp
        from ...results.metrics import RunMetrics, UnknownMetric
        from ...export.paper import render
        from ...export.tables import dumps_json
        from ...store import Store

        if as_json and fmt not in (TableFormat.table, TableFormat.json):
            _fail_input(f"--json and --format {fmt.value} ask for two outputs; choose one")
        pairs = [_split_target(item) for item in targets]
        with user_errors():
            s = Store.open(store, create=False)
            loaded: dict[str, object] = {}
            chosen = []
            for run_ref, config in pairs:
                run_id = s.resolve(run_ref)
                if run_id not in loaded:
                    loaded[run_id] = s.load_run(run_id)
                chosen.append((loaded[run_id], config))
            if metric is not None:  # a name the first run records, else exit 2 naming those
                try:
                    RunMetrics.of_run(chosen[0][0]).check(metric, "--metric", allow_minibatch=True)
                except UnknownMetric as exc:
                    _fail_input(str(exc))
            try:
                result = cmp.compare(chosen, metric, band.value, target)
            except cmp.ComparisonError as exc:
                _fail_input(str(exc))
        kind = "json" if as_json else fmt.value
        if kind == "json":
            print(dumps_json(cmp.as_json(result)), end="")
        elif kind == "table":
            _print_comparison(result)
        else:
            print(render(cmp.table(result), kind), end="")


def _print_comparison(result) -> None:
    """The terminal form: one column per config (fits 80 columns for two to four configs)."""
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from ...export.comparison import BAND_TITLES, metric_title

    entries = result.entries
    t = Table(title=metric_title(result.metric, result.label, result.higher_is_better),
              caption="runs: " + ", ".join(f"[{i + 1}] {r}" for i, r in enumerate(result.run_ids)),
              box=box.SIMPLE_HEAD)
    t.add_column("", justify="left", no_wrap=True)
    for e in entries:
        t.add_column(escape(e.label), justify="right", no_wrap=True)
    band = BAND_TITLES[result.band]
    stats = [("replicates", lambda e: str(e.unit.replicates)),
             ("diverged", lambda e: str(e.unit.diverged)),
             ("mean", lambda e: _fmt(e.stats["mean"])),
             ("median", lambda e: _fmt(e.stats["median"])),
             ("min", lambda e: _fmt(e.stats["min"])),
             ("max", lambda e: _fmt(e.stats["max"])),
             ("IQR", lambda e: _fmt(e.stats["iqr"])),
             (f"{band} low", lambda e: _fmt(e.band[0]) if e.band else "-"),
             (f"{band} high", lambda e: _fmt(e.band[1]) if e.band else "-")]
    if result.target is not None:
        stats.append((f"% of run to {'>' if result.higher_is_better else '<'} {result.target:g}",
                      lambda e: "never" if e.time_to_target is None else f"{e.time_to_target:.1f}%"))
    if len(entries) > 1:
        def paired(key, show):
            return lambda e: "-" if e.paired is None or e.paired[key] is None else show(e.paired[key])

        base = escape(entries[0].label)
        stats += [(f"P({result.better} {base})", paired("p_a_below_b", lambda v: f"{v:.2f}")),
                  ("  95% CI", paired("ci95", lambda v: f"{v[0]:.2f}..{v[1]:.2f}")),
                  ("  Wilcoxon p", paired("wilcoxon_p", lambda v: f"{v:.3g}")),
                  ("  paired t p", paired("ttest_p", lambda v: f"{v:.3g}")),
                  ("  mean difference", paired("mean_difference", _fmt))]
    for name, cell in stats:
        t.add_row(name, *(cell(e) for e in entries))
    console = Console()
    console.print(t)
    for e in entries[1:]:
        if e.unpaired_reason:
            console.print(f"no paired comparison: {escape(e.unpaired_reason)}")
    if any(e.paired for e in entries) and len(result.run_ids) > 1:
        console.print("[dim]pairs are matched by replicate index; they share PRNG keys only if "
                      "both runs used the same replicates.seed[/]")
