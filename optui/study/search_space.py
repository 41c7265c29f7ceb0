"""Search spaces: the preset's [search.NAME] tables, validated, and deterministic random draws.

A space names one optimiser and, per hyperparameter, either a fixed number or an interval:

    [search.adam]
    optimizer = "adam"
    trials = 20
    seed = 0
    objective = "final_test_loss"        # final_<metric> or mean_last_<metric> (+ last_percent)
    budget = { examples = 2_880_000 }    # optional; default: a fair budget (see fair_budget)
    replicates = 1                       # seed replicates per trial
    sampler = "random"                   # random | qmc | tpe | cmaes (the last three: Optuna)
    pruner = "none"                      # none | asha (+ reduction_factor, min_budget) | median
    learning_rate = { low = 0.1, high = 100, scale = "log" }
    b1 = { low = 0.5, high = 0.99 }
    batch_size = { low = 12, high = 2049, int = true, scale = "log", buckets = 8 }

Objectives come from the workload's declared metrics (a trial with any diverged replicate has none
and never wins): final_<metric> is the metric at the last eval point, mean_last_<metric> its mean
over the eval points in the last `last_percent` of the run (steadier than one point); plain
"mean_last" means mean_last_<the workload's default objective>. The default objective is
final_<the workload's default objective> (final_test_loss for TwNet and MNIST). Whether lower or
higher is better is the metric's declaration (losses lower, accuracies higher). With replicates > 1
a trial's objective is the mean over its replicates.

Scales: "uniform" (or "linear") draws evenly between low and high, "log" evenly in log space.
int = true rounds to whole numbers (batch sizes must be int). buckets = K snaps an int interval to
K values spaced evenly in its scale from low to high, each equally likely: trials then share batch
sizes, and trials sharing one train as one compiled, vmapped program instead of K compiles or more.

Budget: when a space sets none, every trial gets the same number of training examples (see
fair_budget); the output always says which budget it used.

Samplers: "random" (the default) draws as below; "qmc", "tpe" and "cmaes" are Optuna's, asked in
rounds of round_trials (optui.search.sampling). Pruners: "asha" (reduction_factor, min_budget in
eval points) and "median" stop weak trials early (optui.service.pruning).

Random draws are a pure function of (seed, trial index, hyperparameter name): the same seed gives the
same trials, trial i does not depend on how many trials are requested (30 trials extend 20), and
adding a hyperparameter to a space leaves the draws of the others unchanged.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..optim import registry as optimizers
from .budget import Budget, parse_budget
from ..errors import PresetError
from ..schema import Field, check_value, where

# The objectives of a workload that declares no metrics (kept for callers without a spec).
OBJECTIVES = ("final_train_loss", "final_test_loss", "mean_last")
# "linear" is accepted as another name for "uniform" (both draw evenly between low and high).
SCALES = ("uniform", "log", "linear")
SPACE_KEYS = ("optimizer", "trials", "seed", "objective", "last_percent", "budget", "replicates", "sampler",
              "pruner", "reduction_factor", "min_budget", "round_trials")
# "random" is optui's own seeded draws (no extra package); the others are Optuna's samplers.
SAMPLERS = ("random", "qmc", "tpe", "cmaes")
PRUNERS = ("none", "asha", "median")
INTERVAL_KEYS = ("low", "high", "scale", "int", "buckets")
MAX_TRIALS = 100_000
# Drawn floats are rounded to this many significant digits: the value trained, stored, printed
# and written back into a preset is then one and the same number.
SIGNIFICANT_DIGITS = 4

SPACE_FIELDS = {
    "optimizer": Field("str"),
    "trials": Field("int", 20, low=1, high=MAX_TRIALS),
    "seed": Field("int", 0, low=0, high=2**31 - 1),
    "objective": Field("str", "final_test_loss", choices=OBJECTIVES),  # per workload: see objectives
    "last_percent": Field("float", 10.0, low=0.0, high=100.0, low_open=True),
    "replicates": Field("int", 1, low=1, high=10_000),
    "sampler": Field("str", "random", choices=SAMPLERS),
    "pruner": Field("str", "none", choices=PRUNERS),
    # Successive halving: rung r is at min_budget * reduction_factor**r eval points.
    "reduction_factor": Field("int", 3, low=2, high=100),
    "min_budget": Field("int", 1, low=1, high=100_000),
    # Trials asked per round from a learning sampler (0: as many as the vectorised groups take).
    "round_trials": Field("int", 0, low=0, high=MAX_TRIALS),
}
BATCH_FIELD = Field("int", low=1, high=10**9)


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    scale: str = "uniform"  # uniform | log
    integer: bool = False
    buckets: int = 0  # 0: no bucketing; else one of this many values from low to high

    def value(self, u: float) -> float:
        """The hyperparameter value for a uniform draw u in [0, 1)."""
        if self.buckets:
            # One of `buckets` values spaced evenly in the interval's scale from low to high
            # (both ends included), each equally likely.
            return self.bucket_value(min(int(u * self.buckets), self.buckets - 1))
        if self.integer:
            # Widen by half a unit each side so that after rounding the end integers are as
            # likely as the others.
            v = self._at(u, max(self.low - 0.5, 0.5) if self.scale == "log" else self.low - 0.5,
                         self.high + 0.5)
        else:
            v = self._at(u, self.low, self.high)
        return self.snap(v)

    def snap(self, v: float) -> float:
        """v as trained and stored: whole for ints, else rounded to SIGNIFICANT_DIGITS; in range."""
        v = float(round(v)) if self.integer else float(f"{v:.{SIGNIFICANT_DIGITS}g}")
        return min(max(v, self.low), self.high)

    def bucket_value(self, k: int) -> float:
        """The value of bucket k (0-based) of a bucketed interval."""
        t = k / (self.buckets - 1) if self.buckets > 1 else 0.5
        return self.snap(self._at(t, self.low, self.high))

    def bucket_index(self, v: float) -> int:
        """The bucket whose value is nearest to v."""
        return min(range(self.buckets), key=lambda k: abs(self.bucket_value(k) - v))

    def _at(self, t: float, low: float, high: float) -> float:
        if self.scale == "log":
            return math.exp(math.log(low) + t * (math.log(high) - math.log(low)))
        return low + t * (high - low)

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"low": self.low, "high": self.high, "scale": self.scale}
        if self.integer:
            d["int"] = True
        if self.buckets:
            d["buckets"] = self.buckets
        return d

    def describe(self) -> str:
        kind = "int " if self.integer else ""
        extra = f", {self.buckets} buckets" if self.buckets else ""
        return f"{kind}{self.scale} [{self.low:g}, {self.high:g}]{extra}"


@dataclass(frozen=True)
class SearchSpace:
    name: str
    optimizer: str
    trials: int
    seed: int
    objective: str
    last_percent: float
    budget: Budget | None  # None: the fair default (see fair_budget)
    replicates: int
    intervals: dict[str, Interval]  # searched hyperparameters (batch_size included when searched)
    fixed: dict[str, float]  # fixed values given in the space (batch_size included when fixed)
    defaults: dict[str, float] = field(default_factory=dict)  # optimiser defaults for the rest
    file: str | None = None
    metric: str = ""  # the eval metric the objective reads
    goal: str = "min"  # "min" or "max": the metric's declared direction
    sampler: str = "random"  # random | qmc | tpe | cmaes (see optui.search.sampling)
    pruner: str = "none"  # none | asha | median (see optui.service.pruning)
    reduction_factor: int = 3
    min_budget: int = 1  # eval points before the first rung
    round_trials: int = 0  # 0: the default round width

    @property
    def learns(self) -> bool:
        """True when trials are asked in rounds from a sampler that learns from told results."""
        return self.sampler != "random"

    @property
    def mean_last(self) -> bool:
        """True when the objective averages the last last_percent of the run."""
        return self.objective.startswith("mean_last")

    def describe_objective(self) -> str:
        """'final test loss, lower is better' or 'test acc over the last 10% of the run, higher ...'."""
        what = self.metric.replace("_", " ")
        where_ = f"mean over the last {self.last_percent:g}% of the run" if self.mean_last else "at the end"
        return f"{what}, {where_}; {'higher' if self.goal == 'max' else 'lower'} is better"

    @property
    def params(self) -> list[str]:
        """Every hyperparameter a trial carries, batch_size first."""
        names = ["batch_size", *optimizers.hyperparam_names(self.optimizer)]
        return [n for n in names if n in self.intervals or n in self.fixed or n in self.defaults]

    def trial_params(self, drawn: dict[str, float]) -> dict[str, float]:
        """A trial's hyperparameters from the values drawn for the space's intervals; the fixed
        and default values fill in the rest (batch_size an int)."""
        out = {name: drawn[name] if name in self.intervals else self.fixed[name] if name in self.fixed
               else self.defaults[name] for name in self.params}
        out["batch_size"] = int(out["batch_size"])
        return out

    def sample(self, index: int) -> dict[str, float]:
        """Trial `index`'s hyperparameters (0-based): a function of (seed, index, name) only."""
        return self.trial_params({name: iv.value(_uniform(self.seed, index, name))
                                  for name, iv in self.intervals.items()})

    def sample_many(self, count: int, start: int = 0) -> list[dict[str, float]]:
        return [self.sample(i) for i in range(start, start + count)]

    def batch_bounds(self) -> tuple[int, int]:
        if "batch_size" in self.intervals:
            iv = self.intervals["batch_size"]
            return int(iv.low), int(iv.high)
        b = int(self.fixed["batch_size"])
        return b, b

    def reference_batch(self) -> int:
        """The batch size at which the fair default budget equals the study's iterations."""
        lo, hi = self.batch_bounds()
        return max(1, round(math.sqrt(lo * hi)))

    def check_batch_sizes(self, n_train: int) -> None:
        """Once the workload is known (before training): no batch larger than the training set."""
        lo, hi = self.batch_bounds()
        key = "batch_size.high" if "batch_size" in self.intervals else "batch_size"
        if hi > n_train:
            raise PresetError(f"{where(self.file, f'search.{self.name}.{key}')} must be at most the "
                              f"training set size ({n_train:,}), got {hi:,}")

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able record of the space, stored with a search run."""
        out = {
            "name": self.name, "optimizer": self.optimizer, "trials": self.trials, "seed": self.seed,
            "objective": self.objective, "last_percent": self.last_percent,
            "metric": self.metric, "goal": self.goal,
            "budget": self.budget.describe() if self.budget else None,
            "replicates": self.replicates,
            "intervals": {k: v.as_dict() for k, v in self.intervals.items()},
            "fixed": dict(self.fixed), "defaults": dict(self.defaults),
        }
        # Only what differs from random search without pruning: a run recorded before samplers
        # and pruners existed then resumes with the same record.
        if self.sampler != "random":
            out.update(sampler=self.sampler, round_trials=self.round_trials)
        if self.pruner != "none":
            out["pruner"] = self.pruner
        if self.pruner == "asha":
            out.update(reduction_factor=self.reduction_factor, min_budget=self.min_budget)
        return out

    def __str__(self) -> str:
        parts = [f"{k} {v.describe()}" for k, v in self.intervals.items()]
        parts += [f"{k}={optimizers.toml_value(k, v)}" if k == "schedule" else f"{k}={v:g}"
                  for k, v in self.fixed.items()]
        budget = self.budget.describe() if self.budget else "fair default"
        strategy = "" if (self.sampler, self.pruner) == ("random", "none") else \
            f", sampler {self.sampler}, pruner {self.pruner}"
        return (f"{self.optimizer}, {self.trials} trials (seed {self.seed}{strategy}), {self.objective}, "
                f"budget {budget}: " + "; ".join(parts))


def _uniform(seed: int, index: int, name: str) -> float:
    """One uniform draw in [0, 1) for (seed, trial index, hyperparameter name)."""
    seq = np.random.SeedSequence([seed, index, zlib.crc32(name.encode())])
    return float(np.random.default_rng(seq).random())


def fair_budget(space: SearchSpace, study_budget: Budget) -> tuple[Budget, str]:
    """The budget each trial gets when the space sets none, and a sentence saying why.

    Trials with different batch sizes must see the same amount of data to be compared fairly
    (a fixed iteration count favours large batches). A study budget in epochs or examples is
    already fair and is used as it is; a budget in iterations becomes examples = iterations x the
    space's reference batch size (the geometric middle of its batch range), so a typical trial
    runs about the study's iteration count.
    """
    if space.budget is not None:
        return space.budget, f"{space.budget.describe()} per trial (set in search.{space.name}.budget)"
    if study_budget.kind in ("epochs", "examples"):
        return study_budget, (f"{study_budget.describe()} per trial (the study's budget: the same "
                              f"data for every batch size)")
    ref = space.reference_batch()
    examples = int(study_budget.value) * ref
    return Budget("examples", examples), (
        f"{examples:,} examples per trial (fair default: the study's {int(study_budget.value):,} "
        f"iterations at batch {ref}, the geometric middle of the batch range; every trial sees "
        f"the same data; set search.{space.name}.budget to change it)")


# -- parsing -----------------------------------------------------------------------------------

def objectives(spec: Any) -> dict[str, tuple[str, str]]:
    """The objectives a workload allows: name -> (metric, goal). final_<m> and mean_last_<m> for
    each declared metric m, and mean_last for the workload's default objective."""
    from ..results.metrics import RunMetrics

    declared = RunMetrics.of_spec(spec) if spec is not None else RunMetrics.of_preset(None)
    metrics = [(m.name, m.goal) for m in declared]
    default = declared.objective_name
    out = {f"final_{name}": (name, goal) for name, goal in metrics}
    goals = dict(metrics)
    out["mean_last"] = (default, goals[default])
    out.update({f"mean_last_{name}": (name, goal) for name, goal in metrics})
    return out


def parse_search_section(raw: Any, file: str | None, spec: Any = None) -> dict[str, SearchSpace]:
    """Validate the preset's [search.*] tables. Raises PresetError naming file and key."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise PresetError(f"{where(file, 'search')} must hold tables, e.g. [search.adam]")
    spaces = {}
    for name, table in raw.items():
        if not name or "." in name or any(c in name for c in "/\\ "):
            raise PresetError(f"{where(file, 'search.' + name)}: space names must be plain words "
                              f"(no dots, slashes or spaces)")
        spaces[name] = parse_space(name, table, file, spec)
    return spaces


def parse_space(name: str, raw: Any, file: str | None, workload: Any = None) -> SearchSpace:
    """One [search.NAME] table; workload (a WorkloadSpec) declares the metrics it may optimise."""
    key = f"search.{name}"
    spec = optimizers.resolve_table(raw, file, key)
    opt = raw["optimizer"]
    hyper_fields = optimizers.config_fields(spec)
    for k in raw:
        if k not in SPACE_KEYS and k != "batch_size" and k not in hyper_fields:
            raise PresetError(
                f"{where(file, f'{key}.{k}')}: unknown key; {opt} has the hyperparameters "
                f"batch_size, {', '.join(hyper_fields)}; a space also takes {', '.join(SPACE_KEYS)}")
    allowed = objectives(workload)
    default_objective = next(k for k, v in allowed.items() if k.startswith("final_") and v == allowed["mean_last"])
    fields = {**SPACE_FIELDS, "objective": Field("str", default_objective, choices=tuple(allowed))}
    settings = {}
    for k, f in fields.items():
        settings[k] = check_value(raw[k], f, file, f"{key}.{k}") if k in raw else f.default
    if "last_percent" in raw and not settings["objective"].startswith("mean_last"):
        raise PresetError(f"{where(file, key + '.last_percent')} applies only to the mean_last objectives")
    metric, goal = allowed[settings["objective"]]
    for k in ("reduction_factor", "min_budget"):
        if k in raw and settings["pruner"] != "asha":
            raise PresetError(f"{where(file, f'{key}.{k}')} applies only to pruner = \"asha\"")
    if "round_trials" in raw and settings["sampler"] == "random":
        raise PresetError(f"{where(file, key + '.round_trials')} applies only to the learning samplers "
                          f"({', '.join(SAMPLERS[1:])}); random draws every trial up front")
    space_budget = parse_budget(raw["budget"], file, f"{key}.budget") if "budget" in raw else None

    if "batch_size" not in raw:
        raise PresetError(f"{where(file, key + '.batch_size')} is required: a number, or an interval "
                          f"such as {{ low = 12, high = 2048, int = true }}")
    intervals: dict[str, Interval] = {}
    given: dict[str, Any] = {}  # fixed values as written (a schedule kind by name)
    for pname in ["batch_size", *hyper_fields]:
        if pname not in raw:
            continue
        spec_field = BATCH_FIELD if pname == "batch_size" else hyper_fields[pname]
        value = raw[pname]
        pkey = f"{key}.{pname}"
        if isinstance(value, dict):
            if spec_field.kind == "str":
                raise PresetError(f"{where(file, pkey)} is a choice ({spec_field.allowed()}), not a range: "
                                  f"fix it in the space")
            intervals[pname] = _parse_interval(value, spec_field, file, pkey, is_batch=pname == "batch_size")
        else:
            given[pname] = check_value(value, spec_field, file, pkey)
    for pname, spec_field in spec.hyperparams.items():
        if pname not in intervals and pname not in given and spec_field.required:
            raise PresetError(f"{where(file, f'{key}.{pname}')} is required: a number or an interval "
                              f"{{ low = ..., high = ... }} ({spec_field.allowed()})")
    # Own defaults and the schedule's fill-ins come from the same rules as a config's.
    values = {p: given.get(p, None if p in intervals else f.default) for p, f in hyper_fields.items()}
    settled = optimizers.settle(spec, values, file, key, searched=tuple(intervals))
    fixed: dict[str, float] = {}
    if "batch_size" in given:
        fixed["batch_size"] = float(given["batch_size"])
    defaults = {}
    for pname, v in settled.items():
        (fixed if pname in given else defaults)[pname] = v
    return SearchSpace(name, spec.name, settings["trials"], settings["seed"], settings["objective"],
                       float(settings["last_percent"]), space_budget, settings["replicates"],
                       intervals, fixed, defaults, file, metric, goal, settings["sampler"], settings["pruner"],
                       settings["reduction_factor"], settings["min_budget"], settings["round_trials"])


def _parse_interval(raw: dict[str, Any], spec: Field, file: str | None, key: str, is_batch: bool) -> Interval:
    unknown = sorted(set(raw) - set(INTERVAL_KEYS))
    if unknown:
        raise PresetError(f"{where(file, f'{key}.{unknown[0]}')}: unknown key; an interval takes "
                          f"{', '.join(INTERVAL_KEYS)}")
    for k in ("low", "high"):
        if k not in raw:
            raise PresetError(f"{where(file, f'{key}.{k}')} is required in an interval")
    integer = check_value(raw.get("int", is_batch), Field("bool"), file, f"{key}.int")
    if is_batch and not integer:
        raise PresetError(f"{where(file, key + '.int')}: a batch size is a whole number; use int = true")
    # Both ends must be values the hyperparameter may take (b1 in [0, 1), step sizes > 0, ...).
    low = check_value(raw["low"], spec, file, f"{key}.low")
    high = check_value(raw["high"], spec, file, f"{key}.high")
    if integer:
        for k, v in (("low", low), ("high", high)):
            if not float(v).is_integer():
                raise PresetError(f"{where(file, f'{key}.{k}')} must be a whole number when int = true, got {v!r}")
    low, high = float(low), float(high)
    if not is_batch:
        optimizers.check_float32(low, file, f"{key}.low")
        optimizers.check_float32(high, file, f"{key}.high")
    if low > high:
        raise PresetError(f"{where(file, key)}: low ({low:g}) must not exceed high ({high:g})")
    scale = check_value(raw.get("scale", "uniform"), Field("str", choices=SCALES), file, f"{key}.scale")
    scale = "uniform" if scale == "linear" else scale
    if scale == "log" and low <= 0:
        raise PresetError(f"{where(file, key + '.low')} must be > 0 with scale = \"log\", got {low:g}")
    buckets = 0
    if "buckets" in raw:
        if not integer:
            raise PresetError(f"{where(file, key + '.buckets')} applies only to int = true intervals "
                              f"(it groups batch sizes so trials share one compiled program)")
        buckets = check_value(raw["buckets"], Field("int", low=1, high=10_000), file, f"{key}.buckets")
    return Interval(low, high, scale, bool(integer), int(buckets))
