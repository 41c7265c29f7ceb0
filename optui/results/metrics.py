"""Metric declarations: what a workload's eval measures, and which way is better.

A workload declares its metrics (see optui.workloads.WorkloadSpec); every reader of results (the
summary, `optui runs show`, `optui compare`, search objectives, the figures and the TUI) goes
through these declarations instead of known names. A run records its workload's declarations in
its metadata, so a run stays readable when the workload that made it is no longer installed; runs
recorded before metrics were declared (and imported report pickles) get declarations inferred
from their names by `infer`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

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


def infer(name: str) -> Metric:
    """A declaration guessed from a metric's name (runs recorded without declarations)."""
    kind = "accuracy" if name.endswith("accuracy") else "loss" if name.endswith("loss") else "other"
    split = next((s for s in ("train", "test") if name.startswith(s + "_")), "")
    try:
        return Metric(name, kind, split=split)
    except ValueError:  # an odd name from an imported file: keep it readable
        m = object.__new__(Metric)
        for k, v in (("name", name), ("kind", kind), ("higher_is_better", kind == "accuracy"),
                     ("label", name.replace("_", " ")), ("split", split)):
            object.__setattr__(m, k, v)
        return m


def from_meta(meta: Any, recorded: Iterable[str] = ()) -> tuple[Metric, ...]:
    """The declarations stored with a run (meta["metrics"]), plus inferred ones for any other
    recorded metric; a run without declarations gets them all inferred."""
    out: dict[str, Metric] = {}
    stored = meta.get("metrics") if isinstance(meta, dict) else None
    if isinstance(stored, list):
        for d in stored:
            try:
                m = Metric.from_dict(d)
            except (KeyError, TypeError, ValueError):
                continue
            out[m.name] = m
    for name in _ordered(recorded):
        if name not in out and name != MINIBATCH:
            out[name] = infer(name)
    return tuple(out.values())


def _ordered(names: Iterable[str]) -> list[str]:
    """Recorded names, the usual train/test losses first (the order older runs showed them)."""
    names = list(dict.fromkeys(names))
    first = [n for n in ("train_loss", "test_loss") if n in names]
    return first + [n for n in names if n not in first]


def of_run(run: Any) -> tuple[Metric, ...]:
    """A RunResult's metric declarations (see from_meta)."""
    recorded = [k for unit in run.units.values() for k in unit.eval]
    return from_meta(run.meta, recorded)


def objective_of(meta: Any, metrics: Sequence[Metric]) -> Metric | None:
    """The run's default objective metric: as recorded, else test_loss, else the first loss."""
    name = meta.get("objective") if isinstance(meta, dict) else None
    by_name = {m.name: m for m in metrics}
    if name in by_name:
        return by_name[name]
    if "test_loss" in by_name:
        return by_name["test_loss"]
    return next((m for m in metrics if m.kind == "loss"), metrics[0] if metrics else None)


def train_test_pair(metrics: Sequence[Metric]) -> tuple[Metric, Metric] | None:
    """The train and the test loss (split "train" / "test", kind "loss"), if both are declared."""
    train = next((m for m in metrics if m.kind == "loss" and m.split == "train"), None)
    test = next((m for m in metrics if m.kind == "loss" and m.split == "test"), None)
    return (train, test) if train and test else None


def find(metrics: Sequence[Metric], name: str) -> Metric:
    """The declaration of `name` (inferred when it is not declared)."""
    return next((m for m in metrics if m.name == name), None) or infer(name)


def label(metrics: Sequence[Metric], name: str) -> str:
    """A short human name, minibatch loss and train_test included."""
    if name == MINIBATCH:
        return MINIBATCH_METRIC_LABEL
    if name == TRAIN_TEST:
        return "train vs test"
    return find(metrics, name).label


def plot_choices(metrics: Sequence[Metric]) -> list[tuple[str, str]]:
    """(label, value) of everything a loss-band plot can show: the minibatch loss, every declared
    metric, and train vs test when the workload has both losses."""
    out = [(MINIBATCH_METRIC_LABEL, MINIBATCH)] + [(m.label, m.name) for m in metrics]
    pair = train_test_pair(metrics)
    if pair:
        out.append((label(metrics, TRAIN_TEST), TRAIN_TEST))
    return out
