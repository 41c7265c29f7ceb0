"""Small declarative field checks shared by presets and workload settings.

Every error names the file, the dotted key and what is allowed, so a user can fix it at once.
"""

from __future__ import annotations

import math
import re
import unicodedata
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
    # (sibling setting, its values): the setting is read only when the sibling has one of them
    # (data.path only with data.source = "json"); given otherwise, the preset is refused.
    read_when: tuple[str, tuple[str, ...]] | None = None

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


# Names become folder and file names, TOML keys, `RUN:CONFIG` arguments and terminal text, so
# they are plain ASCII: a study name may also hold spaces and dots; the others not.
NAME_MAX = 64
_NAME_PATTERNS = {
    "study": re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.+-]*"),
    "config": re.compile(r"[A-Za-z0-9][A-Za-z0-9_+-]*"),
    "space": re.compile(r"[A-Za-z0-9][A-Za-z0-9_+-]*"),
}
_NAME_ALLOWED = {
    "study": "letters, digits, spaces and _ . + - (not first)",
    "config": "letters, digits and _ + - (not first)",
    "space": "letters, digits and _ + - (not first)",
}


def check_name(value: Any, file: str | None, key: str, kind: str = "config", limit: int = NAME_MAX) -> str:
    """A study, config or search-space name, or PresetError saying what names may hold."""
    loc = where(file, printable(key[:100]))
    if not isinstance(value, str):
        raise PresetError(f"{loc} must be a name (a string), got {value!r}")
    if not value or len(value) > limit or not _NAME_PATTERNS[kind].fullmatch(value) or value != value.strip():
        raise PresetError(f"{loc}: {value[:80]!r}{'...' if len(value) > 80 else ''} is not a usable {kind} "
                          f"name: 1-{limit} of {_NAME_ALLOWED[kind]}")
    return value


def check_text(value: str, file: str | None, key: str, newlines: bool = False) -> str:
    """Free text (a description, a title, a path): no control characters, which a terminal would
    obey (an escape sequence retitles it, BEL rings) and file names cannot hold (NUL)."""
    allowed = "\n\t" if newlines else "\t"
    for i, c in enumerate(value):
        if (unicodedata.category(c) == "Cc" and c not in allowed) or c in _BIDI_CONTROLS:
            raise PresetError(f"{where(file, printable(key))} holds the control character {c!r} at position "
                              f"{i + 1}; remove it")
    return value


def printable(text: str) -> str:
    """text with every character a terminal would act on written as an escape (\\x1b ...)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


# Characters that reorder how text is shown: a name could display as something it is not.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def check_strings(raw: Any, file: str | None, max_depth: int = 16) -> None:
    """Every key and string of a parsed preset: no control characters, and nesting no deeper
    than max_depth. Iterative, so a hostile nesting cannot exhaust Python's stack."""
    todo: list[tuple[Any, str, int]] = [(raw, "", 0)]
    while todo:
        value, key, depth = todo.pop()
        if depth > max_depth:
            raise PresetError(f"{where(file, key or 'preset')}: nested more than {max_depth} deep; a preset "
                              f"is a few levels of tables")
        if isinstance(value, str):
            check_text(value, file, key or "preset", newlines=key in ("description",))
        elif isinstance(value, dict):
            for k, v in value.items():
                sub = f"{key}.{k}" if key else str(k)
                check_text(str(k), file, sub)
                todo.append((v, sub, depth + 1))
        elif isinstance(value, list):
            todo.extend((v, f"{key}[{i}]", depth + 1) for i, v in enumerate(value))
