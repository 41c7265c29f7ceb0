"""optui's use cases, one function each, for the CLI, the session and notebooks.

The CLI, the session and notebooks start, resume, search and confirm runs through here: each
parses its input, calls one of these, and renders the events and results. Training runs on the
calling thread (or on Ray workers it drives); `listener` receives the run's events
(optui.service.events, optui.search.events) as they happen, and `cancel` (a threading.Event) stops a run after its
current chunk, keeping everything finished.

    study = service.load_study("presets/twnet.toml", ["replicates.count=2"])
    run_id = service.run_study(study, Store.open("runs"))
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..study import presets
from ..errors import PresetError
from ..study.presets import Study
from ..search import rank_confirmations, rank_trials, search_space_of
from ..study.search_space import SearchSpace
from ..status import Status
from ..store import Store
from .execution import CompiledGroups
from .searches import SearchRunner, search_run_info
from .studies import StudyRunner, build_workload, plan_units, resolve_strategy

__all__ = ["BestConfig", "CompiledGroups", "SearchRunner", "StudyRunner", "best_config", "build_workload",
           "check_write_target", "confirm_search", "load_study", "plan_units", "resolve_strategy",
           "run_search", "run_study", "search_run_info", "search_spaces", "study_of_run", "write_best"]

Listener = Callable[[Any], None]


def load_study(preset: str | Path, overrides: list[str] | None = None) -> Study:
    """A preset file, validated (with KEY=VALUE overrides), before any device work."""
    return presets.load(preset, overrides)


def study_of_run(store: Store, run_id: str, preset: str | None = None,
                 overrides: list[str] | None = None) -> tuple[str, Study]:
    """(full run id, the study to resume it with): PRESET as it is now (else the preset text
    recorded with the run) with the run's overrides. Resuming refuses it, naming what changed,
    if it differs from what the run started with (optui.service.fingerprint)."""
    from . import fingerprint

    run_id = store.resolve(run_id)
    return run_id, fingerprint.study_for_resume(store, run_id, preset, overrides)


def run_study(study: Study, store: Store, *, configs: list[str] | None = None, replicates: int | None = None,
              resume: str | None = None, listener: Listener | None = None,
              cancel: threading.Event | None = None, runner: StudyRunner | None = None,
              workload: Any = None) -> str:
    """Run a study's configs as seed replicates (or finish run `resume`); returns the run id.

    Pass `runner` to read its run_id if the run stops on an exception part-way, and `workload`
    when it is already built (and checked).
    """
    runner = runner or StudyRunner(study, store, listener, cancel)
    return runner.run(resume=resume, configs=configs, replicates=replicates, workload=workload)


def search_spaces(study: Study, space: str | None = None) -> list[str]:
    """The spaces a search runs: the one named, or every space of the study in turn."""
    if space or len(study.search) <= 1:
        return [search_space_of(study, space).name]
    return list(study.search)


def run_search(study: Study, store: Store, space: str, *, trials: int | None = None,
               resume: str | None = None, confirm: tuple[int, int] | None = None, workload: Any = None,
               listener: Listener | None = None, cancel: threading.Event | None = None,
               runner: SearchRunner | None = None) -> str:
    """Search one space (or finish or extend run `resume`), then confirm the top K with R
    replicates when confirm=(K, R); returns the run id."""
    runner = runner or SearchRunner(study, space, store, listener, cancel)
    if resume:
        info = search_run_info(store, resume)
        if confirm and info["status"] == Status.DONE and not trials:
            return runner.confirm(resume, *confirm, workload=workload)
    return runner.run(trials=trials, resume=resume, confirm=confirm, workload=workload)


def confirm_search(study: Study, store: Store, run_id: str, top: int, replicates: int, *,
                   listener: Listener | None = None, cancel: threading.Event | None = None) -> str:
    """Re-run the `top` best trials of a finished search with `replicates` fresh seed replicates."""
    run_id, _ = study_of_run(store, run_id)
    space = store.run_info(run_id)["meta"].get("space_name")
    return SearchRunner(study, space, store, listener, cancel).confirm(run_id, top, replicates)


@dataclass(frozen=True)
class BestConfig:
    """The config a search recommends: the confirmed best if there was a confirmation, else the
    best trial. `score` is its objective as shown ("final_test_loss 0.58"); `note` says where it
    came from (written as a comment with it)."""

    space: str
    optimizer: str
    params: dict[str, Any]
    source: str
    score: str
    note: str


def best_config(store: Store, run_id: str, space: SearchSpace) -> BestConfig | None:
    """The best config of search run `run_id`, or None when no trial finished without diverging."""
    run_id = store.resolve(run_id)
    meta = store.run_info(run_id)["meta"]
    ranked = rank_trials(store, run_id)
    confirmed = [c for c in rank_confirmations(store, run_id) if c["objective"] is not None]
    budget = meta.get("budget")
    if confirmed:
        top = confirmed[0]
        score = f"{space.objective} mean {top['objective']:.4g} over {top['replicates']} replicates"
        return BestConfig(space.name, space.optimizer, top["params"], f"confirmed best: {top['confirm_of']}", score,
                          f"best of {len(ranked)} trials of search run {run_id} after confirmation: "
                          f"{top['confirm_of']}, {score}; budget {budget}")
    if ranked and ranked[0]["objective"] is not None:
        best = ranked[0]
        score = f"{space.objective} {best['objective']:.4g}"
        return BestConfig(space.name, space.optimizer, best["params"], f"best trial: {best['name']}", score,
                          f"best of {len(ranked)} trials of search run {run_id}: {best['name']}, {score}; "
                          f"budget {budget}")
    return None


def check_write_target(path: Path) -> None:
    """Fail before training if a best config could not be written to this preset."""
    presets.parse_toml(presets.read_text(path), str(path))
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        raise PresetError(f"{path}: not writable (needed to write the best config)")


def write_best(path: Path, best: BestConfig) -> str:
    """Add the best config to a preset as [configs.<space>-searched], keeping its comments;
    returns the config's name."""
    from ..export.search_report import write_best_config

    name = f"{best.space}-searched"
    write_best_config(path, name, best.optimizer, best.params, best.note)
    return name
