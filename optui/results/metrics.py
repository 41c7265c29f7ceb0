"""Metric declarations: what a workload's eval measures, and which way is better.

A workload declares its metrics (see optui.workloads.WorkloadSpec). `RunMetrics` is the one
object every reader of results asks (the summary, `optui runs show`, `optui compare`, exports,
search reports, the notebook API and the TUI): a run's objective, each metric's label, kind,
split and direction, and the train/test pair that "train vs test" views draw. No view names a
metric itself.

    RunMetrics.of_run(run)        # a stored run (RunResult): as recorded with it
    RunMetrics.of_preset(study)   # a validated preset: from its workload's declarations
    RunMetrics.of_spec(spec)      # a WorkloadSpec

A run records its RunMetrics (`as_meta`) in its metadata, so it stays readable when the workload
that made it is no longer installed. Runs recorded without them (older runs, imported report
pickles) get their workload's declarations when that workload is installed, else declarations
inferred from the recorded names by `infer`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Iterator, Sequence

KINDS = ("loss", "accuracy", "other")
SPLITS = ("train", "test", "")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
# The per-step training loss the engine records for every workload; not an eval metric.
MINIBATCH = "minibatch_loss"
# A compare entry that draws the train and the test loss of each config together.
TRAIN_TEST = "train_test"
RESERVED = (MINIBATCH, TRAIN_TEST)


@dataclass(frozen=True)
class Metric:
    """One number that a workload's `evaluate` returns for each member at each eval point.

    name: the key in evaluate's dict: lower-case letters, digits and '_' (e.g. "test_accuracy").
    kind: "loss", "accuracy" (a fraction in [0, 1]) or "other". Losses are drawn on a log axis,
      accuracies on a linear one as percentages.
    higher_is_better: None (the default) means True for an accuracy and False otherwise.
    label: a short human name for tables and axes; default: the name with spaces ("test loss").
    split: "train" or "test" when the metric measures one of them ("" otherwise): a compare
      entry with metric = "train_test" draws the train and test losses together.
    """

    name: str
    kind: str = "loss"
    higher_is_better: bool | None = None
    label: str = ""
    split: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME_PATTERN.match(self.name):
            raise ValueError(f"metric name must be lower-case letters, digits and '_' (at most 48, "
                             f"starting with a letter), got {self.name!r}")
        if self.name in RESERVED:
            raise ValueError(f"metric name {self.name!r} is reserved by optui")
        if self.kind not in KINDS:
            raise ValueError(f"metric {self.name}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.split not in SPLITS:
            raise ValueError(f"metric {self.name}: split must be 'train', 'test' or '', got {self.split!r}")
        if self.higher_is_better is None:
            object.__setattr__(self, "higher_is_better", self.kind == "accuracy")
        elif not isinstance(self.higher_is_better, bool):
            raise ValueError(f"metric {self.name}: higher_is_better must be true or false")
        if not self.label:
            object.__setattr__(self, "label", self.name.replace("_", " "))

    @property
    def goal(self) -> str:
        """'max' or 'min'."""
        return "max" if self.higher_is_better else "min"

    @property
    def log_scale(self) -> bool:
        """Losses are drawn on a log axis; accuracies and other metrics on a linear one."""
        return self.kind == "loss"

    def better(self, a: float, b: float) -> bool:
        """True when a is strictly better than b."""
        return a > b if self.higher_is_better else a < b

    def format(self, value: float | None) -> str:
        """A table cell: accuracies as percentages, the rest with 4 decimals."""
        if value is None:
            return "-"
        if self.kind == "accuracy":
            return f"{100 * value:.2f}%"
        return f"{value:.4f}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Metric":
        return cls(str(d["name"]), str(d.get("kind", "loss")), d.get("higher_is_better"),
                   str(d.get("label", "")), str(d.get("split", "")))


MINIBATCH_METRIC_LABEL = "minibatch loss"
TRAIN_TEST_LABEL = "train vs test"


# What a preset read without its workload is taken to measure (the names optui's first workloads
# used); the one place a metric is named outside the workloads.
UNDECLARED = ("train_loss", "test_loss")
# Names that read as errors to minimise when a run recorded no declarations.
LOSS_SUFFIXES = ("loss", "mse", "mae", "rmse", "nll", "error")


def _unchecked(name: str, kind: str, higher: bool, label: str, split: str) -> Metric:
    """A Metric without the name checks: the reserved minibatch loss, odd names in imported files."""
    m = object.__new__(Metric)
    for k, v in (("name", name), ("kind", kind), ("higher_is_better", higher), ("label", label),
                 ("split", split)):
        object.__setattr__(m, k, v)
    return m


def infer(name: str) -> Metric:
    """A declaration guessed from a metric's name (runs recorded without declarations)."""
    if name == MINIBATCH:
        return _unchecked(MINIBATCH, "loss", False, MINIBATCH_METRIC_LABEL, "train")
    kind = ("accuracy" if name.endswith("accuracy") else
            "loss" if name.endswith(LOSS_SUFFIXES) else "other")
    split = next((s for s in ("train", "test") if name.startswith(s + "_")), "")
    try:
        return Metric(name, kind, split=split)
    except ValueError:  # an odd name from an imported file: keep it readable
        return _unchecked(name, kind, kind == "accuracy", name.replace("_", " "), split)


class UnknownMetric(ValueError):
    """A metric name the run does not record; the message names the ones it does."""


@dataclass(frozen=True)
class RunMetrics:
    """A run's metrics: the declarations, the objective and the train/test pair.

    metrics: every eval metric, in display order (the minibatch loss is not one of them, though
      `get`, `label`, `higher_is_better` and `direction` answer for it).
    objective: the metric a run is judged by (rankings, final-value tables, search defaults,
      time-to-target); None only when the run records no eval metric at all.
    train_test: (train metric, test metric) that "train vs test" views draw, or None.
    """

    metrics: tuple[Metric, ...]
    objective: Metric | None
    train_test: tuple[Metric, Metric] | None = None

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def build(cls, metrics: Iterable[Metric], objective: str | None = None,
              train_test: Sequence[str] | None = None) -> "RunMetrics":
        """From declarations: the objective by name (else the default rule), the pair by names
        (else the first train/test losses, else the objective's train/test counterparts)."""
        metrics = tuple(metrics)
        by_name = {m.name: m for m in metrics}
        chosen = by_name.get(objective) if objective else None
        if chosen is None:
            chosen = _default_objective(metrics)
        pair = None
        if train_test and len(train_test) == 2 and all(n in by_name for n in train_test):
            pair = (by_name[train_test[0]], by_name[train_test[1]])
        return cls(metrics, chosen, pair or _default_pair(metrics, chosen))

    @classmethod
    def of_spec(cls, spec: Any) -> "RunMetrics":
        """A WorkloadSpec's declarations and default objective."""
        return cls.build(spec.metrics, spec.objective)

    @classmethod
    def of_preset(cls, study: Any) -> "RunMetrics":
        """A validated preset's (its workload's) metrics; inferred train/test losses when the
        preset was loaded without its workload (no spec)."""
        spec = getattr(study, "spec", None)
        if spec is not None:
            return cls.of_spec(spec)
        return cls.build(infer(n) for n in UNDECLARED)

    @classmethod
    def of_meta(cls, meta: Any, recorded: Iterable[str] = (), workload: str | None = None) -> "RunMetrics":
        """From a run's metadata (what `as_meta` wrote) plus any other recorded metric names.

        Without recorded declarations: the installed workload's (when `workload`, the run's
        workload name, is installed under that name), else declarations inferred from the names.
        """
        meta = meta if isinstance(meta, dict) else {}
        out: dict[str, Metric] = {}
        stored = meta.get("metrics")
        if isinstance(stored, list):
            for d in stored:
                try:
                    m = Metric.from_dict(d)
                except (KeyError, TypeError, ValueError):
                    continue
                out[m.name] = m
        objective = meta.get("objective") if isinstance(meta.get("objective"), str) else None
        names = list(dict.fromkeys(recorded))
        if not out and workload:
            spec = installed_spec(workload)
            if spec is not None:  # the installed declarations of what the run recorded
                out = {m.name: m for m in spec.metrics if not names or m.name in names}
                objective = objective or spec.objective
        if not out:  # recorded names only: train before test, losses first, as older runs showed them
            names = sorted(names, key=lambda n: ({"train": 0, "test": 1}.get(infer(n).split, 2),
                                                 infer(n).kind != "loss"))
        for name in names:
            if name not in out and name != MINIBATCH:
                out[name] = infer(name)
        pair = meta.get("train_test")
        return cls.build(out.values(), objective, pair if isinstance(pair, list) else None)

    @classmethod
    def of_run(cls, run: Any) -> "RunMetrics":
        """A stored run's metrics (a RunResult, as Store.load_run returns it)."""
        recorded = [k for unit in run.units.values() for k in unit.eval]
        return cls.of_meta(run.meta, recorded, getattr(run, "workload", None))

    def as_meta(self) -> dict[str, Any]:
        """What a run records (JSON): the declarations, the objective's name and the pair's names."""
        return {"metrics": [m.as_dict() for m in self.metrics],
                "objective": self.objective.name if self.objective else None,
                "train_test": [m.name for m in self.train_test] if self.train_test else None}

    # -- questions views ask --------------------------------------------------------------------

    def __iter__(self) -> Iterator[Metric]:
        return iter(self.metrics)

    def __len__(self) -> int:
        return len(self.metrics)

    def __contains__(self, name: object) -> bool:
        return any(m.name == name for m in self.metrics)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.metrics)

    @property
    def objective_name(self) -> str | None:
        return self.objective.name if self.objective else None

    def get(self, name: str) -> Metric:
        """The declaration of `name` (the minibatch loss included; inferred when undeclared)."""
        return next((m for m in self.metrics if m.name == name), None) or infer(name)

    def label(self, name: str) -> str:
        """A short human name, minibatch loss and train_test included."""
        if name == TRAIN_TEST:
            return TRAIN_TEST_LABEL
        return self.get(name).label

    def higher_is_better(self, name: str) -> bool:
        return name != MINIBATCH and name != TRAIN_TEST and bool(self.get(name).higher_is_better)

    def direction(self, name: str | None = None) -> str:
        """'higher is better' or 'lower is better' (of the objective by default)."""
        name = name or self.objective_name or MINIBATCH
        return "higher is better" if self.higher_is_better(name) else "lower is better"

    def plottable(self) -> tuple[str, ...]:
        """Every name a history view may draw: the minibatch loss, each metric, train_test."""
        return (MINIBATCH, *self.names, *((TRAIN_TEST,) if self.train_test else ()))

    def plot_choices(self) -> list[tuple[str, str]]:
        """(label, name) of everything plottable, for a chooser."""
        return [(self.label(n), n) for n in self.plottable()]

    def check(self, name: str, what: str = "metric", allow_minibatch: bool = False) -> Metric:
        """The declaration of a metric the run records; UnknownMetric naming the allowed ones."""
        if name in self or (allow_minibatch and name == MINIBATCH):
            return self.get(name)
        allowed = ([MINIBATCH] if allow_minibatch else []) + list(self.names)
        raise UnknownMetric(f"unknown {what} {name!r}; this run records: {', '.join(allowed) or 'none'}")


def installed_spec(workload: str) -> Any:
    """The spec of an installed workload registered under `workload`, or None (not installed,
    a file or module reference, or a plug-in that fails to load)."""
    if not isinstance(workload, str) or not NAME_PATTERN.match(workload):
        return None
    from ..workloads.registry import providers, resolve

    try:
        if workload not in providers():
            return None
        return resolve(workload).spec
    except Exception:  # a broken plug-in: the run is still readable from its names
        return None


def _default_objective(metrics: Sequence[Metric]) -> Metric | None:
    """No objective named: the first test loss, else the first test metric, else the first loss,
    else the first metric."""
    return (next((m for m in metrics if m.kind == "loss" and m.split == "test"), None)
            or next((m for m in metrics if m.split == "test"), None)
            or next((m for m in metrics if m.kind == "loss"), None)
            or (metrics[0] if metrics else None))


def _default_pair(metrics: Sequence[Metric], objective: Metric | None) -> tuple[Metric, Metric] | None:
    """The train and test losses (names matching after the split when several), else the train
    and test metrics of the objective's kind."""
    for kind in ("loss", objective.kind if objective else None):
        trains = [m for m in metrics if m.kind == kind and m.split == "train"]
        tests = [m for m in metrics if m.kind == kind and m.split == "test"]
        if not trains or not tests:
            continue
        if objective in tests:
            tests = [objective] + [m for m in tests if m is not objective]
        test = tests[0]
        suffix = test.name[len("test"):] if test.name.startswith("test") else None
        train = next((m for m in trains if suffix and m.name == "train" + suffix), trains[0])
        return train, test
    return None


# -- the older functional API, kept for callers not yet moved to RunMetrics -----------------------

def from_meta(meta: Any, recorded: Iterable[str] = ()) -> tuple[Metric, ...]:
    """The declarations stored with a run plus inferred ones for any other recorded metric."""
    return RunMetrics.of_meta(meta, recorded).metrics


def of_run(run: Any) -> tuple[Metric, ...]:
    """A RunResult's metric declarations (see RunMetrics.of_run)."""
    return RunMetrics.of_run(run).metrics


def objective_of(meta: Any, metrics: Sequence[Metric]) -> Metric | None:
    """The run's objective metric: as recorded, else the default rule (see RunMetrics.build)."""
    name = meta.get("objective") if isinstance(meta, dict) else None
    return RunMetrics.build(metrics, name).objective


def train_test_pair(metrics: Sequence[Metric]) -> tuple[Metric, Metric] | None:
    """The metrics a "train vs test" view draws (see RunMetrics.build)."""
    return RunMetrics.build(metrics).train_test


def find(metrics: Sequence[Metric], name: str) -> Metric:
    """The declaration of `name` (inferred when it is not declared)."""
    return RunMetrics(tuple(metrics), None).get(name)


def label(metrics: Sequence[Metric], name: str) -> str:
    """A short human name, minibatch loss and train_test included."""
    return RunMetrics(tuple(metrics), None).label(name)


def plot_choices(metrics: Sequence[Metric]) -> list[tuple[str, str]]:
    """(label, value) of everything a loss-band plot can show."""
    return RunMetrics.build(metrics).plot_choices()
