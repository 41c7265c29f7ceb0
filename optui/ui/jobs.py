"""What the session's worker threads do. No widgets here: results go back as Messages through
`post` (the app's thread-safe post_message), errors as JobFailed with a message for the user."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from .. import presets
from ..errors import OptuiError
from ..results import RunResult
from .messages import EngineEvent, JobFailed, RunDone
from .presetdoc import workload_fields

Post = Callable[[Any], Any]


@contextmanager
def reported(post: Post, title: str) -> Iterator[None]:
    """Any error becomes a JobFailed notification, never a traceback on the terminal."""
    try:
        yield
    except OptuiError as exc:
        post(JobFailed(title, str(exc)))
    except Exception as exc:
        post(JobFailed(title, f"{type(exc).__name__}: {exc}"))


def check_preset(text: str, file: str, workload: object) -> tuple[Any, str | None, dict]:
    """(study or None, error or None, the workload's field specs); imports the workload (jax)."""
    try:
        fields = workload_fields(workload, file)
    except Exception:
        fields = {}  # the validation below reports an unknown workload
    try:
        return presets.loads(text, file), None, fields
    except OptuiError as exc:
        return None, str(exc), fields
    except Exception as exc:
        return None, f"{file}: {type(exc).__name__}: {exc}", fields


def run_replicates(post: Post, root: Path, study: presets.Study, configs: list[str], replicates: int,
                   cancel: threading.Event) -> None:
    def go(store, listener):
        from ..engine.runner import StudyRunner  # imports jax: only ever in this thread

        StudyRunner(study, store, listener, cancel).run(configs=configs, replicates=replicates)

    _run(post, root, "run", go)


def run_search(post: Post, root: Path, study: presets.Study, space: str, trials: int,
               cancel: threading.Event) -> None:
    def go(store, listener):
        from ..search import SearchRunner

        SearchRunner(study, space, store, listener, cancel).run(trials=trials)

    _run(post, root, "search", go)


def _run(post: Post, root: Path, title: str, go: Callable[[Any, Callable], Any]) -> None:
    """Open a store connection for this thread, run, and always report RunDone at the end."""
    store = None
    try:
        with reported(post, title):
            from ..store import Store

            store = Store.open(root / "runs")  # its own connection: this thread writes
            go(store, lambda event: post(EngineEvent(event)))
    finally:
        if store is not None:
            store.close()
        post(RunDone())


def export_shown(run: RunResult, names: list[str], metric: str, metric_label: str, band: str,
                 formats: list[str], out_dir: Path) -> list[Path]:
    """The PNG of exactly what Compare shows, plus export_run's pickle/CSV of those units."""
    from ..export import FigureStyle, export_run, slug
    from ..export.atomic import ensure_writable_dir
    from ..export.figures import compare_figure, save_figure

    written: list[Path] = []
    style = FigureStyle(band=band)
    out = ensure_writable_dir(out_dir)
    if "png" in formats:
        compare = presets.Compare(f"{run.study}: {metric_label}", tuple(names), metric)
        fig = compare_figure(run, compare, style)
        written.append(save_figure(fig, out / f"compare-{slug('-'.join(names))}-{metric}-{band}.png"))
    rest = [f for f in formats if f != "png"]
    if rest:
        written += export_run(run, out, rest, style)
    return written
