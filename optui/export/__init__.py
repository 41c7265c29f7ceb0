"""Exports of a run: report-style PNG figures, pickled histories, long CSV and a summary JSON.

export_run is the one entry point the CLI, the headless runner and the UI share. Files land in
one folder (the CLI uses exports/<study>/):
    compare-NN-<title>.png   one per comparison (the preset's [[compare]] entries)
    config-<name>.png        one per config
    mlruns.p                 the report's pickle layout      <study>-histories.p  the rich layout
    histories.csv            long-format histories          summary.json         statistics
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Iterable

from ..errors import OptuiError
from ..presets import Compare
from ..results import RunResult
from .atomic import ExportError, ensure_writable_dir
from .figures import FigureStyle

FORMATS = ("png", "pickle", "csv", "json")
MAX_PAIRWISE_CONFIGS = 5

__all__ = ["FORMATS", "ExportError", "FigureStyle", "comparisons_for", "default_comparisons",
           "export_run", "slug"]


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


def comparisons_for(run: RunResult) -> list[Compare]:
    """The figures a run asks for: its preset's [[compare]] entries, or the report's for imports."""
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
        from .. import presets

        overrides = run.meta.get("overrides") if isinstance(run.meta, dict) else None
        try:  # as the run read it: with its --set overrides (a workload named there, say)
            study = presets.loads(run.preset_text, f"preset of run {run.run_id}",
                                  [o for o in overrides or [] if isinstance(o, str)])
        except (OptuiError, ImportError):  # a preset from an older optui may no longer validate
            study = None
        if study is not None and study.compare:
            return list(study.compare)
    return default_comparisons(names)


def export_run(run: RunResult, out_dir: str | Path, formats: Iterable[str] = FORMATS,
               style: FigureStyle | None = None,
               targets: dict[str, float] | None = None) -> list[Path]:
    """Write the chosen formats of a run into out_dir; returns the files written.

    The folder is created and checked for writing before anything is computed; every file is
    written to a temporary sibling and renamed into place.
    """
    from . import figures, pickles, tables

    formats = set(formats)
    unknown = sorted(formats - set(FORMATS))
    if unknown:
        raise ExportError(f"unknown export format {unknown[0]!r}; allowed: {', '.join(FORMATS)}")
    if not formats:
        raise ExportError(f"no export format chosen; allowed: {', '.join(FORMATS)}")
    style = style or FigureStyle()
    out = ensure_writable_dir(out_dir)
    written: list[Path] = []
    if "png" in formats:
        for i, compare in enumerate(comparisons_for(run), start=1):
            fig = figures.compare_figure(run, compare, style)
            written.append(figures.save_figure(fig, out / f"compare-{i:02d}-{slug(compare.title)}.png"))
        for name in run.units:
            fig = figures.config_figure(run, name, style)
            written.append(figures.save_figure(fig, out / f"config-{slug(name)}.png"))
    if "pickle" in formats:
        written.append(pickles.write_report_pickle(run, out / "mlruns.p"))
        written.append(pickles.write_rich_pickle(run, out / f"{slug(run.study)}-histories.p"))
    if "csv" in formats:
        written.append(tables.write_csv(run, out / "histories.csv"))
    if "json" in formats:
        written.append(tables.write_json(tables.summary(run, targets), out / "summary.json"))
    return written
