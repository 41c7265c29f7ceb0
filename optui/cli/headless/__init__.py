"""Headless runs: a study (`study`) and a search (`search`) driven side by side from the command
line, with rich progress, stop signals, their summary tables and exports. This module holds
their common job: opening the run (new or resumed) and its store, checking the export folder
before training, stopping on signals, and saying how to resume."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from rich.console import Console

from ...system import signals as stop_signals


def open_run(preset: str, overrides: list[str], resume: str | None, store_root: Path,
             force: bool) -> tuple[Any, Any, Any, str | None]:
    """(study, workload or None, store, the resumed run's full id or None).

    A new run opens the store only once its preset and workload have passed every check (a bad
    preset creates nothing). A resumed run reads PRESET as it is now, with the run's overrides,
    and is refused if it changed; its workload is built later. force: take over a run whose
    holder's lease expired.
    """
    from ... import service
    from ...store import Store
    from ...system.terminal import guard_stdout

    guard_stdout()  # output is a view: a plug-in printing into a closed stdout never stops training
    study = None if resume else service.load_study(preset, overrides)
    workload = None if resume else service.build_workload(study)
    store = Store.open(store_root)
    store.take_over_expired = force
    if resume:
        resume, study = service.study_of_run(store, resume, preset, overrides)
    return study, workload, store, resume


def check_export_folder(exports_root: Path, study: Any) -> None:
    """Refuse an export folder that cannot be written before training, not after."""
    from ...export.atomic import ensure_writable_dir
    from ...export.layout import study_dir

    ensure_writable_dir(study_dir(exports_root, study.name))


@contextmanager
def stop_on_signals(cancel: threading.Event, console: Console) -> Iterator[None]:
    """First SIGINT/SIGTERM/SIGHUP: stop after the current chunk. A second: exit at once, even
    while the device is busy with a long chunk (see optui.system.signals).

    Exiting at once still loses at most the chunk in flight: every finished chunk is committed.
    """
    with stop_signals.watch(cancel, console.print):
        yield


def print_resume(console: Any, what: str, command: str) -> None:
    console.print(f"[yellow]{what}. Resume with:[/]\n  {command}")
