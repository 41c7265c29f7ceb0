"""A study as a store run: plan its units (configs x replicates), start or resume, train."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from .. import engine, workloads
from ..engine import DeviceSettingError, Placement, Unit, device, member_keys
from ..errors import OptuiError, PresetError
from ..status import Status
from ..store import Store
from ..study.presets import Study
from ..workloads.base import Strategy, Workload
from . import fingerprint
from .events import RunStarted, UnitFinished, UnitStarted
from .execution import CompiledGroups, Listener, RunDriver, UnitPlan
from .remote import executor_for, record_devices


def resolve_strategy(study: Study, workload: Workload) -> Strategy:
    """The preset's [engine] strategy, or the workload's measured choice for this backend."""
    setting = study.engine.strategy
    if setting == "auto":
        strategy = workload.choose_strategy(device.describe()["backend"])
    else:
        how, members = setting.split("-")
        strategy = Strategy(scan=how == "scan", vmap_replicates=members == "vmap")
    return dataclasses.replace(strategy, max_members=study.engine.replicates_per_batch)


def engine_placement(study: Study) -> Placement:
    """The local devices [engine] devices names; a count this process lacks is a preset error."""
    try:
        return Placement.of(study.engine.devices)
    except DeviceSettingError as exc:
        raise PresetError(f"{study.path or 'preset'}: {exc}") from None


def build_workload(study: Study) -> Workload:
    """The study's workload, built and checked against the contract (see optui.workloads.build)."""
    return workloads.build(study)


def config_plan(study: Study, name: str, steps: int, replicates: int) -> UnitPlan:
    cfg = study.configs[name]
    unit = Unit(name, member_keys(study.replicates_seed, replicates), dict(cfg.hyperparams))
    return UnitPlan(unit, cfg.optimizer, cfg.batch_size, steps)


def metric_count(study: Study) -> int | None:
    """How many eval metrics the study's workload declares (None: not known)."""
    return len(study.spec.metrics) if study.spec is not None else None


def fit_memory(strategy: Strategy, workload: Workload, units: list[Any], study: Study, *,
               search: bool = False, free: tuple[int, int, str] | None = None) -> Strategy:
    """The strategy the units fit in memory with (engine.fit), or a PresetError that gives the
    engine's numbers and says what to change in the preset or on the command line."""
    try:
        return engine.fit(strategy, workload, units, study.eval_points, free=free,
                          metrics=metric_count(study))
    except engine.DoesNotFit as e:
        raise PresetError(f"{study.path or 'preset'}: {e}; {memory_remedy(e, search)}") from None


def memory_remedy(e: engine.DoesNotFit, search: bool) -> str:
    """What a user can change when a run does not fit (the engine's numbers say how much)."""
    if e.memory == "host":
        return "train fewer replicates or fewer steps"
    fewer = ("fewer trials sharing a batch size, or fewer search replicates" if search
             else "replicates.count or --replicates")
    remedy = (f"train at most {e.most_members:,} replicates per run ({fewer})" if e.most_members
              else f"free some memory or use a smaller batch size: one replicate at batch size "
                   f"{e.batch_size:,} does not fit" if e.batch_size
              else "free some memory")
    return remedy + (", or more eval points (shorter chunks)" if e.longer_chunks_help else "")


def plan_units(study: Study, workload: Workload, configs: list[str] | None = None,
               replicates: int | None = None) -> list[UnitPlan]:
    """One unit per config (in preset order), checked against the data before any training."""
    plans = []
    for name in dict.fromkeys(configs or study.configs):  # a config named twice trains once
        if name not in study.configs:
            raise PresetError(f"{study.path or 'preset'}: no config {name!r}; known: {', '.join(study.configs)}")
        cfg = study.configs[name]
        if cfg.batch_size > workload.n_train:
            raise PresetError(f"{study.path or 'preset'}: configs.{name}.batch_size must be at most the "
                              f"training set size ({workload.n_train:,}), got {cfg.batch_size:,}")
        steps = study.budget.steps(cfg.batch_size, workload.n_train)
        plans.append(config_plan(study, name, steps, replicates or study.replicates_count))
    return plans


class StudyRunner:
    """Run (or resume) a study's configs as seed replicates into one store run."""

    def __init__(self, study: Study, store: Store, listener: Listener | None = None,
                 cancel: threading.Event | None = None, compiled: CompiledGroups | None = None):
        self.study = study
        self.store = store
        self.listener = listener or (lambda e: None)
        self.cancel = cancel or threading.Event()
        self.compiled = compiled
        self.run_id: str | None = None
        # Set before run() to train on a Ray cluster: the address ("auto", "ray://host:10001")
        # or "" for a local or RAY_ADDRESS cluster. None follows [engine] executor.
        self.ray_address: str | None = None
        self.executor: Any = None  # the RayExecutor of the last run() on Ray

    def run(self, resume: str | None = None, configs: list[str] | None = None,
            replicates: int | None = None, workload: Workload | None = None) -> str:
        """Run (or resume) the study; returns the run id. The run ends done, interrupted or failed."""
        study = self.study
        workload = workload or build_workload(study)
        strategy = resolve_strategy(study, workload)
        placement = engine_placement(study)
        executor = self.executor = executor_for(study, self.ray_address, strategy)
        dev = {**device.describe(), "device": executor.label if executor else placement.label}
        if resume:
            run_id, units, prior_wall = self._reopen(resume, workload, configs, replicates)
            strategy = fit_memory(strategy, workload, units, study)
            self.store.claim_run(run_id)
        else:
            units = plan_units(study, workload, configs, replicates)
            strategy = fit_memory(strategy, workload, units, study)
            meta = {**dev, "versions": device.versions(), "strategy": strategy.label,
                    "budget": study.budget.describe(), "eval_points": study.eval_points,
                    "seed": study.replicates_seed, "data": workload.info, "overrides": study.overrides,
                    "fingerprint": fingerprint.of(study, workload, [u.name for u in units]),
                    **workloads.run_meta(study)}
            run_id = self.store.create_run(study.name, study.workload, "study", study.text, study.path, meta)
            for u in units:
                cfg = study.configs[u.name]
                self.store.add_unit(run_id, u.name, {**cfg.as_dict(), "steps": u.steps},
                                    u.unit.replicates, u.steps, study.eval_points)
            prior_wall = 0.0
        self.run_id = run_id
        record_devices(self.store, run_id, dev["device"])
        self.listener(RunStarted(run_id, study.name, "study",
                                 {u.name: (u.steps, u.unit.replicates) for u in units},
                                 dev["device"], strategy.label, resumed=bool(resume)))
        driver = RunDriver(self.store, run_id, workload, strategy, eval_points=study.eval_points,
                           checkpoint_seconds=study.engine.checkpoint_seconds, emit=self.listener,
                           cancel=self.cancel, compiled=self.compiled, placement=placement, executor=executor)

        def work() -> tuple[Status, str | None]:
            done = {r["name"] for r in self.store.unit_rows(run_id) if r["status"] == Status.DONE}
            for u in units:  # finished before: shown as done straight away
                if u.name in done:
                    self.listener(UnitStarted(u.name, u.steps, u.unit.replicates, steps_done=u.steps, run_id=run_id))
                    self.listener(UnitFinished(run_id, u.name, Status.DONE, -1, 0.0))
            return driver.train([[u] for u in units if u.name not in done])

        driver.conclude(work, prior_wall)
        return run_id

    def _reopen(self, resume: str, workload: Workload, configs: list[str] | None,
                replicates: int | None) -> tuple[str, list[UnitPlan], float]:
        run_id = self.store.resolve(resume)
        info = self.store.run_info(run_id)
        if info["kind"] != "study":
            raise OptuiError(f"run {run_id} is a {info['kind']} run; resume it with its own command")
        fingerprint.check_resume(self.store, run_id, self.study, workload, configs, replicates)
        if info["status"] == Status.DONE:
            raise OptuiError(f"run {run_id} is already complete; nothing to resume")
        rows = self.store.unit_rows(run_id)
        if any(r["name"] not in self.study.configs for r in rows):
            raise OptuiError(f"run {run_id}: its configs are not all in this preset")
        units = [config_plan(self.study, r["name"], r["total_steps"], r["replicates"]) for r in rows]
        return run_id, units, info["wall_time_s"]
