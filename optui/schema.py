"""Small declarative field checks shared by presets and workload settings.

Every error names the file, the dotted key and what is allowed, so a user can fix it at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .errors import PresetError

_MISSING = object()


@dataclass(frozen=True)
class Field:
    kind: str  # "int" | "float" | "str" | "bool" | "path"
    default: Any = _MISSING
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: value must be > low
    high_open: bool = False  # True: value must be < high
    choices: tuple[str, ...] | None = None
    help: str = ""

    @property
    def required(self) -> bool:
        return self.default is _MISSING

    def allowed(self) -> str:
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.low is None and self.high is None:
            return f"a{'n' if self.kind == 'int' else ''} {self.kind}"
        # An infinite end is never allowed (NaN and inf are refused), so its bracket is open.
        lo = "(" if self.low_open or self.low is None else "["
        hi = ")" if self.high_open or self.high is None else "]"
        lo_v = "-inf" if self.low is None else _fmt(self.low)
        hi_v = "inf" if self.high is None else _fmt(self.high)
        return f"{'an integer' if self.kind == 'int' else 'a number'} in {lo}{lo_v}, {hi_v}{hi}"


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(v)


def where(file: str | None, key: str) -> str:
    return f"{file}: {key}" if file else key


def check_value(value: Any, field: Field, file: str | None, key: str) -> Any:
    """Return the value coerced to the field's type, or raise PresetError naming file and key."""
    loc = where(file, key)
    kind = field.kind
    if kind in ("str", "path"):
        if not isinstance(value, str):
            raise PresetError(f"{loc} must be a string, got {value!r}")
        if field.choices and value not in field.choices:
            raise PresetError(f"{loc} must be {field.allowed()}, got {value!r}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise PresetError(f"{loc} must be true or false, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PresetError(f"{loc} must be {field.allowed()}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise PresetError(f"{loc} must be a finite number ({field.allowed()}), got {value!r}")
    if kind == "int":
        if isinstance(value, float):
            if not value.is_integer():
                raise PresetError(f"{loc} must be an integer, got {value!r}")
            value = int(value)
    else:
        value = float(value)
    if field.low is not None and (value < field.low or (field.low_open and value == field.low)):
        raise PresetError(f"{loc} must be {field.allowed()}, got {value!r}")
    if field.high is not None and (value > field.high or (field.high_open and value == field.high)):
        raise PresetError(f"{loc} must be {field.allowed()}, got {value!r}")
    return value


def check_section(
    section: Any, fields: dict[str, Field], file: str | None, prefix: str
) -> dict[str, Any]:
    """Validate a TOML table against fields: unknown keys, missing keys, types and ranges."""
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise PresetError(f"{where(file, prefix)} must be a table, got {section!r}")
    unknown = sorted(set(section) - set(fields))
    if unknown:
        raise PresetError(
            f"{where(file, prefix + '.' + unknown[0])}: unknown key; allowed keys in [{prefix}]: "
            + ", ".join(sorted(fields))
        )
    out: dict[str, Any] = {}
    for name, field in fields.items():
        key = f"{prefix}.{name}"
        if name in section:
            out[name] = check_value(section[name], field, file, key)
        elif field.required:
            raise PresetError(f"{where(file, key)} is required ({field.allowed()})")
        else:
            out[name] = field.default
    return out
