"""Exports of a run: report-style figures (PNG, PDF, SVG), pickled histories, long CSV, a summary
JSON and tables for papers.

export_run is the one entry point the CLI, the headless runner and the UI share. Files land in
one folder (the CLI uses exports/<study>/):
    compare-NN-<title>.png   one per comparison (the preset's [[compare]] entries); .pdf, .svg too
    config-<name>.png        one per config; .pdf, .svg too
    mlruns.p                 the report's pickle layout      <study>-histories.p  the rich layout
    histories.csv            long-format histories          summary.json         statistics
    ranking.png, ranking.md, ranking.csv   studies of 3+ configs ranked by final test loss
    final-values.md / .tex   final test loss per config: n, mean, band, paired with the first
A search run (export_search_run) writes its trials table and scatter plots instead. TensorBoard
event files go to a separate log folder (export.tensorboard).
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any, Iterable

from ..errors import OptuiError
from ..study.presets import Compare
from ..results import RunResult
from .atomic import ExportError, ensure_writable_dir
from .figures import FigureStyle

FIGURE_FORMATS = ("png", "pdf", "svg")
TABLE_FORMATS = ("markdown", "latex")
FORMATS = (*FIGURE_FORMATS, "pickle", "csv", "json", *TABLE_FORMATS)
DEFAULT_FORMATS = ("png", "pickle", "csv", "json")
# A search's files: its scatter plots, and its trials table as Markdown, LaTeX, CSV and JSON.
SEARCH_DEFAULT_FORMATS = ("png", "markdown", "csv", "json")
MAX_PAIRWISE_CONFIGS = 5

__all__ = ["DEFAULT_FORMATS", "FIGURE_FORMATS", "FORMATS", "ComparisonWarning", "ExportError", "FigureStyle",
           "comparisons_for", "default_comparisons", "export_run", "export_search_run", "slug"]


def slug(text: str) -> str:
    """A file-name-safe form of a title or config name."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:60] or "figure"


def default_comparisons(names: list[str]) -> list[Compare]:
    """Every pair of configs (few configs), else one figure with them all."""
    if len(names) < 2:
        return []
    if len(names) > MAX_PAIRWISE_CONFIGS:
        return [Compare("All configs", tuple(names), "minibatch_loss")]
    return [Compare(f"{a} vs. {b}", (a, b), "minibatch_loss") for a, b in itertools.combinations(names, 2)]


class ComparisonWarning(UserWarning):
    """A [[compare]] entry of a run's preset that cannot be drawn (said, never silently dropped)."""


def comparisons_for(run: RunResult) -> list[Compare]:
    """The figures a run asks for: its preset's [[compare]] entries (checked against the run's
    metrics, each one that cannot be drawn said with a ComparisonWarning), or the report's for
    imports, else every pair of configs."""
    import warnings

    from ..results.metrics import RunMetrics
    from .report_import import IMPORT_KIND, compare_from_dict, report_comparisons

    names = list(run.units)
    if run.kind == IMPORT_KIND:
        stored = run.meta.get("compare") if isinstance(run.meta, dict) else None
        if stored:
            try:
                return [compare_from_dict(d) for d in stored]
            except (KeyError, TypeError, ValueError):
                pass
        return report_comparisons(names) or default_comparisons(names)
    if run.kind == "study" and run.preset_text:
        from ..study import presets

        # Only [[compare]] is read: the rest may name plug-ins or data this process cannot reach.
        label = f"preset of run {run.run_id}"
        metrics = RunMetrics.of_run(run)
        compare: list[Compare] = []
        try:
            raw = presets.parse_toml(run.preset_text, label)
        except OptuiError as exc:
            warnings.warn(f"{exc}; drawing the default comparisons", ComparisonWarning, stacklevel=2)
            raw = {}
        entries = raw.get("compare")
        known = raw.get("configs") if isinstance(raw.get("configs"), dict) else {}
        for i, entry in enumerate(entries if isinstance(entries, list) else []):
            try:  # one by one: an entry that cannot be drawn costs only itself
                parsed = presets.parse_compare([entry], known, label, metrics)
            except OptuiError as exc:
                warnings.warn(str(exc).replace("compare[0]", f"compare[{i}]") + "; not drawn",
                              ComparisonWarning, stacklevel=2)
                continue
            compare += parsed
        if compare:
            return compare
    return default_comparisons(names)


def check_formats(formats: Iterable[str]) -> set[str]:
    formats = set(formats)
    unknown = sorted(formats - set(FORMATS))
    if unknown:
        raise ExportError(f"unknown export format {unknown[0]!r}; allowed: {', '.join(FORMATS)}")
    if not formats:
        raise ExportError(f"no export format chosen; allowed: {', '.join(FORMATS)}")
    return formats


def export_run(run: RunResult, out_dir: str | Path, formats: Iterable[str] = DEFAULT_FORMATS,
               style: FigureStyle | None = None,
               targets: dict[str, float] | None = None) -> list[Path]:
    """Write the chosen formats of a run into out_dir; returns the files written.

    The folder is created and checked for writing before anything is computed; every file is
    written to a temporary sibling and renamed into place.
    """
    from . import figures, pickles, ranking, tables

    formats = check_formats(formats)
    style = style or FigureStyle()
    out = ensure_writable_dir(out_dir)
    written: list[Path] = []
    ranked = ranking.rank(run, targets) if ranking.applies(run) else None
    if ranked is not None and "png" in formats:
        written.append(figures.save_figure(ranking.figure(ranked, max(style.width, 8.0), style.dpi),
                                           out / "ranking.png"))
    if ranked is not None and "csv" in formats:
        written += ranking.write_tables(ranked, out / "ranking.md", out / "ranking.csv")
    kinds = [k for k in FIGURE_FORMATS if k in formats]
    if kinds:  # each figure is drawn once and saved in every chosen type
        for i, compare in enumerate(comparisons_for(run), start=1):
            fig = figures.compare_figure(run, compare, style)
            for kind in kinds:
                written.append(figures.save_figure(fig, out / f"compare-{i:02d}-{slug(compare.title)}.{kind}"))
        for name in run.units:
            fig = figures.config_figure(run, name, style)
            for kind in kinds:
                written.append(figures.save_figure(fig, out / f"config-{slug(name)}.{kind}"))
    if "pickle" in formats:
        written.append(pickles.write_report_pickle(run, out / "mlruns.p"))
        written.append(pickles.write_rich_pickle(run, out / f"{slug(run.study)}-histories.p"))
    if "csv" in formats:
        written.append(tables.write_csv(run, out / "histories.csv"))
    if "json" in formats:
        data = tables.summary(run, targets)
        if ranked is not None:
            data["ranking"] = ranked.as_dict()
        written.append(tables.write_json(data, out / "summary.json"))
    for kind in TABLE_FORMATS:
        if kind in formats:
            written.append(_write_final_values(run, out, kind, style.band))
    return written


def final_values_table(run: RunResult, band: str = "ci95") -> Any:
    """Final values of the run's objective (else the metric the first config recorded last) of
    every config that recorded it, each paired with the first: a PaperTable."""
    from ..results.metrics import RunMetrics
    from .comparison import compare, recorded_metrics, table

    recorded = [recorded_metrics(u) for u in run.units.values()]
    objective = RunMetrics.of_run(run).objective_name
    metric = objective if any(objective in m for m in recorded) else next((m[-1] for m in recorded if m), None)
    names = [name for name, m in zip(run.units, recorded) if metric in m]
    if not names:
        raise ExportError(f"run {run.run_id} has no final values yet: no config recorded a metric")
    return table(compare([(run, name) for name in names], metric, band))


def _write_final_values(run: RunResult, out: Path, kind: str, band: str) -> Path:
    from . import atomic
    from .paper import SUFFIXES, render

    path = out / f"final-values.{SUFFIXES[kind]}"
    return atomic.write_text(path, render(final_values_table(run, band), kind))


def search_of(store: Any, run: RunResult) -> tuple[Any, Any, dict[str, Any]]:
    """(study, space, run info) of a search run, read back from the preset text and overrides
    stored with it."""
    from ..study import presets

    info = store.run_info(run.run_id)
    meta = info["meta"]
    try:
        study = presets.loads(run.preset_text, info["preset_path"] or f"preset of run {run.run_id}",
                              meta.get("overrides", []))
        space = study.search[meta["space_name"]]
    except (OptuiError, KeyError, ImportError) as exc:
        raise ExportError(f"search run {run.run_id}: its preset no longer reads as this optui's "
                          f"({exc}); export it with the optui that ran it") from None
    return study, space, info


def search_trials_table(store: Any, run: RunResult) -> Any:
    """A search run's ranked trials as a PaperTable."""
    from ..search import rank_trials
    from .search_report import trials_table

    study, space, info = search_of(store, run)
    return trials_table(study, space, info, rank_trials(store, run.run_id))


def export_search_run(store: Any, run: RunResult, out_dir: str | Path,
                      formats: Iterable[str] = SEARCH_DEFAULT_FORMATS) -> list[Path]:
    """A search run's files: search-<space>.md / .tex / .csv / .json and its scatter plots.

    pickle is not a search format and is skipped.
    """
    from ..search import rank_confirmations, rank_trials
    from .search_report import export_search

    formats = check_formats(formats)
    study, space, info = search_of(store, run)
    from .search_progress import related_searches

    return export_search(study, space, info, rank_trials(store, run.run_id),
                         rank_confirmations(store, run.run_id), out_dir, tuple(sorted(formats)),
                         related=related_searches(store, run.run_id))
