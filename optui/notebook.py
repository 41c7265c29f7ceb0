"""optui from Python (a notebook, a script): open a run store, read its runs' histories as numpy
arrays or one tidy pandas DataFrame, and run a study.

    import optui

    store = optui.open_store("runs")
    run = store.latest()                              # or store.runs(), store.run("2024...")
    run.configs                                       # ['sgd-default', 'adam-optimal', ...]
    run.objective                                     # 'test_loss': the workload's objective
    values = run.histories("adam-optimal")            # the objective: (replicates, eval points), NaN once diverged
    steps = run.steps("adam-optimal")                 # the step of each eval point
    acc = run.histories("adam-optimal", "test_accuracy")  # any recorded metric by name
    run.run_metrics.direction("test_accuracy")        # 'higher is better' (see optui.results.metrics.RunMetrics)
    df = run.to_frame()                               # run, config, replicate, step, examples, metric, value
    df.groupby(["config", "step"]).value.mean()

    result = optui.run_study("presets/twnet.toml", overrides=["replicates.count=5"])

Metrics are "minibatch_loss" (every step; step 1 is the loss of the first minibatch) and the
eval metrics the workload declares (step 0 is before training); without a metric named, the
histories are those of the run's objective.
A Run reads its histories from the store on first use and keeps them.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from .errors import OptuiError
from .optional import require
from .results import RunResult, UnitResult

FRAME_COLUMNS = ("run", "config", "replicate", "step", "examples", "metric", "value")

__all__ = ["FRAME_COLUMNS", "Run", "RunStore", "open_store", "run_study"]


def open_store(path: str | Path = "runs") -> "RunStore":
    """The run store in folder path (the CLI's --store; created if missing). A store this
    process cannot write (a read-only folder or file) is opened for reading, as `optui runs` does."""
    import os

    from .store import DB_NAME, Store

    root = Path(path)
    db = root / DB_NAME
    if db.is_file() and not (os.access(root, os.W_OK) and os.access(db, os.W_OK)):
        return RunStore(Store.open(root, create=False))
    return RunStore(Store.open(root))


class RunStore:
    """The runs of one store. Close it (or use `with`) when done; a Run read from it stays usable."""

    def __init__(self, store: Any):
        self._store = store
        self.path = Path(store.path)

    def runs(self, study: str | None = None, kind: str | None = None) -> list["Run"]:
        """Every run, oldest first; study and kind ("study", "search", "import") filter them."""
        return [Run(self._store, info) for info in self._store.list_runs()
                if (study is None or info["study"] == study) and (kind is None or info["kind"] == kind)]

    def run(self, run_id: str = "latest") -> "Run":
        """One run by id, unique prefix, or "latest"."""
        return Run(self._store, self._store.run_info(self._store.resolve(run_id)))

    def latest(self, study: str | None = None, kind: str | None = "study") -> "Run":
        """The newest run (of a study, of a kind; kind=None for any)."""
        run_id = self._store.latest_run(study, kind)
        if run_id is None:
            what = " ".join(filter(None, [kind, "run", f"of study {study!r}" if study else ""]))
            raise OptuiError(f"{self.path}: no {what} in the store")
        return self.run(run_id)

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"


class Run:
    """One recorded run: a study's configs (or a search's trials) with all their replicates."""

    def __init__(self, store: Any, info: dict[str, Any], result: RunResult | None = None):
        self._store = store
        self._info = info
        self._result = result
        self.id: str = info["id"]
        self.study: str = info["study"]
        self.kind: str = info["kind"]
        self.workload: str = info["workload"]
        self.status: str = info["status"]
        self.created: float = info["created"]
        self.wall_time_s: float = info["wall_time_s"]

    @property
    def result(self) -> RunResult:
        """Everything recorded (the object optui's exports use), read on first use."""
        if self._result is None:
            self._result = self._store.load_run(self.id)
        return self._result

    @property
    def configs(self) -> list[str]:
        """Config names (trial names for a search), in the order they were run."""
        return list(self.result.units)

    @property
    def meta(self) -> dict[str, Any]:
        """Device, software versions, strategy, budget and the rest recorded with the run."""
        return dict(self._info.get("meta") or {})

    def unit(self, config: str) -> UnitResult:
        units = self.result.units
        if config not in units and self.status == "running":  # added since it was read: read again
            self._result = None
            units = self.result.units
        if config not in units:
            raise KeyError(f"run {self.id} has no config {config!r}; it has: {', '.join(units)}")
        return units[config]

    def spec(self, config: str) -> dict[str, Any]:
        """The config's optimiser, batch size and hyperparameters (a trial's drawn values)."""
        return dict(self.unit(config).spec)

    @property
    def run_metrics(self) -> Any:
        """The run's RunMetrics: objective, labels, directions, the train/test pair."""
        from .results.metrics import RunMetrics

        return RunMetrics.of_run(self.result)

    @property
    def objective(self) -> str:
        """The name of the run's objective (what histories() returns by default)."""
        from .results.metrics import MINIBATCH

        return self.run_metrics.objective_name or MINIBATCH

    def metrics(self, config: str) -> list[str]:
        """The metrics recorded for a config: minibatch_loss first, then the eval metrics."""
        unit = self.unit(config)
        return ["minibatch_loss"] * (unit.minibatch_loss.shape[-1] > 0) + list(unit.eval)

    def histories(self, config: str, metric: str | None = None) -> np.ndarray:
        """(replicates, points) float64 values of a metric (default: the run's objective); NaN
        from a replicate's divergence on."""
        unit = self.unit(config)
        metric = metric or self.objective
        values = unit.minibatch_loss if metric == "minibatch_loss" else unit.eval.get(metric)
        if not unit.eval and unit.minibatch_loss.shape[-1] == 0 and metric in self._declared():
            return np.empty((unit.replicates, 0))  # not started yet (a run still going): no points
        if values is None or (metric == "minibatch_loss" and values.shape[-1] == 0):
            raise KeyError(f"run {self.id} config {config!r} recorded no {metric}; "
                           f"recorded: {', '.join(self.metrics(config)) or 'nothing yet'}")
        return np.array(values, dtype=np.float64)

    def _declared(self) -> set[str]:
        """The metrics the run declares (its recorded metrics object), the minibatch loss too."""
        return {"minibatch_loss", *self.run_metrics.names}

    def steps(self, config: str, metric: str | None = None) -> np.ndarray:
        """The training step of each point of histories(config, metric)."""
        metric = metric or self.objective
        points = self.histories(config, metric).shape[1]
        if metric == "minibatch_loss":
            return np.arange(1, points + 1)
        return np.asarray(self.unit(config).eval_steps[:points], dtype=np.int64)

    def examples(self, config: str, metric: str | None = None) -> np.ndarray | None:
        """Training examples seen at each point (step x batch size); None when the batch size
        is not recorded (imported histories)."""
        batch = self.unit(config).spec.get("batch_size")
        if not isinstance(batch, (int, float)) or batch <= 0:
            return None
        return self.steps(config, metric) * int(batch)

    def diverged(self, config: str) -> np.ndarray:
        """(replicates,) bool: which replicates diverged."""
        return ~np.asarray(self.unit(config).healthy)

    def summary(self) -> dict[str, Any]:
        """Per-config statistics: what summary.json holds."""
        from .export.tables import summary

        return summary(self.result)

    def to_frame(self, metrics: Iterable[str] | None = None, configs: Iterable[str] | None = None) -> Any:
        """One tidy pandas DataFrame: a row per (config, replicate, metric, point) with columns
        run, config, replicate, step, examples, metric, value. NaN values (diverged replicates)
        are kept; examples is <NA> where the batch size is unknown. Needs pandas."""
        pd = require("pandas", "Run.to_frame()")
        parts = []
        for config in (self.configs if configs is None else list(configs)):
            recorded = self.metrics(config)
            for metric in (recorded if metrics is None else [m for m in metrics if m in recorded]):
                values = self.histories(config, metric)
                reps, points = values.shape
                steps = self.steps(config, metric)
                examples = self.examples(config, metric)
                parts.append(pd.DataFrame({
                    "run": self.id, "config": config,
                    "replicate": np.repeat(np.arange(reps), points),
                    "step": np.tile(steps, reps),
                    "examples": pd.array(np.tile(examples, reps) if examples is not None
                                         else [None] * (reps * points), dtype="Int64"),
                    "metric": metric, "value": values.ravel(),
                }))
        if not parts:
            return pd.DataFrame({c: [] for c in FRAME_COLUMNS})
        return pd.concat(parts, ignore_index=True)[list(FRAME_COLUMNS)]

    def __repr__(self) -> str:
        return f"Run({self.id!r}, study={self.study!r}, kind={self.kind!r}, status={self.status!r})"


def run_study(preset: str | Path, overrides: Iterable[str] = (), *, configs: list[str] | None = None,
              replicates: int | None = None, store: str | Path = "runs",
              on_event: Callable[[Any], None] | None = None,
              cancel: threading.Event | None = None) -> Run:
    """Run a study preset to its end and return it as a Run (status "done").

    overrides are preset keys as KEY=VALUE (the CLI's --set); configs runs only some; on_event
    receives the engine's events (progress). Setting cancel stops after the current chunk: the
    Run returned is then "interrupted", and `optui run PRESET --headless --resume RUN_ID`
    finishes it. Exports are not written: call optui.export.export_run(run.result, folder).
    """
    from . import service
    from .store import Store

    study = service.load_study(preset, list(overrides))
    db = Store.open(store)
    run_id = service.run_study(study, db, configs=configs, replicates=replicates, listener=on_event,
                               cancel=cancel)
    return RunStore(db).run(run_id)
