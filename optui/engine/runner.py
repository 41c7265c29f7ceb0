"""Run a study's configs as seed replicates: plan, compile, train chunk by chunk, record, resume.

The runner is the only place that joins the engine to the store. It emits events for consumers
and checks a threading.Event between chunks, so cancelling loses nothing already recorded.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import fingerprint
from ..errors import OptuiError, PresetError
from ..presets import Config, Study
from ..store import Store
from ..workloads import module as workload_module
from ..workloads.base import Strategy, Workload
from . import device, failures, memory
from .core import GroupRunner, chunk_bounds, replicate_keys, run_group, state_from_bytes, state_to_bytes
from .events import ChunkDone, Event, RunFinished, RunStarted, UnitFinished, UnitStarted
from .failures import end_run

# States up to this size are checkpointed after every chunk; larger ones every checkpoint_seconds.
SMALL_STATE_BYTES = 16 * 2**20

Listener = Callable[[Event], None]


@dataclass
class UnitPlan:
    name: str
    config: Config
    steps: int
    replicates: int


def resolve_strategy(study: Study, workload: Workload) -> Strategy:
    setting = study.engine["strategy"]
    if setting == "auto":
        strategy = workload.choose_strategy(device.describe()["backend"])
    else:
        how, members = setting.split("-")
        strategy = Strategy(scan=how == "scan", vmap_replicates=members == "vmap")
    return dataclasses.replace(strategy, max_members=study.engine["replicates_per_batch"])


def plan_units(study: Study, workload: Workload, configs: list[str] | None = None,
               replicates: int | None = None) -> list[UnitPlan]:
    names = list(dict.fromkeys(configs or study.configs))  # a config named twice trains once
    plans = []
    for name in names:
        if name not in study.configs:
            raise PresetError(f"{study.path or 'preset'}: no config {name!r}; known: {', '.join(study.configs)}")
        cfg = study.configs[name]
        if cfg.batch_size > workload.n_train:
            raise PresetError(f"{study.path or 'preset'}: configs.{name}.batch_size must be at most the "
                              f"training set size ({workload.n_train:,}), got {cfg.batch_size:,}")
        steps = study.budget.steps(cfg.batch_size, workload.n_train)
        plans.append(UnitPlan(name, cfg, steps, replicates or study.replicates_count))
    return plans


def build_workload(study: Study) -> Workload:
    return workload_module(study.workload, study.path).build(study)


class StudyRunner:
    def __init__(self, study: Study, store: Store, listener: Listener | None = None,
                 cancel: threading.Event | None = None):
        self.study = study
        self.store = store
        self.listener = listener or (lambda e: None)
        self.cancel = cancel or threading.Event()
        self.run_id: str | None = None

    def emit(self, event: Event) -> None:
        self.listener(event)

    def run(self, resume: str | None = None, configs: list[str] | None = None,
            replicates: int | None = None, workload: Workload | None = None) -> str:
        """Run (or resume) the study; returns the run id. The run ends done, interrupted or failed."""
        study = self.study
        workload = workload or build_workload(study)
        strategy = resolve_strategy(study, workload)
        dev = device.describe()
        if resume:
            run_id = self.store.resolve(resume)
            info = self.store.run_info(run_id)
            if info["kind"] != "study":
                raise OptuiError(f"run {run_id} is a {info['kind']} run; resume it with its own command")
            fingerprint.check_resume(self.store, run_id, study, workload, configs, replicates)
            if info["status"] == "done":
                raise OptuiError(f"run {run_id} is already complete; nothing to resume")
            units = [UnitPlan(r["name"], study.configs[r["name"]] if r["name"] in study.configs else None,
                              r["total_steps"], r["replicates"]) for r in self.store.unit_rows(run_id)]
            if any(u.config is None for u in units):
                raise OptuiError(f"run {run_id}: its configs are not all in this preset")
            strategy = memory.fit(strategy, workload, units, study.eval_points, study.path or "preset")
            prior_wall = info["wall_time_s"]
            self.store.claim_run(run_id)
        else:
            units = plan_units(study, workload, configs, replicates)
            strategy = memory.fit(strategy, workload, units, study.eval_points, study.path or "preset")
            meta = {**dev, "versions": device.versions(), "strategy": strategy.label,
                    "budget": study.budget.describe(), "eval_points": study.eval_points,
                    "seed": study.replicates_seed, "data": workload.info,
                    "overrides": study.overrides, "fingerprint": fingerprint.of(study, workload, [u.name for u in units])}
            run_id = self.store.create_run(study.name, study.workload, "study", study.text, study.path, meta)
            for u in units:
                self.store.add_unit(run_id, u.name, {**u.config.as_dict(), "steps": u.steps},
                                    u.replicates, u.steps, study.eval_points)
            prior_wall = 0.0
        self.run_id = run_id
        started = time.perf_counter()
        self.emit(RunStarted(run_id, study.name, "study", {u.name: (u.steps, u.replicates) for u in units},
                             dev["device"], strategy.label, resumed=bool(resume)))
        status = "done"
        try:
            done_units = {r["name"] for r in self.store.unit_rows(run_id) if r["status"] == "done"}
            runners: dict[tuple, GroupRunner] = {}
            for u in units:
                if u.name in done_units:
                    self.emit(UnitStarted(run_id, u.name, u.steps, u.replicates, steps_done=u.steps))
                    self.emit(UnitFinished(run_id, u.name, "done", -1, 0.0))
                    continue
                if self.cancel.is_set():  # stopped during the previous unit's last chunk
                    status = "interrupted"
                    break
                key = (u.config.optimizer, u.config.batch_size)
                if key not in runners:
                    runners[key] = GroupRunner(workload, u.config.optimizer, u.config.batch_size, strategy)
                if not self._run_unit(run_id, u, runners[key]):
                    status = "interrupted"
                    break
        except BaseException as exc:
            end_run(self.store, run_id, prior_wall + time.perf_counter() - started, exc, self.emit)
            user_exc = failures.for_user(exc, run_id)
            if user_exc is exc:
                raise
            raise user_exc from None
        wall = prior_wall + time.perf_counter() - started
        self.store.finish_run(run_id, status, wall)
        self.emit(RunFinished(run_id, status, wall))
        return run_id

    def _run_unit(self, run_id: str, u: UnitPlan, runner: GroupRunner) -> bool:
        """Train one config's replicates; False when cancelled part-way."""
        study = self.study
        keys = replicate_keys(study.replicates_seed, u.replicates)
        hparams = {k: np.full(u.replicates, v, np.float32) for k, v in u.config.hyperparams.items()}
        resume = None
        ckpt = self.store.checkpoint(run_id, u.name)
        if ckpt is not None:
            template = runner.init(keys, hparams)
            resume = (ckpt[0], state_from_bytes(template, ckpt[1]))
            self.store.truncate_unit(run_id, u.name, ckpt[0])
        else:
            self.store.truncate_unit(run_id, u.name, -2)  # nothing to continue from: start over
        bounds = chunk_bounds(u.steps, study.eval_points)
        steps_done = bounds[resume[0] + 1] if resume else 0
        self.emit(UnitStarted(run_id, u.name, u.steps, u.replicates, steps_done=steps_done))
        t0 = time.perf_counter()
        last_ckpt = time.monotonic()
        small_state: bool | None = None
        last_div = np.full(u.replicates, -1)
        for out, state in run_group(runner, keys, hparams, u.steps, study.eval_points, resume):
            cancelled = self.cancel.is_set()
            final = out.chunk_index == out.chunks_total - 1
            blob = None
            due = time.monotonic() - last_ckpt >= study.engine["checkpoint_seconds"]
            if not final and (small_state is not False or due or cancelled):
                blob = state_to_bytes(state)
                small_state = len(blob) <= SMALL_STATE_BYTES
                if not (small_state or due or cancelled):
                    blob = None
            self.store.write_chunk(run_id, u.name, out.chunk_index, out.step_start, out.minibatch_loss,
                                   out.step_end, out.eval, out.diverged_at, state=blob)
            if blob is not None:
                last_ckpt = time.monotonic()
            last_div = out.diverged_at
            self.emit(ChunkDone(run_id, u.name, out.chunk_index, out.chunks_total, out.step_end, u.steps,
                                out.minibatch_loss, out.step_end, out.eval, out.diverged_at,
                                time.perf_counter() - t0))
            if cancelled and not final:
                self.store.add_unit_time(run_id, u.name, time.perf_counter() - t0)
                self.store.finish_unit(run_id, u.name, "interrupted",
                                       self._unit_wall(run_id, u.name))
                self.emit(UnitFinished(run_id, u.name, "interrupted", int((last_div >= 0).sum()),
                                       time.perf_counter() - t0))
                return False
        self.store.add_unit_time(run_id, u.name, time.perf_counter() - t0)
        wall = self._unit_wall(run_id, u.name)
        self.store.finish_unit(run_id, u.name, "done", wall)
        self.emit(UnitFinished(run_id, u.name, "done", int((last_div >= 0).sum()), wall))
        return True

    def _unit_wall(self, run_id: str, name: str) -> float:
        return next(r["wall_time_s"] for r in self.store.unit_rows(run_id) if r["name"] == name)

