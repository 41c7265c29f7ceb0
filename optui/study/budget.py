"""A study's training budget: iterations, epochs or examples, and the steps it gives a batch size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import PresetError
from ..schema import Field, check_value, where

MAX_EPOCHS = 1_000_000  # keeps a run's step count (epochs x batches per epoch) a sane integer
MAX_STEPS = 2**31 - 1  # steps are int32 on the device
BUDGET_KINDS = ("iterations", "epochs", "examples")


@dataclass(frozen=True)
class Budget:
    kind: str  # iterations | epochs | examples
    value: float

    def steps(self, batch_size: int, n_train: int) -> int:
        """Training steps for a batch size; epochs and examples keep the data seen equal."""
        if self.kind == "iterations":
            steps = int(self.value)
        elif self.kind == "epochs":
            steps = max(1, int(self.value * (n_train // batch_size)))
        else:
            steps = max(1, int(self.value) // batch_size)
        if steps > MAX_STEPS:
            raise PresetError(f"budget.{self.kind} = {self.describe()} gives {steps:,} steps at batch size "
                              f"{batch_size:,}; a run has at most {MAX_STEPS:,} steps")
        return steps

    def describe(self) -> str:
        v = int(self.value) if float(self.value).is_integer() else self.value
        return f"{v:,} {self.kind}" if isinstance(v, int) else f"{v} {self.kind}"



def parse_budget(raw: Any, file: str | None, prefix: str = "budget") -> Budget:
    if not isinstance(raw, dict) or not raw:
        raise PresetError(f"{where(file, prefix)} must be a table with one of: {', '.join(BUDGET_KINDS)}")
    unknown = sorted(set(raw) - set(BUDGET_KINDS))
    if unknown:
        raise PresetError(f"{where(file, prefix + '.' + unknown[0])}: unknown key; "
                          f"use exactly one of {', '.join(BUDGET_KINDS)}")
    if len(raw) != 1:
        raise PresetError(f"{where(file, prefix)} must set exactly one of {', '.join(BUDGET_KINDS)}, "
                          f"got {', '.join(sorted(raw))}")
    (kind, value), = raw.items()
    spec = (Field("float", low=0.0, high=MAX_EPOCHS, low_open=True) if kind == "epochs"
            else Field("int", low=1, high=MAX_STEPS) if kind == "iterations" else Field("int", low=1, high=10**15))
    return Budget(kind, check_value(value, spec, file, f"{prefix}.{kind}"))
