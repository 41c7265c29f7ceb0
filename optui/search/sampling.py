"""Learning samplers (Optuna's QMC, TPE and CMA-ES) over an optui search space, asked in rounds.

optui's store is the source of truth: before each round the Optuna study is rebuilt from the
stored trials (their params, told results, intermediate values and the attributes Optuna's
samplers keep on trials and on the study), and the round's sampler is seeded from (search seed,
round). An uninterrupted search and a resumed one therefore rebuild the same study and ask the
same next trials.

Distributions come from the space: uniform and log floats, ints (log or not), and bucketed
batch sizes as an ordered int over the bucket index (so TPE and CMA-ES see neighbouring buckets
as near). Drawn floats are rounded like random search's, so the value trained is the value stored.
"""

from __future__ import annotations

import math
import warnings
import zlib
from typing import Any

import numpy as np

from ..optional import require
from ..study.search_space import SearchSpace
from ..status import Status


def optuna_module(purpose: str) -> Any:
    """Optuna, or MissingDependency with the install command."""
    optuna = require("optuna", purpose)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def check_packages(space: SearchSpace) -> None:
    """Before any training: the optional packages the space's sampler and pruner need."""
    if space.learns:
        optuna_module(f"sampler = \"{space.sampler}\" (search.{space.name})")
    if space.sampler == "cmaes":
        require("cmaes", f"sampler = \"cmaes\" (search.{space.name})")
    if space.pruner == "median":
        optuna_module(f"pruner = \"median\" (search.{space.name})")


def distributions(space: SearchSpace) -> dict[str, Any]:
    """Optuna distributions of the space's searched hyperparameters (bucketed: the bucket index)."""
    optuna = optuna_module("the learning samplers")
    d = optuna.distributions
    out: dict[str, Any] = {}
    for name, iv in space.intervals.items():
        if iv.buckets:
            out[name] = d.IntDistribution(0, max(iv.buckets - 1, 0))
        elif iv.integer:
            out[name] = d.IntDistribution(int(iv.low), int(iv.high), log=iv.scale == "log")
        else:
            out[name] = d.FloatDistribution(iv.low, iv.high, log=iv.scale == "log")
    return out


def to_optuna(space: SearchSpace, params: dict[str, float]) -> dict[str, Any]:
    """A trial's stored params as Optuna's values (bucket values as their index)."""
    out: dict[str, Any] = {}
    for name, iv in space.intervals.items():
        v = params[name]
        out[name] = iv.bucket_index(v) if iv.buckets else (int(v) if iv.integer else float(v))
    return out


def from_optuna(space: SearchSpace, values: dict[str, Any]) -> dict[str, float]:
    """Optuna's values as a full trial's params: snapped, with the fixed and default values."""
    return space.trial_params({name: iv.bucket_value(int(values[name])) if iv.buckets else iv.snap(float(values[name]))
                               for name, iv in space.intervals.items()})


def round_seed(seed: int, round_index: int) -> int:
    return int(np.random.SeedSequence([seed, round_index, zlib.crc32(b"sampler")]).generate_state(1)[0])


def make_sampler(space: SearchSpace, round_index: int, width: int) -> Any:
    optuna = optuna_module(f"sampler = \"{space.sampler}\"")
    samplers = optuna.samplers
    if space.sampler == "tpe":
        # The first round is the random start-up; the model fits from the second.
        return samplers.TPESampler(seed=round_seed(space.seed, round_index), n_startup_trials=min(10, width))
    if space.sampler == "cmaes":
        require("cmaes", "sampler = \"cmaes\"")
        return samplers.CmaEsSampler(seed=round_seed(space.seed, round_index), popsize=max(width, 2),
                                     warn_independent_sampling=False)
    if space.sampler == "qmc":
        # One scrambled Sobol sequence for the whole search: its position is kept on the study.
        with warnings.catch_warnings():  # "experimental" is Optuna's note to itself, not the user's
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return samplers.QMCSampler(seed=space.seed, warn_independent_sampling=False)
    raise ValueError(f"not a learning sampler: {space.sampler}")


def _state(optuna: Any, status: str) -> Any:
    states = optuna.trial.TrialState
    return {Status.DONE: states.COMPLETE, Status.PRUNED: states.PRUNED, Status.DIVERGED: states.FAIL,
            Status.FAILED: states.FAIL}.get(status, states.RUNNING)


def rebuild_study(space: SearchSpace, trials: list[dict[str, Any]], saved: dict[str, Any],
                  sampler: Any = None, pruner: Any = None) -> Any:
    """An in-memory Optuna study holding the stored trials, in draw order.

    trials: dicts with name, params, status, objective, intermediate ({eval point: value});
    saved: {"study": study system attrs, "trials": {name: trial system attrs}} as persisted.
    """
    optuna = optuna_module("the learning samplers")
    study = optuna.create_study(direction="maximize" if space.goal == "max" else "minimize",
                                sampler=sampler, pruner=pruner)
    dists = distributions(space)
    for t in trials:
        state = _state(optuna, t["status"])
        value = t.get("objective") if state == optuna.trial.TrialState.COMPLETE else None
        if state == optuna.trial.TrialState.COMPLETE and value is None:
            state = optuna.trial.TrialState.FAIL
        inter = {int(k): float(v) for k, v in (t.get("intermediate") or {}).items() if math.isfinite(v)}
        study.add_trial(optuna.trial.create_trial(
            params=to_optuna(space, t["params"]), distributions=dists, value=value, state=state,
            intermediate_values=inter, system_attrs=dict(saved.get("trials", {}).get(t["name"], {}))))
    for k, v in saved.get("study", {}).items():
        study._storage.set_study_system_attr(study._study_id, k, v)  # e.g. QMC's sequence position
    return study


def ask_round(space: SearchSpace, trials: list[dict[str, Any]], saved: dict[str, Any], round_index: int,
              width: int, count: int) -> tuple[list[dict[str, float]], dict[str, Any]]:
    """The next `count` trials' params from the space's sampler, and the state to persist
    ({"study": ..., "trials_new": [system attrs of each asked trial]})."""
    study = rebuild_study(space, trials, saved, make_sampler(space, round_index, width))
    dists = distributions(space)
    asked = [study.ask(dists) for _ in range(count)]
    frozen = {t.number: t for t in study.get_trials(deepcopy=False)}
    attrs = [dict(frozen[t.number].system_attrs) for t in asked]
    study_attrs = dict(study._storage.get_study_system_attrs(study._study_id))
    return [from_optuna(space, t.params) for t in asked], {"study": study_attrs, "trials_new": attrs}
