"""Search trials' plans and names, and the study's search space a search draws from.

Trials that share (optimiser, batch size) train together as one group (optui.service.searches
runs them): their hyperparameters are per-member data, so a group is one compiled program
however many learning rates it holds.

Keys: trial i's replicate r trains with member_keys(seed, R, i, stream)[r];
stream 0 is the search, stream 1 the confirmation re-runs. A resumed trial therefore continues
(from its last checkpointed chunk) exactly as an uninterrupted one would have run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import PresetError
from ..study.presets import Study
from ..study.search_space import SearchSpace

SEARCH_STREAM, CONFIRM_STREAM = 0, 1
# The keys of a stored trial's spec that are not its hyperparameters.
NOT_HYPERPARAMETERS = ("optimizer", "trial", "space", "steps", "confirm_of", "round")


@dataclass
class TrialPlan:
    name: str
    index: int  # 0-based draw index
    params: dict[str, float]  # batch_size and every optimiser hyperparameter
    steps: int
    replicates: int
    stream: int = SEARCH_STREAM
    confirm_of: str | None = None
    round: int | None = None  # the sampler's round that asked it (learning samplers only)

    @property
    def batch_size(self) -> int:
        return int(self.params["batch_size"])

    def spec(self, space: SearchSpace) -> dict[str, Any]:
        spec = {"optimizer": space.optimizer, **self.params, "trial": self.index + 1,
                "space": space.name, "steps": self.steps}
        if self.confirm_of:
            spec["confirm_of"] = self.confirm_of
        if self.round is not None:
            spec["round"] = self.round
        return spec


def trial_name(space: str, index: int) -> str:
    return f"{space}-t{index + 1:03d}"


def confirm_name(trial: str, replicates: int) -> str:
    return f"{trial}-r{replicates}"


def plan_from_row(row: dict[str, Any]) -> TrialPlan:
    spec = row["spec"]
    params = {k: v for k, v in spec.items() if k not in NOT_HYPERPARAMETERS}
    params["batch_size"] = int(params["batch_size"])
    return TrialPlan(row["name"], int(spec["trial"]) - 1, params, int(row["total_steps"]),
                     int(row["replicates"]), CONFIRM_STREAM if spec.get("confirm_of") else SEARCH_STREAM,
                     spec.get("confirm_of"), spec.get("round"))


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
