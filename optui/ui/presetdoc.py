"""A preset being edited: a tomlkit document (comments kept), its editable fields, validation.

No widgets here: the editor panels show FieldRows and call set_field/validate. Validation goes
through optui.study.presets, so the editor reports exactly what `optui run` would refuse.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit

from ..optim import registry as optimizers
from ..study import presets
from ..errors import OptuiError, PresetError
from ..schema import Field

Key = tuple[str | int, ...]

# Sections whose fields the workload declares (present keys are shown as well).
WORKLOAD_SECTIONS = ("data", "model", "eval")
FIXED_SECTIONS = {"replicates": presets.REPLICATE_FIELDS, "engine": presets.ENGINE_FIELDS}
TOP_FIELDS = {"study": Field("str", ""), "workload": Field("str"), "description": Field("str", "")}
OPTIMIZER_HELP = ("a name from `optui optimizers` (adam, sgd, prodigy, ...), an installed plug-in, "
                  "\"package.module:factory\" or \"./my_opt.py:factory\"")


@dataclass(frozen=True)
class FieldRow:
    key: Key
    label: str  # the dotted key as validation messages name it: configs.sgd.learning_rate
    text: str  # the value as the user edits it ("" when the key is absent)
    is_str: bool  # edited as plain text, not as a TOML literal
    placeholder: str  # the default, for absent keys
    help: str = ""
    required: bool = False  # an empty field is an error on it, not a removed key


def label_of(key: Key) -> str:
    out = ""
    for part in key:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return value
    return tomlkit.item(value).as_string().strip()


def _unwrap(value: Any) -> Any:
    return value.unwrap() if hasattr(value, "unwrap") else value


class PresetDocument:
    """The text of one preset, parsed with tomlkit so saving keeps its comments and layout."""

    def __init__(self, path: Path, text: str, display: str | None = None):
        self.path = path
        self.display = display or str(path)  # how messages name the file (presets/x.toml)
        self.saved_text = text  # the file's text as last read or written
        self.edits: dict[Key, tuple[str, bool, bool]] = {}  # key -> (text, is_str, required), in order
        self.doc = self._parse(text, self.display)
        # Cleared fields stay in self.doc (position and comment kept while the user retypes) and
        # are left out of the effective text.
        self.cleared: set[Key] = set()

    @staticmethod
    def _parse(text: str, name: str):
        try:
            return tomlkit.parse(text)
        except Exception as exc:  # tomlkit raises its own ParseError family
            raise PresetError(f"{name}: not valid TOML: {exc}") from None

    @classmethod
    def read(cls, path: Path, display: str | None = None) -> "PresetDocument":
        return cls(path, presets.read_text(path), display)

    @property
    def file(self) -> str:
        return self.display

    def effective(self):
        """The document as it would be saved: cleared fields removed."""
        if not self.cleared:
            return self.doc
        doc = tomlkit.parse(tomlkit.dumps(self.doc))
        for key in sorted(self.cleared, key=len, reverse=True):
            node: Any = doc
            try:
                for part in key[:-1]:
                    node = node[part]
                del node[key[-1]]
            except (KeyError, IndexError, TypeError):
                pass
        return doc

    def text(self) -> str:
        return tomlkit.dumps(self.effective())

    @property
    def dirty(self) -> bool:
        return self.text() != self.saved_text

    def plain(self) -> dict[str, Any]:
        return _unwrap(self.effective())

    # -- fields -------------------------------------------------------------------------------
    def get(self, key: Key) -> Any:
        if key in self.cleared:
            return None
        node: Any = self.doc
        for part in key:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return None
        return _unwrap(node)

    def rows(self, workload_fields: dict[str, dict[str, Field]] | None = None) -> list[FieldRow]:
        """Every editable field: keys present in the file plus the known keys with defaults."""
        # Cleared keys stay listed (from the document, not its effective text): a field keeps its
        # key while it is edited, even when the user empties it on the way to a new value.
        raw = _unwrap(self.doc)
        wf = workload_fields or {}
        out: list[FieldRow] = []
        for name, field in TOP_FIELDS.items():
            out.append(self._row((name,), field))
        for section in ("data", "model", "eval"):
            out += self._section_rows((section,), raw.get(section), wf.get(section, {}))
        budget = raw.get("budget") if isinstance(raw.get("budget"), dict) else {}
        for name in budget or {"iterations": None}:
            out.append(self._row(("budget", name), None, required=True))
        for section, fields in FIXED_SECTIONS.items():
            out += self._section_rows((section,), raw.get(section), fields)
        configs = raw.get("configs") if isinstance(raw.get("configs"), dict) else {}
        for cname, craw in configs.items():
            craw = craw if isinstance(craw, dict) else {}
            # Built-ins and plug-ins already resolved by validation; nothing is imported here.
            spec = optimizers.cached(craw.get("optimizer"), self.file)
            fields = {"optimizer": Field("str", help=OPTIMIZER_HELP), "batch_size": Field("int")}
            fields.update(optimizers.config_fields(spec) if spec else {})
            out += self._section_rows(("configs", cname), craw, fields)
        search = raw.get("search") if isinstance(raw.get("search"), dict) else {}
        for sname, sraw in search.items():
            out += self._flat_rows(("search", sname), sraw)
        compare = raw.get("compare") if isinstance(raw.get("compare"), list) else []
        for i, entry in enumerate(compare):
            fields = {k: f for k, f in presets.COMPARE_FIELDS.items() if k != "labels"}
            out += self._section_rows(("compare", i), entry if isinstance(entry, dict) else {}, fields)
        return out

    def _row(self, key: Key, field: Field | None, required: bool = False) -> FieldRow:
        value = self.get(key)
        is_str = isinstance(value, str) or (value is None and field is not None
                                            and field.kind in ("str", "path"))
        default = "" if field is None or field.required else field.default
        placeholder = "" if field is None or field.required else (
            "optional" if default in ("", None) else f"default {_literal(default)}")
        if field is not None and field.choices:
            placeholder = (placeholder + "; " if placeholder else "") + " | ".join(field.choices)
        return FieldRow(key, label_of(key), "" if value is None else _literal(value), is_str,
                        placeholder, field.help if field else "",
                        required or (field is not None and field.required))

    def _section_rows(self, prefix: Key, raw: Any, fields: dict[str, Field]) -> list[FieldRow]:
        raw = raw if isinstance(raw, dict) else {}
        names = list(fields) + [k for k in raw if k not in fields]
        return [self._row(prefix + (n,), fields.get(n)) for n in names]

    def _flat_rows(self, prefix: Key, raw: Any) -> list[FieldRow]:
        """Search spaces: nested ranges like learning_rate = {low, high} become one row per bound."""
        if not isinstance(raw, dict):
            return [self._row(prefix, None)]
        out = [self._row(prefix + (k,), None) for k, v in raw.items() if not isinstance(v, dict)]
        for k, v in raw.items():  # ranges after the plain keys: one heading per table
            if isinstance(v, dict):
                out += self._flat_rows(prefix + (k,), v)
        return out

    def set_field(self, key: Key, text: str, is_str: bool, required: bool = False) -> str | None:
        """Put the user's text into the document. Returns a parse error, or None when applied.

        An empty field leaves the key out of the effective text (its default applies); for a
        required field that is an error on the field itself."""
        self.edits[key] = (text, is_str, required)
        text = text.strip() if not is_str else text
        remove = text.strip() == ""
        value: Any = None
        if not remove and not is_str:
            try:
                value = tomllib.loads(f"v = {text}")["v"]
            except tomllib.TOMLDecodeError:
                return not_a_value(label_of(key), text)
        elif not remove:
            value = text
        if remove:
            self.cleared.add(key)
            return f"{label_of(key)}: empty: this field needs a value" if required else None
        self.cleared.discard(key)
        node: Any = self.doc
        for part in key[:-1]:
            try:
                node = node[part]
            except (KeyError, IndexError):
                node[part] = tomlkit.table()
                node = node[part]
        node[key[-1]] = value
        return None

    # -- validation and saving ----------------------------------------------------------------
    def validate(self) -> presets.Study:
        """The study as optui.study.presets reads it; raises PresetError (file, key, what is allowed)."""
        return presets.loads(self.text(), self.file)

    def save(self) -> presets.Study:
        """Validate, then write the file (comments and layout kept). Invalid text is never written."""
        study = self.validate()
        if self.changed_on_disk() is not None:
            raise ChangedOnDisk(f"{self.display}: changed on disk since it was read; not overwritten "
                                f"(reload it, or merge your edits onto it)")
        text = self.text()
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(self.path)
        except OSError as exc:
            raise OptuiError(f"{self.path}: cannot save: {exc.strerror}") from None
        self.saved_text = text
        self.doc = self._parse(text, self.display)
        self.cleared = set()
        self.edits = {}
        return study

    def changed_on_disk(self) -> str | None:
        """The file's text when it differs from the text last read or written, else None."""
        try:
            now = self.path.read_text(encoding="utf-8")
        except OSError:
            return None  # gone or unreadable for a moment (an editor's atomic save): not a change
        return now if now != self.saved_text else None

    def saved_value(self, key: Key) -> str:
        """A field's text as the file holds it ("" when the file lacks the key)."""
        node: Any = tomlkit.parse(self.saved_text)
        for part in key:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return ""
        return _literal(_unwrap(node))

    def merged_onto(self, text: str) -> tuple["PresetDocument", list[str]]:
        """This document's edits applied onto `text` (the file as changed on disk): a new document
        read from that text, and the edits that could not be applied, with why."""
        other = PresetDocument(self.path, text, self.display)
        problems = []
        for key, (value, is_str, required) in self.edits.items():
            error = other.set_field(key, value, is_str, required)
            if error:
                problems.append(error)
        return other, problems


class ChangedOnDisk(OptuiError):
    """The preset file changed since the editor read it: saving would lose that change."""


def not_a_value(label: str, text: str) -> str:
    """Why the text typed into a field is no TOML value, as specifically as the text allows."""
    if re.match(r"[+-]?[0-9.]", text):
        return f"{label}: {text!r} is not a number: write digits like 3000, 0.01 or 1e-3"
    if text.startswith("["):
        return f"{label}: {text!r} is not a list: write it like [\"a\", \"b\"] or [1, 2]"
    if text.startswith(("\"", "'")):
        return f"{label}: {text!r} is not closed: end the text with the same quote"
    return (f"{label}: not a value: write a number (0.01, 1e-3), true/false, "
            f"\"text\" or a list like [\"a\", \"b\"]")


def error_key(message: str, file: str) -> str | None:
    """The dotted key a PresetError message names ('<file>: configs.sgd.b1 must be ...')."""
    m = re.match(re.escape(file) + r": ([A-Za-z0-9_.\[\]-]+)", message)
    return m.group(1) if m else None


def row_for_error(rows: list[FieldRow], key: str | None) -> FieldRow | None:
    """The row an error belongs to: the exact key, else the closest row inside or above it."""
    if not key:
        return None
    for row in rows:
        if row.label == key:
            return row
    inside = [r for r in rows if r.label.startswith(key + ".") or r.label.startswith(key + "[")]
    if inside:
        return inside[0]
    above = [r for r in rows if key.startswith(r.label + ".")]
    return max(above, key=lambda r: len(r.label)) if above else None


def workload_fields(workload: Any, file: str | None = None) -> dict[str, dict[str, Field]]:
    """The settings the workload declares, per section (resolving it imports the workload: call
    it off the UI thread). {} when the reference does not resolve: validation says why."""
    from .. import workloads

    if not isinstance(workload, str):
        return {}
    try:
        resolved = workloads.resolve(workload, file)
    except PresetError:
        return {}
    return workloads.fields_of(resolved.spec)
