"""Where a run's exports go: one folder per run, and a `latest` link per study.

    exports/<study>/<run-id>/    every file of one run, nothing of any other
    exports/<study>/latest       a link to the newest finished run's folder

A run's files never share a folder with another run's, so a figure of an old run can never sit
beside a newer run's summary. Run ids begin with their creation time, so the newest run is the
greatest id.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path
from typing import Iterable

from ..results import RunResult
from .atomic import ensure_writable_dir

LATEST = "latest"
FINISHED = "done"


_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.+-]{0,99}")


def study_folder_name(study: str) -> str:
    """The study's folder name: the name itself when it is a plain file name (as presets require),
    else its slug (a name from an older store or an import)."""
    from . import slug

    return study if _PLAIN.fullmatch(study or "") and study == study.strip() else slug(study)


def study_dir(root: str | Path, study: str) -> Path:
    return Path(root) / study_folder_name(study)


def run_dir(root: str | Path, study: str, run_id: str) -> Path:
    from . import slug

    # Run ids are made by the store (date-time-hex); anything else is never a path to follow.
    safe = run_id if _PLAIN.fullmatch(run_id) and " " not in run_id else slug(run_id)
    return study_dir(root, study) / safe


def latest_run_id(root: str | Path, study: str) -> str | None:
    """The run the study's `latest` link points to, if any."""
    link = study_dir(root, study) / LATEST
    try:
        if link.is_symlink():
            return Path(os.readlink(link)).name
        if link.is_file():  # where links cannot be made, a one-line file holds the id
            return link.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None
    return None


def point_latest(root: str | Path, study: str, run_id: str) -> bool:
    """Point exports/<study>/latest at run_id's folder unless it already shows a newer run.

    Returns True when the link now points at run_id. The link is replaced atomically.
    """
    folder = study_dir(root, study)
    current = latest_run_id(root, study)
    if current is not None and current > run_id and (folder / current).is_dir():
        return False
    link = folder / LATEST
    tmp = folder / f".{LATEST}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.symlink(run_id, tmp, target_is_directory=True)
    except OSError:  # no symbolic links here (some file systems): a file naming the run
        tmp.write_text(run_id + "\n", encoding="utf-8")
    if link.is_dir() and not link.is_symlink():
        return False  # a real folder named "latest" (made by hand): leave it alone
    os.replace(tmp, link)
    return True


def export_to_run_folder(run: RunResult, root: str | Path, formats: Iterable[str] | None = None,
                         style=None, targets: dict[str, float] | None = None) -> tuple[Path, list[Path], bool]:
    """Write a run's exports into exports/<study>/<run-id>/ and, for a finished run, move the
    study's `latest` link to it when it is the newest. Returns (folder, files, latest moved)."""
    from . import DEFAULT_FORMATS, export_run

    folder = ensure_writable_dir(run_dir(root, run.study, run.run_id))
    files = export_run(run, folder, formats or DEFAULT_FORMATS, style, targets)
    moved = run.status == FINISHED and point_latest(root, run.study, run.run_id)
    return folder, files, moved


def write_exports(run: RunResult, root: str | Path, console) -> int:
    """A finished run's exports at the end of `optui run`; returns the exit code.

    The run is done and stored whatever happens here: a failed export says so and how to retry,
    instead of making the run look failed.
    """
    from ..errors import OptuiError

    try:
        folder, files, latest = export_to_run_folder(run, root)
    except Exception as exc:  # noqa: BLE001 - any export failure leaves the stored run intact
        reason = str(exc) if isinstance(exc, OptuiError) else f"{type(exc).__name__}: {exc}"
        print(f"error: the run is done and stored, but its export failed ({reason}); retry with "
              f"`optui export {run.run_id}`", file=sys.stderr)
        return 1
    note = f"; {study_dir(root, run.study) / LATEST} points here" if latest else ""
    console.print(f"wrote {len(files)} files to {folder}/ (summary.json, figures, histories{note})",
                  highlight=False, markup=False)
    return 0
