"""A search as a store run: draw trials, train them grouped by shape, score, confirm, resume.

Every trial is a unit of a run of kind "search" (named like "adam-t007", spec = its
hyperparameters); its objective lands in the unit's extra when it finishes. Events for
consumers: the engine's, one unit per trial, plus TrialsPlanned once after RunStarted and
TrialScored after each trial's UnitFinished (see optui.search).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from .. import workloads
from ..engine import Unit, device, member_keys
from ..errors import OptuiError, PresetError
from ..search import (CONFIRM_STREAM, TrialPlan, TrialScored, TrialsPlanned, confirm_name, plan_from_row,
                      rank_trials, score_unit, search_space_of, trial_name)
from ..search.sampling import ask_round, check_packages
from ..status import FINISHED, Status
from ..store import Store
from ..study.presets import Study
from ..study.search_space import SAMPLERS, SearchSpace, fair_budget
from . import fingerprint
from .events import RunStarted, UnitFinished, UnitStarted
from .execution import CompiledGroups, EarlyStop, Listener, RunDriver, UnitPlan
from .pruning import RungPruner, intermediate
from .remote import check_pruner_on_ray, executor_for, record_devices
from .studies import build_workload, engine_placement, resolve_strategy


# Trials per round of a learning sampler when neither the space nor the engine sets a width.
DEFAULT_ROUND_TRIALS = 5


@dataclass(frozen=True)
class TrialGroup:
    """Trials sharing a batch size, trained together: what the memory plan reads of them."""

    name: str
    optimizer: str
    hyperparams: dict[str, float]
    batch_size: int
    steps: int
    replicates: int
    label: str


class SearchRunner:
    """Run (or resume, extend, confirm) one search space of a study as a store run."""

    def __init__(self, study: Study, space_name: str | None, store: Store, listener: Listener | None = None,
                 cancel: threading.Event | None = None, compiled: CompiledGroups | None = None):
        self.study = study
        self.space = search_space_of(study, space_name)
        self.store = store
        self.listener = listener or (lambda e: None)
        self.cancel = cancel or threading.Event()
        self.compiled = compiled or CompiledGroups()
        self.run_id: str | None = None
        self.workload: Any = None
        self.strategy: Any = None
        self.budget_note = ""
        self.ray_address: str | None = None  # as StudyRunner.ray_address
        self.placement: Any = None
        self.executor: Any = None
        self.compiles = 0  # training programs this runner had to compile
        self.programs: set[tuple] = set()  # (optimizer, batch, members per call[, steps per call])

    # -- public --------------------------------------------------------------------------------
    def run(self, trials: int | None = None, resume: str | None = None,
            confirm: tuple[int, int] | None = None, workload: Any = None) -> str:
        """Run the search (or finish one with resume=RUN_ID); returns the run id.

        trials overrides the space's count; with resume it may extend the run (trial i's draw
        never depends on the count). confirm = (top K, replicates R) re-runs the K best trials
        with R fresh seed replicates once the search is done. The run ends done, interrupted
        or failed (some trials failed: resume re-runs them).
        """
        space = self._prepare(workload)
        budget, self.budget_note = fair_budget(space, self.study.budget)
        if resume:
            run_id = self._reopen(resume)
            fingerprint.check_resume(self.store, run_id, self.study, self.workload)
            info = self.store.run_info(run_id)
            existing = {r["name"] for r in self.store.unit_rows(run_id)}
            count = max(int(info["meta"].get("trials", space.trials)), trials or 0)
            confirm = confirm or (tuple(info["meta"]["confirm"]) if info["meta"].get("confirm") else None)
            prior_wall = info["wall_time_s"]
            self._plan_memory(budget, count)
            self.store.claim_run(run_id)
        else:
            count = trials or space.trials
            self._plan_memory(budget, count)  # refused here, before the run exists
            meta = {**device.describe(), "device": self.device_label, "versions": device.versions(),
                    "strategy": self.strategy.label,
                    "space": space.as_dict(), "space_name": space.name, "seed": space.seed,
                    "budget": budget.describe(), "budget_note": self.budget_note,
                    "eval_points": self.study.eval_points, "data": self.workload.info,
                    "overrides": self.study.overrides,
                    "fingerprint": fingerprint.of(self.study, self.workload, space=space.name),
                    **workloads.run_meta(self.study)}
            run_id = self.store.create_run(self.study.name, self.study.workload, "search", self.study.text,
                                           self.study.path, meta)
            existing, prior_wall = set(), 0.0
        self.run_id = run_id
        self.store.update_run_meta(run_id, trials=count, confirm=list(confirm) if confirm else None)
        if not space.learns:
            for i in range(count):  # new trials only: a resumed run keeps its stored draws
                name = trial_name(space.name, i)
                if name not in existing:
                    self._add_trial(run_id, budget, i, space.sample(i))
        elif not resume:
            self.store.update_run_meta(run_id, round_trials=self._round_width())
        driver = self._driver(run_id)
        early_stop = RungPruner(self.store, run_id, space, self.study.eval_points).early_stop()

        def work() -> tuple[Status, str | None]:
            errors: list[str] = []
            failed_here: set[str] = set()
            rounds = 0  # rounds trained in this call
            while True:
                rows = self._search_rows(run_id)
                waiting = [r for r in rows if r["status"] not in FINISHED and r["name"] not in failed_here]
                if space.learns and not waiting and len(rows) < count:
                    self._ask_round(run_id, budget, rows, count)
                status, error = self._execute(driver, bool(resume), confirm_units=False,
                                              early_stop=early_stop, skip=failed_here, announce=not rounds)
                rounds += 1
                if status == Status.INTERRUPTED:
                    return status, None
                if error:
                    errors.append(error)
                    # Told as failed; the next round goes on, and a resume re-runs them.
                    failed_here |= {r["name"] for r in self._search_rows(run_id) if r["status"] == Status.FAILED}
                if not space.learns or len(self._search_rows(run_id)) >= count:
                    break
            status, error = (Status.FAILED, errors[0]) if errors else (Status.DONE, None)
            if status == Status.DONE and confirm:
                self._add_confirm_units(run_id, *confirm)
                status, error = self._execute(driver, bool(resume), confirm_units=True)
            return status, error

        driver.conclude(work, prior_wall)
        self.compiles, self.programs = driver.compiles, driver.programs
        return run_id

    def confirm(self, run_id: str, top: int, replicates: int, workload: Any = None) -> str:
        """Re-run the `top` best trials of a finished search with `replicates` seed replicates."""
        self._prepare(workload)
        run_id = self._reopen(run_id)
        fingerprint.check_resume(self.store, run_id, self.study, self.workload)
        info = self.store.run_info(run_id)
        if info["status"] != Status.DONE:
            raise OptuiError(f"run {run_id} is {info['status']}; finish the search first (--resume {run_id})")
        self.run_id = run_id
        self.store.claim_run(run_id)
        self.store.update_run_meta(run_id, confirm=[top, replicates])
        self._add_confirm_units(run_id, top, replicates)
        driver = self._driver(run_id)
        driver.conclude(lambda: self._execute(driver, False, confirm_units=True), info["wall_time_s"])
        self.compiles, self.programs = driver.compiles, driver.programs
        return run_id

    # -- internals -----------------------------------------------------------------------------
    def _plan_memory(self, budget: Any, count: int) -> None:
        """Plan a search's memory as a study's: trials sharing a batch size train as one group, so
        a group's members are its trials times their replicates. The widest group, the largest
        batch and the longest trials are checked (refused with the numbers, or trained in smaller
        vmapped calls: self.strategy)."""
        from .studies import fit_memory

        space = self.space
        # A learning sampler trains a round at a time; its draws are not known yet, so a random
        # draw of the same space stands in for them.
        drawn = count if not space.learns else min(count, self._round_width())
        groups: dict[int, list[dict[str, float]]] = {}
        for i in range(drawn):
            params = space.sample(i)
            groups.setdefault(int(params["batch_size"]), []).append(params)
        if not groups:
            return
        n_train = self.workload.n_train
        widest = max(groups, key=lambda b: len(groups[b]))
        largest = max(groups)
        longest = max(groups, key=lambda b: budget.steps(b, n_train))
        units = []
        for b in dict.fromkeys((widest, largest, longest)):
            trials = groups[b]
            hparams = {n: trials[0][n] for n in space.params if n != "batch_size"}
            units.append(TrialGroup(
                name=space.name, optimizer=space.optimizer, hyperparams=hparams, batch_size=b,
                steps=budget.steps(b, n_train), replicates=len(trials) * space.replicates,
                label=f"search {space.name} ({len(trials):,} trials x {space.replicates:,} replicates "
                      f"at batch size {b:,}, trained together)"))
        self.strategy = fit_memory(self.strategy, self.workload, units, self.study, search=True)

    def _add_trial(self, run_id: str, budget: Any, index: int, params: dict[str, float],
                   round_index: int | None = None) -> None:
        plan = TrialPlan(trial_name(self.space.name, index), index, params,
                         budget.steps(params["batch_size"], self.workload.n_train), self.space.replicates,
                         round=round_index)
        self.store.add_unit(run_id, plan.name, plan.spec(self.space), plan.replicates, plan.steps,
                            self.study.eval_points)

    def _search_rows(self, run_id: str) -> list[dict[str, Any]]:
        return [r for r in self.store.unit_rows(run_id) if not r["spec"].get("confirm_of")]

    def _round_width(self) -> int:
        """Trials per round: the space's round_trials, else as many as one vectorised call takes
        (the engine's replicates_per_batch over the trial's replicates), else DEFAULT_ROUND_TRIALS."""
        if self.space.round_trials:
            return self.space.round_trials
        if self.strategy.max_members:
            return max(1, self.strategy.max_members // self.space.replicates)
        return DEFAULT_ROUND_TRIALS

    def _ask_round(self, run_id: str, budget: Any, rows: list[dict[str, Any]], count: int) -> None:
        """Ask the sampler the next round of trials (rebuilt from the store) and store them."""
        meta = self.store.run_info(run_id)["meta"]
        width = int(meta.get("round_trials") or self._round_width())
        round_index = 1 + max((int(r["spec"].get("round", -1)) for r in rows), default=-1)
        told = []
        for r in rows:
            plan = plan_from_row(r)
            told.append({"name": r["name"], "params": plan.params, "status": r["status"],
                         "objective": r["extra"].get("objective"),
                         "intermediate": intermediate(self.store.load_unit(run_id, r), self.space)})
        saved = meta.get("optuna") or {"study": {}, "trials": {}}
        params, state = ask_round(self.space, told, saved, round_index, width, min(width, count - len(rows)))
        for j, (p, attrs) in enumerate(zip(params, state["trials_new"])):
            index = len(rows) + j
            self._add_trial(run_id, budget, index, p, round_index)
            saved["trials"][trial_name(self.space.name, index)] = attrs
        saved["study"] = state["study"]
        self.store.update_run_meta(run_id, optuna=saved)

    def _prepare(self, workload: Any) -> SearchSpace:
        if self.workload is None:
            self.workload = workload or build_workload(self.study)
            self.strategy = resolve_strategy(self.study, self.workload)
            self.placement = engine_placement(self.study)
            check_pruner_on_ray(self.study, self.space, self.ray_address)  # before the run exists
            self.executor = executor_for(self.study, self.ray_address, self.strategy)
        self.space.check_batch_sizes(self.workload.n_train)  # before any training
        check_packages(self.space)
        return self.space

    def _driver(self, run_id: str) -> RunDriver:
        record_devices(self.store, run_id, self.device_label)
        return RunDriver(self.store, run_id, self.workload, self.strategy, eval_points=self.study.eval_points,
                         checkpoint_seconds=self.study.engine.checkpoint_seconds, emit=self.listener,
                         cancel=self.cancel, compiled=self.compiled, placement=self.placement,
                         executor=self.executor, bucket_members=True)

    @property
    def device_label(self) -> str:
        """Which devices train this search: local ones, or the Ray cluster's workers."""
        return self.executor.label if self.executor else self.placement.label

    def _reopen(self, run_id: str) -> str:
        run_id = self.store.resolve(run_id)
        info = search_run_info(self.store, run_id)
        stored = info["meta"].get("space_name")
        if stored != self.space.name:
            raise OptuiError(f"run {run_id} searched space {stored!r}, not {self.space.name!r}; "
                             f"use --space {stored}")
        return run_id

    def _add_confirm_units(self, run_id: str, top: int, replicates: int) -> None:
        ranked = [t for t in rank_trials(self.store, run_id) if t["objective"] is not None][:top]
        if not ranked:
            raise OptuiError(f"run {run_id}: no trial finished without diverging; nothing to confirm")
        existing = {r["name"] for r in self.store.unit_rows(run_id)}
        for t in ranked:
            name = confirm_name(t["name"], replicates)
            if name not in existing:
                plan = TrialPlan(name, t["trial"] - 1, t["params"], t["steps"], replicates, CONFIRM_STREAM,
                                 t["name"])
                self.store.add_unit(run_id, name, plan.spec(self.space), replicates, plan.steps,
                                    self.study.eval_points)

    def _unit_plan(self, p: TrialPlan) -> UnitPlan:
        keys = member_keys(self.space.seed, p.replicates, p.index, p.stream)
        hparams = {n: p.params[n] for n in self.space.params if n != "batch_size"}
        return UnitPlan(Unit(p.name, keys, hparams), self.space.optimizer, p.batch_size, p.steps)

    def _execute(self, driver: RunDriver, resumed: bool, confirm_units: bool, early_stop: EarlyStop | None = None,
                 skip: set[str] = frozenset(), announce: bool = True) -> tuple[Status, str | None]:
        """Train every unfinished unit of the chosen kind (but those in skip); (run status, first error).

        announce: start the listeners' view of the run (RunStarted, finished trials replayed);
        False for a learning sampler's later rounds, whose TrialsPlanned adds the new trials.
        """
        run_id = driver.run_id
        rows = [r for r in self.store.unit_rows(run_id) if bool(r["spec"].get("confirm_of")) == confirm_units]
        plans = {r["name"]: plan_from_row(r) for r in rows}
        groups = self._group([plans[r["name"]] for r in rows if r["status"] not in FINISHED and r["name"] not in skip])
        if not groups and skip:
            return Status.DONE, None
        if announce:
            self.listener(RunStarted(run_id, self.study.name, "confirm" if confirm_units else "search",
                                     {p.name: (p.steps, p.replicates) for p in plans.values()},
                                     self.device_label, self.strategy.label, resumed=resumed))
        self.listener(TrialsPlanned(
            run_id, self.space.name, self.space.objective, self.budget_note,
            [{"name": r["name"], "trial": plans[r["name"]].index + 1, "params": plans[r["name"]].params,
              "steps": r["total_steps"], "replicates": r["replicates"], "status": r["status"],
              "objective": r["extra"].get("objective")} for r in rows],
            [(self.space.optimizer, g[0].batch_size, tuple(p.name for p in g)) for g in groups]))
        for r in rows if announce else ():  # finished earlier: shown as done straight away
            if r["status"] in FINISHED:
                p = plans[r["name"]]
                self.listener(UnitStarted(p.name, p.steps, p.replicates, steps_done=p.steps, run_id=run_id))
                self.listener(UnitFinished(run_id, p.name, r["status"], int(r["extra"].get("diverged", 0)),
                                           r["wall_time_s"]))
                self.listener(TrialScored(run_id, p.name, p.params, r["status"], r["extra"].get("objective"),
                                          r["extra"]))
        group_of = {p.name: len(g) for g in groups for p in g}

        def score(name: str) -> tuple[Status, dict[str, Any]]:
            row = self.store.unit_row(run_id, name)
            status, extra = score_unit(self.store.load_unit(run_id, row), self.space)
            extra["group"] = {"batch_size": plans[name].batch_size, "trials": group_of[name]}
            extra["steps_trained"] = plans[name].steps
            return status, extra

        def scored(plan: UnitPlan, status: Status, extra: dict[str, Any]) -> None:
            self.listener(TrialScored(run_id, plan.name, plans[plan.name].params, status,
                                      extra.get("objective"), extra))

        return driver.train([[self._unit_plan(p) for p in g] for g in groups], score,
                            isolate_failures=True, on_finished=scored,
                            early_stop=None if confirm_units else early_stop)

    def _group(self, todo: list[TrialPlan]) -> list[list[TrialPlan]]:
        """Units sharing batch size, steps and checkpoint chunk train together (one optimiser per
        space; a group's units may hold different replicate counts)."""
        groups: dict[tuple, list[TrialPlan]] = {}
        for p in todo:
            ckpt = self.store.checkpoint(self.run_id, p.name)
            groups.setdefault((p.batch_size, p.steps, ckpt[0] if ckpt else None), []).append(p)
        # Resumed groups first, then by batch size: small batches are quick, so results show early.
        order = sorted(groups, key=lambda k: (k[2] is None, k[0], k[1]))
        return [groups[k] for k in order]


def search_run_info(store: Store, run_id: str) -> dict[str, Any]:
    """Search run `run_id`'s record (Store.run_info); any other kind of run is refused."""
    info = store.run_info(store.resolve(run_id))
    if info["kind"] != "search":
        raise OptuiError(f"run {info['id']} is a {info['kind']} run, not a search; resume it with its own command")
    return info


def sampler_overrides(preset: str, space: str | None, sampler: str | None) -> list[str]:
    """--sampler as --set overrides for the space named (else every space of the preset), so that
    the preset is validated with it and a resume finds it among the run's overrides."""
    if sampler is None:
        return []
    if sampler not in SAMPLERS:
        raise PresetError(f"--sampler {sampler!r}: choose one of {', '.join(SAMPLERS)}")
    from ..study import presets

    spaces = presets.parse_toml(presets.read_text(preset), str(preset)).get("search")
    spaces = list(spaces) if isinstance(spaces, dict) else []  # a bad [search] is the preset's error
    # An unknown --space is left to the search to name (with the spaces there are).
    return [f"search.{n}.sampler={sampler}" for n in spaces if space in (None, n)]
