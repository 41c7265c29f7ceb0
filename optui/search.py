"""Global random search: draw trials from a space, train them grouped, score, record, resume.

Trials that share (optimiser, batch size) train together as one GroupRunner group: their
hyperparameters are per-member data, so a group is one compiled program however many learning
rates it holds. Every trial is a unit of a store run of kind "search" (named like "adam-t007",
spec = its hyperparameters); its objective lands in the unit's extra when it finishes.

Events for consumers (the headless printer, the UI): the engine's RunStarted, UnitStarted,
ChunkDone, UnitFinished, RunFinished and RunFailed, one unit per trial, plus two of this module:
TrialsPlanned once after RunStarted (every trial with its params, steps and status, and the
groups in the order they will run: enough to draw the whole trials table at once) and
TrialScored after each trial's UnitFinished (its status and objective: a row to update).

Keys: trial i's replicate r trains with fold_in(fold_in(fold_in(PRNGKey(seed), i), stream), r);
stream 0 is the search, stream 1 the confirmation re-runs. A resumed trial therefore continues
(from its last checkpointed chunk) exactly as an uninterrupted one would have run.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .errors import OptuiError, PresetError, StoreError
from .presets import Study
from .search_space import SearchSpace, fair_budget
from .store import Store

Listener = Callable[[Any], None]
SEARCH_STREAM, CONFIRM_STREAM = 0, 1
FINISHED = ("done", "diverged")
# States up to this size are checkpointed after every chunk; larger ones every checkpoint_seconds.
SMALL_STATE_BYTES = 16 * 2**20


# -- events ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrialsPlanned:
    run_id: str
    space: str
    objective: str
    budget: str  # which budget each trial gets, and why
    trials: list[dict[str, Any]]  # name, trial, params, steps, replicates, status, objective
    groups: list[tuple[str, int, tuple[str, ...]]]  # (optimizer, batch size, units) in run order


@dataclass(frozen=True)
class TrialScored:
    run_id: str
    unit: str
    params: dict[str, float]
    status: str  # done | diverged | failed | interrupted
    objective: float | None  # mean over the trial's replicates; None unless done
    extra: dict[str, Any] = field(default_factory=dict)


# -- plan ------------------------------------------------------------------------------------

@dataclass
class TrialPlan:
    name: str
    index: int  # 0-based draw index
    params: dict[str, float]  # batch_size and every optimiser hyperparameter
    steps: int
    replicates: int
    stream: int = SEARCH_STREAM
    confirm_of: str | None = None

    @property
    def batch_size(self) -> int:
        return int(self.params["batch_size"])

    def spec(self, space: SearchSpace) -> dict[str, Any]:
        spec = {"optimizer": space.optimizer, **self.params, "trial": self.index + 1,
                "space": space.name, "steps": self.steps}
        if self.confirm_of:
            spec["confirm_of"] = self.confirm_of
        return spec


def trial_name(space: str, index: int) -> str:
    return f"{space}-t{index + 1:03d}"


def confirm_name(trial: str, replicates: int) -> str:
    return f"{trial}-r{replicates}"


def trial_keys(seed: int, index: int, replicates: int, stream: int = SEARCH_STREAM) -> np.ndarray:
    import jax
    import jax.numpy as jnp

    base = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), index), stream)
    return np.asarray(jax.vmap(lambda r: jax.random.fold_in(base, r))(jnp.arange(replicates)))


def plan_from_row(row: dict[str, Any]) -> TrialPlan:
    spec = row["spec"]
    params = {k: v for k, v in spec.items()
              if k not in ("optimizer", "trial", "space", "steps", "confirm_of")}
    params["batch_size"] = int(params["batch_size"])
    return TrialPlan(row["name"], int(spec["trial"]) - 1, params, int(row["total_steps"]),
                     int(row["replicates"]), CONFIRM_STREAM if spec.get("confirm_of") else SEARCH_STREAM,
                     spec.get("confirm_of"))


# -- objective -------------------------------------------------------------------------------

def replicate_objectives(unit: Any, space: SearchSpace) -> np.ndarray:
    """The objective of each replicate of a finished unit (NaN where it diverged or is missing)."""
    reps = unit.minibatch_loss.shape[0]
    values = unit.eval.get(space.metric)
    if values is None or values.shape[1] == 0:
        return np.full(reps, np.nan)
    if space.mean_last:
        # The metric averaged over the eval points in the last last_percent of the run.
        cut = unit.total_steps * (1.0 - space.last_percent / 100.0)
        take = unit.eval_steps >= cut
        take[-1] = True
        out = values[:, take].mean(axis=1)
    else:
        out = values[:, -1].astype(np.float64)
    out = np.where(np.asarray(unit.diverged_at) >= 0, np.nan, out)
    return np.where(np.isfinite(out), out, np.nan)


def score_unit(unit: Any, space: SearchSpace) -> tuple[str, dict[str, Any]]:
    """(status, extra) of a unit that trained to the end: diverged if any replicate did."""
    per_rep = replicate_objectives(unit, space)
    diverged = int((np.asarray(unit.diverged_at) >= 0).sum())
    finals = {k: float(np.nanmean(v[:, -1])) if v.shape[1] and np.isfinite(v[:, -1]).any() else None
              for k, v in unit.eval.items()}
    extra: dict[str, Any] = {
        "objective_name": space.objective, "objective_goal": space.goal, "final": finals, "diverged": diverged,
        "diverged_at": [int(d) for d in np.asarray(unit.diverged_at)],
        "objectives": [None if not math.isfinite(v) else float(v) for v in per_rep],
    }
    ok = diverged == 0 and bool(np.isfinite(per_rep).all())
    extra["objective"] = float(per_rep.mean()) if ok else None
    if len(per_rep) > 1 and ok:
        extra["objective_std"] = float(per_rep.std(ddof=1))
        extra["objective_min"] = float(per_rep.min())
        extra["objective_max"] = float(per_rep.max())
    return ("done" if ok else "diverged"), extra


# -- ranking ---------------------------------------------------------------------------------

_STATUS_ORDER = {"done": 0, "diverged": 1, "failed": 2, "interrupted": 3, "running": 4, "pending": 5}


def _rows(store: Store, run_id: str, confirm: bool) -> list[dict[str, Any]]:
    out = []
    for r in store.unit_rows(run_id):
        spec = r["spec"]
        if bool(spec.get("confirm_of")) != confirm:
            continue
        plan = plan_from_row(r)
        objective = r["extra"].get("objective") if r["status"] == "done" else None
        out.append({
            "name": r["name"], "trial": plan.index + 1, "status": r["status"], "objective": objective,
            "params": plan.params, "steps": r["total_steps"], "replicates": r["replicates"],
            "wall_time_s": r["wall_time_s"], "extra": r["extra"], "confirm_of": spec.get("confirm_of"),
        })
    # Only finished trials with a finite objective rank: diverged ones never win. Higher is better
    # for a "max" objective (an accuracy): recorded with each trial, else in the run's space.
    goal = store.run_info(run_id)["meta"].get("space", {}).get("goal", "min")
    sign = -1.0 if goal == "max" else 1.0
    out.sort(key=lambda t: (t["objective"] is None,
                            sign * t["objective"] if t["objective"] is not None else math.inf,
                            _STATUS_ORDER.get(t["status"], 9), t["trial"]))
    for i, t in enumerate(out, 1):
        t["rank"] = i if t["objective"] is not None else None
    return out


def rank_trials(store: Store, run_id: str) -> list[dict[str, Any]]:
    """A stored search's trials, best first: done by objective, then diverged, failed, unfinished.

    Each row: rank (None unless done), name, trial (1-based), status, objective, params, steps,
    replicates, wall_time_s (its share of its group's time), extra.
    """
    return _rows(store, store.resolve(run_id), confirm=False)


def rank_confirmations(store: Store, run_id: str) -> list[dict[str, Any]]:
    """The confirmation re-runs of a search, best mean objective first (extra has the spread)."""
    return _rows(store, store.resolve(run_id), confirm=True)


def best_trial(store: Store, run_id: str) -> dict[str, Any] | None:
    rows = rank_trials(store, run_id)
    return rows[0] if rows and rows[0]["objective"] is not None else None


def search_space_of(study: Study, name: str | None) -> SearchSpace:
    if not study.search:
        raise PresetError(f"{study.path or 'preset'}: has no [search.*] spaces; add one, e.g. "
                          f"[search.adam] optimizer = \"adam\", learning_rate = {{ low = 0.001, high = 0.1 }}, "
                          f"batch_size = 128")
    if name is None:
        if len(study.search) > 1:
            raise PresetError(f"{study.path or 'preset'}: has several search spaces "
                              f"({', '.join(study.search)}); choose one with --space")
        return next(iter(study.search.values()))
    if name not in study.search:
        raise PresetError(f"{study.path or 'preset'}: no search space {name!r}; it has: {', '.join(study.search)}")
    return study.search[name]


# -- runner ----------------------------------------------------------------------------------

class CompiledGroups:
    """GroupRunners (and the programs they compiled) kept across searches on one workload, so a
    session that searches again, confirms or extends does not recompile a shape it has run."""

    def __init__(self) -> None:
        self.workload: Any = None
        self.runners: dict[tuple, Any] = {}
        self.programs: set[tuple] = set()

    def runner(self, workload: Any, optimizer: str, batch_size: int, strategy: Any) -> Any:
        from .engine.core import GroupRunner

        if workload is not self.workload:  # compiled code belongs to one workload's functions
            self.workload, self.runners, self.programs = workload, {}, set()
        key = (optimizer, batch_size, strategy)
        if key not in self.runners:
            self.runners[key] = GroupRunner(workload, optimizer, batch_size, strategy)
        return self.runners[key]


class SearchRunner:
    """Run (or resume, extend, confirm) one search space of a study as a store run."""

    def __init__(self, study: Study, space_name: str | None, store: Store, listener: Listener | None = None,
                 cancel: threading.Event | None = None, compiled: CompiledGroups | None = None):
        self.study = study
        self.space = search_space_of(study, space_name)
        self.store = store
        self.listener = listener or (lambda e: None)
        self.cancel = cancel or threading.Event()
        self.run_id: str | None = None
        self.workload = None
        self.strategy = None
        self.budget_note = ""
        # Training programs this runner used, (optimizer, batch, members, chunk length), and how
        # many of them it had to compile (the others were already in `compiled`).
        self.programs: set[tuple] = set()
        self.compiles = 0
        self._recorded = 0
        self.compiled = compiled or CompiledGroups()

    def emit(self, event: Any) -> None:
        self.listener(event)

    # -- public --------------------------------------------------------------------------------
    def run(self, trials: int | None = None, resume: str | None = None,
            confirm: tuple[int, int] | None = None, workload: Any = None) -> str:
        """Run the search (or finish one with resume=RUN_ID); returns the run id.

        trials overrides the space's count; with resume it may extend the run (trial i's draw
        never depends on the count). confirm = (top K, replicates R) re-runs the K best trials
        with R fresh seed replicates once the search is done. The run ends done, interrupted
        or failed (some trials failed: resume re-runs them).
        """
        from . import workloads
        from .engine import device

        space = self._prepare(workload)
        budget, self.budget_note = fair_budget(space, self.study.budget)
        if resume:
            run_id = self._reopen(resume)
            info = self.store.run_info(run_id)
            existing = {r["name"] for r in self.store.unit_rows(run_id)}
            count = max(int(info["meta"].get("trials", space.trials)), trials or 0)
            confirm = confirm or (tuple(info["meta"]["confirm"]) if info["meta"].get("confirm") else None)
            prior_wall = info["wall_time_s"]
            self.store.claim_run(run_id)
        else:
            count = trials or space.trials
            dev = device.describe()
            meta = {**dev, "versions": device.versions(), "strategy": self.strategy.label,
                    "space": space.as_dict(), "space_name": space.name, "seed": space.seed,
                    "budget": budget.describe(), "budget_note": self.budget_note,
                    "eval_points": self.study.eval_points, "data": self.workload.info,
                    "overrides": self.study.overrides, **workloads.run_meta(self.study)}
            run_id = self.store.create_run(self.study.name, self.study.workload, "search", self.study.text,
                                           self.study.path, meta)
            existing = set()
            prior_wall = 0.0
        self.run_id = run_id
        self.store.update_run_meta(run_id, trials=count, confirm=list(confirm) if confirm else None)
        for i in range(count):  # new trials only: a resumed run keeps its stored draws
            name = trial_name(space.name, i)
            if name not in existing:
                params = space.sample(i)
                plan = TrialPlan(name, i, params, budget.steps(params["batch_size"], self.workload.n_train),
                                 space.replicates)
                self.store.add_unit(run_id, name, plan.spec(space), plan.replicates, plan.steps,
                                    self.study.eval_points)
        def work() -> tuple[str, str | None]:
            status, error = self._execute(run_id, bool(resume), confirm_units=False)
            if status == "done" and confirm:
                self._add_confirm_units(run_id, *confirm)
                status, error = self._execute(run_id, bool(resume), confirm_units=True)
            return status, error

        return self._guarded(run_id, work, prior_wall)

    def confirm(self, run_id: str, top: int, replicates: int, workload: Any = None) -> str:
        """Re-run the `top` best trials of a finished search with `replicates` seed replicates."""
        self._prepare(workload)
        run_id = self._reopen(run_id)
        info = self.store.run_info(run_id)
        if info["status"] != "done":
            raise OptuiError(f"run {run_id} is {info['status']}; finish the search first (--resume {run_id})")
        self.run_id = run_id
        self.store.claim_run(run_id)
        self.store.update_run_meta(run_id, confirm=[top, replicates])
        self._add_confirm_units(run_id, top, replicates)
        return self._guarded(run_id, lambda: self._execute(run_id, False, confirm_units=True),
                             info["wall_time_s"])

    # -- internals -----------------------------------------------------------------------------
    def _prepare(self, workload: Any) -> SearchSpace:
        from .engine.runner import build_workload, resolve_strategy

        if self.workload is None:
            self.workload = workload or build_workload(self.study)
            self.strategy = resolve_strategy(self.study, self.workload)
        self.space.check_batch_sizes(self.workload.n_train)  # before any training
        return self.space

    def _reopen(self, run_id: str) -> str:
        run_id = self.store.resolve(run_id)
        info = self.store.run_info(run_id)
        if info["kind"] != "search":
            raise OptuiError(f"run {run_id} is a {info['kind']} run, not a search")
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

    def _guarded(self, run_id: str, work: Callable[[], tuple[str, str | None]], prior_wall: float) -> str:
        """Run work(); record how the run ended (done, interrupted, failed) whatever happens."""
        from .engine import failures
        from .engine.events import RunFailed, RunFinished

        started = time.perf_counter()
        try:
            status, error = work()
        except BaseException as exc:
            with contextlib.suppress(StoreError):
                self._record_programs(run_id)
            failures.end_run(self.store, run_id, prior_wall + time.perf_counter() - started, exc, self.emit)
            user_exc = failures.for_user(exc, run_id)
            if user_exc is exc:
                raise
            raise user_exc from None
        wall = prior_wall + time.perf_counter() - started
        self._record_programs(run_id)
        self.store.finish_run(run_id, status, wall, error)
        if status == "failed":
            self.emit(RunFailed(run_id, error or "some trials failed"))
        else:
            self.emit(RunFinished(run_id, status, wall))
        return run_id

    def _record_programs(self, run_id: str) -> None:
        meta = self.store.run_info(run_id)["meta"]
        # Summed over the sessions that ran this search (a resumed run compiles afresh).
        self.store.update_run_meta(run_id, compiles=int(meta.get("compiles") or 0) + self.compiles - self._recorded,
                                   programs=sorted(map(list, self.programs)))
        self._recorded = self.compiles

    def _execute(self, run_id: str, resumed: bool, confirm_units: bool) -> tuple[str, str | None]:
        """Train every unfinished unit of the chosen kind; (run status, first error)."""
        from .engine import device
        from .engine.events import RunStarted, UnitFinished, UnitStarted

        rows = [r for r in self.store.unit_rows(run_id) if bool(r["spec"].get("confirm_of")) == confirm_units]
        plans = {r["name"]: plan_from_row(r) for r in rows}
        todo = [plans[r["name"]] for r in rows if r["status"] not in FINISHED]
        groups = self._group(run_id, todo)
        self.emit(RunStarted(run_id, self.study.name, "confirm" if confirm_units else "search",
                             {p.name: (p.steps, p.replicates) for p in plans.values()},
                             device.describe()["device"], self.strategy.label, resumed=resumed))
        self.emit(TrialsPlanned(
            run_id, self.space.name, self.space.objective, self.budget_note,
            [{"name": r["name"], "trial": plans[r["name"]].index + 1, "params": plans[r["name"]].params,
              "steps": r["total_steps"], "replicates": r["replicates"], "status": r["status"],
              "objective": r["extra"].get("objective")} for r in rows],
            [(self.space.optimizer, g[0].batch_size, tuple(p.name for p in g)) for g, _ in groups]))
        for r in rows:  # finished earlier: shown as done straight away
            if r["status"] in FINISHED:
                p = plans[r["name"]]
                self.emit(UnitStarted(run_id, p.name, p.steps, p.replicates, steps_done=p.steps))
                self.emit(UnitFinished(run_id, p.name, r["status"], int(r["extra"].get("diverged", 0)),
                                       r["wall_time_s"]))
                self.emit(TrialScored(run_id, p.name, p.params, r["status"], r["extra"].get("objective"),
                                      r["extra"]))
        errors: list[str] = []
        for members, resume_chunk in groups:
            if self.cancel.is_set():
                return "interrupted", None
            try:
                if not self._run_group(run_id, members, resume_chunk):
                    return "interrupted", None
            except (KeyboardInterrupt, StoreError, OptuiError):
                raise
            except Exception as exc:  # one group failing (e.g. out of memory) spares the others
                from .engine.failures import describe

                message = describe(exc)
                errors.append(message)
                for p in members:
                    self.store.finish_unit(run_id, p.name, "failed", 0.0, {"error": message})
                    self.emit(UnitFinished(run_id, p.name, "failed", 0, 0.0))
                    self.emit(TrialScored(run_id, p.name, p.params, "failed", None, {"error": message}))
        if errors:
            return "failed", f"{len(errors)} group(s) of trials failed: {errors[0]}"
        return "done", None

    def _group(self, run_id: str, todo: list[TrialPlan]) -> list[tuple[list[TrialPlan], int | None]]:
        """Units sharing batch size, steps, replicate count and checkpoint chunk train together."""
        groups: dict[tuple, list[TrialPlan]] = {}
        for p in todo:
            ckpt = self.store.checkpoint(run_id, p.name)
            key = (p.batch_size, p.steps, ckpt[0] if ckpt else None)
            groups.setdefault(key, []).append(p)
        # Resumed groups first, then by batch size: small batches are quick, so results show early.
        order = sorted(groups, key=lambda k: (k[2] is None, k[0], k[1]))
        return [(groups[k], k[2]) for k in order]

    def _runner(self, batch_size: int):
        return self.compiled.runner(self.workload, self.space.optimizer, batch_size, self.strategy)

    def _used(self, program: tuple) -> None:
        self.programs.add(program)
        if program not in self.compiled.programs:
            self.compiled.programs.add(program)
            self.compiles += 1

    def _program(self, batch_size: int, members: int, length: int) -> tuple:
        s = self.strategy
        m = members if s.vmap_replicates else 1
        return (self.space.optimizer, batch_size, m, length) if s.scan else (self.space.optimizer, batch_size, m)

    def _run_group(self, run_id: str, members: list[TrialPlan], resume_chunk: int | None) -> bool:
        """Train one group to the end; False when cancelled part-way."""
        import jax
        import jax.numpy as jnp

        from .engine.core import run_group, state_from_bytes, state_to_bytes
        from .engine.events import ChunkDone, UnitFinished, UnitStarted

        runner = self._runner(members[0].batch_size)
        vmapped = self.strategy.vmap_replicates
        steps = members[0].steps
        keys = np.concatenate([trial_keys(self.space.seed, p.index, p.replicates, p.stream) for p in members])
        names = [n for n in self.space.params if n != "batch_size"]
        hparams = {n: np.concatenate([np.full(p.replicates, p.params[n], np.float32) for p in members])
                   for n in names}
        bounds = np.cumsum([0] + [p.replicates for p in members])
        slices = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]

        def part(state, sl):
            return jax.tree.map(lambda x: x[sl], state) if vmapped else state[sl]

        resume = None
        if resume_chunk is not None:
            template = runner.init(keys, hparams)
            parts = [state_from_bytes(part(template, sl), self.store.checkpoint(run_id, p.name)[1])
                     for p, sl in zip(members, slices)]
            state = (jax.tree.map(lambda *xs: jnp.concatenate(xs), *parts) if vmapped
                     else [s for ps in parts for s in ps])
            resume = (resume_chunk, state)
        for p in members:
            self.store.truncate_unit(run_id, p.name, resume_chunk if resume_chunk is not None else -2)
        from .engine.core import chunk_bounds

        done_steps = chunk_bounds(steps, self.study.eval_points)[resume_chunk + 1] if resume is not None else 0
        for p in members:
            self.emit(UnitStarted(run_id, p.name, steps, p.replicates, steps_done=done_steps))
        t0 = time.perf_counter()
        last_ckpt = time.monotonic()
        small_state: bool | None = None
        every = self.study.engine["checkpoint_seconds"]
        for out, state in run_group(runner, keys, hparams, steps, self.study.eval_points, resume):
            if out.step_end > out.step_start:
                self._used(self._program(runner.batch_size, len(keys), out.step_end - out.step_start))
            cancelled = self.cancel.is_set()
            final = out.chunk_index == out.chunks_total - 1
            due = time.monotonic() - last_ckpt >= every
            blobs: list[bytes | None] = [None] * len(members)
            if not final and (small_state is not False or due or cancelled):
                blobs = [state_to_bytes(part(state, sl)) for sl in slices]
                small_state = sum(map(len, blobs)) <= SMALL_STATE_BYTES
                if not (small_state or due or cancelled):
                    blobs = [None] * len(members)
            elapsed = time.perf_counter() - t0
            for p, sl, blob in zip(members, slices, blobs):
                ev = {k: v[sl] for k, v in out.eval.items()}
                self.store.write_chunk(run_id, p.name, out.chunk_index, out.step_start, out.minibatch_loss[sl],
                                       out.step_end, ev, out.diverged_at[sl], state=blob)
                self.emit(ChunkDone(run_id, p.name, out.chunk_index, out.chunks_total, out.step_end, steps,
                                    out.minibatch_loss[sl], out.step_end, ev, out.diverged_at[sl], elapsed))
            if blobs[0] is not None:
                last_ckpt = time.monotonic()
            if cancelled and not final:
                share = (time.perf_counter() - t0) / len(members)
                for p, sl in zip(members, slices):
                    self.store.add_unit_time(run_id, p.name, share)
                    self.store.finish_unit(run_id, p.name, "interrupted", self._unit_wall(run_id, p.name))
                    self.emit(UnitFinished(run_id, p.name, "interrupted", int((out.diverged_at[sl] >= 0).sum()),
                                           share))
                    self.emit(TrialScored(run_id, p.name, p.params, "interrupted", None))
                return False
        # A trial's wall time is its share of its group's time: the group trains as one program.
        share = (time.perf_counter() - t0) / len(members)
        rows = {r["name"]: r for r in self.store.unit_rows(run_id)}
        for p in members:
            self.store.add_unit_time(run_id, p.name, share)
            unit = self.store.load_unit(run_id, rows[p.name])
            status, extra = score_unit(unit, self.space)
            extra["group"] = {"batch_size": p.batch_size, "trials": len(members)}
            wall = self._unit_wall(run_id, p.name)
            self.store.finish_unit(run_id, p.name, status, wall, extra)
            self.emit(UnitFinished(run_id, p.name, status, extra["diverged"], wall))
            self.emit(TrialScored(run_id, p.name, p.params, status, extra["objective"], extra))
        return True

    def _unit_wall(self, run_id: str, name: str) -> float:
        return next(r["wall_time_s"] for r in self.store.unit_rows(run_id) if r["name"] == name)
