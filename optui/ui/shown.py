"""What Compare shows, gathered into one RunResult for the exporters."""

from __future__ import annotations

import dataclasses
import time

from ..results import RunResult


def combine(selection: list[tuple[str, str]], loaded: dict[str, RunResult | None]
            ) -> tuple[RunResult, list[str]] | None:
    """(run id, unit) pairs -> one run and its unit names, in the order shown.

    Units keep their names when they come from one run; mixed runs name them unit@<id tail>.
    The study is the runs' common study, else "compare" (the export folder's name).
    """
    run_ids = list(dict.fromkeys(rid for rid, _ in selection))
    units, names = {}, []
    for rid, unit in selection:
        run = loaded.get(rid)
        if run is None or unit not in run.units:
            continue
        name = unit if len(run_ids) == 1 else f"{unit}@{rid[-6:]}"
        units[name] = dataclasses.replace(run.units[unit], name=name)
        names.append(name)
    runs = [loaded[r] for r in run_ids if loaded.get(r) is not None]
    if not units or not runs:
        return None
    studies = {r.study for r in runs}
    combined = RunResult(
        run_id="+".join(run_ids), study=studies.pop() if len(studies) == 1 else "compare",
        workload=runs[0].workload, kind="compare", status="done", device=runs[0].device,
        created=time.time(), wall_time_s=sum(u.wall_time_s for u in units.values()),
        preset_text="", units=units, meta={"runs": run_ids})
    return combined, names
