"""What the session's worker threads do. No widgets here: results go back as Messages through
`post` (the app's thread-safe post_message), errors as JobFailed with a message for the user."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from ..study import presets
from ..errors import OptuiError
from ..results import RunResult
from ..search.plans import NOT_HYPERPARAMETERS
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
        from .. import service  # imports jax: only ever in this thread

        service.run_study(study, store, configs=configs, replicates=replicates, listener=listener, cancel=cancel)

    _run(post, root, "run", go)


def run_search(post: Post, root: Path, study: presets.Study, space: str, trials: int,
               cancel: threading.Event) -> None:
    def go(store, listener):
        from .. import service

        service.run_search(study, store, space, trials=trials, listener=listener, cancel=cancel)

    _run(post, root, "search", go)


def resume_run(post: Post, root: Path, run_id: str, cancel: threading.Event) -> None:
    """Finish an interrupted study or search with the preset recorded with it (checked unchanged)."""
    def go(store, listener):
        from .. import service

        run_id_full, study = service.study_of_run(store, run_id, store.run_info(store.resolve(run_id))["preset_path"])
        info = store.run_info(run_id_full)
        if info["kind"] == "search":
            service.run_search(study, store, info["meta"]["space_name"], resume=run_id_full, listener=listener,
                               cancel=cancel)
        else:
            service.run_study(study, store, resume=run_id_full, listener=listener, cancel=cancel)

    _run(post, root, "resume", go)


def confirm_search(post: Post, root: Path, run_id: str, top: int, replicates: int,
                   cancel: threading.Event) -> None:
    """Re-run a finished search's best `top` trials with `replicates` fresh seed replicates."""
    def go(store, listener):
        from .. import service

        _, study = service.study_of_run(store, run_id, store.run_info(store.resolve(run_id))["preset_path"])
        service.confirm_search(study, store, run_id, top, replicates, listener=listener, cancel=cancel)

    _run(post, root, "confirm", go)


def write_best(store: Any, run_id: str, study: presets.Study, preset: Path) -> str:
    """Write search run_id's best config into the preset file (comments kept); says what it did."""
    from .. import service

    space = study.search.get(store.run_info(run_id)["meta"].get("space_name", ""))
    if space is None:
        raise OptuiError(f"{preset}: has no search space of run {run_id}")
    best = service.best_config(store, run_id, space)
    if best is None:
        raise OptuiError(f"run {run_id}: no trial finished without diverging; nothing to write")
    service.check_write_target(preset)
    name = service.write_best(preset, best)
    return f"wrote [configs.{name}] ({best.source}) to {preset}"


def describe_best(root: Path, run_id: str, study: presets.Study | None) -> str:
    """One line: the config search run_id recommends (confirmed best, else best trial) and how
    to act on it. Opens its own store connection: call it off the UI thread."""
    from .. import service
    from ..search import rank_trials
    from ..store import Store

    store = Store.open(root / "runs")
    try:
        info = store.run_info(run_id)
        space = (study.search or {}).get(info["meta"].get("space_name", "")) if study is not None else None
        if space is None:  # the open preset lacks this space: the best trial as the store ranks it
            ranked = [r for r in rank_trials(store, run_id) if r.get("objective") is not None]
            if not ranked:
                return "best: no trial finished without diverging yet"
            top = ranked[0]
            return (f"best trial {top['name']}: {_params(top['params'])} → {top['objective']:.4g} "
                    f"(open the preset with space {info['meta'].get('space_name')!r} to write it)")
        best = service.best_config(store, run_id, space)
        if best is None:
            return "best: no trial finished without diverging yet"
        return f"{best.source}: {_params(best.params)} · {best.score}"
    finally:
        store.close()


def _params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in params.items() if k not in NOT_HYPERPARAMETERS)


def write_best_in_thread(root: Path, run_id: str, study: presets.Study, preset: Path) -> str:
    """write_best with this thread's own store connection."""
    from ..store import Store

    store = Store.open(root / "runs")
    try:
        return write_best(store, run_id, study, preset)
    finally:
        store.close()


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


def export_folder(root: Path, study: str, run_ids: list[str]) -> Path:
    """exports/<study>/<run id>/: each run's files apart, so exporting another never overwrites them.
    A view mixing runs goes to compare-<id tails>/."""
    from ..export import slug

    tag = run_ids[0] if len(run_ids) == 1 else "compare-" + "-".join(r[-6:] for r in run_ids)
    return root / "exports" / slug(study) / slug(tag)


def export_shown(run: RunResult, names: list[str], metric: str, metric_label: str, band: str,
                 formats: list[str], out_dir: Path, title: str = "") -> list[Path]:
    """The PNG of exactly what Compare shows, plus export_run's pickle/CSV of those units.
    title: the preset's [[compare]] view's title when Compare shows that view."""
    from ..export import FigureStyle, export_run, slug
    from ..export.atomic import ensure_writable_dir
    from ..export.figures import compare_figure, save_figure

    written: list[Path] = []
    style = FigureStyle(band=band)
    out = ensure_writable_dir(out_dir)
    if "png" in formats:
        compare = presets.Compare(title or f"{run.study}: {metric_label}", tuple(names), metric)
        fig = compare_figure(run, compare, style)
        written.append(save_figure(fig, out / f"compare-{slug('-'.join(names))}-{metric}-{band}.png"))
    rest = [f for f in formats if f != "png"]
    if rest:
        written += export_run(run, out, rest, style)
    return written
