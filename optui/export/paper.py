"""Tables for papers: one table of raw values rendered as Markdown, booktabs LaTeX or CSV.

Cells hold raw values (str, int, float, None, or a (low, high) pair for an interval); each format
decides how to print them: Markdown and LaTeX round numbers to four significant digits, CSV keeps
full precision and splits an interval into two columns (<name> low, <name> high). LaTeX uses the
booktabs rules (\\toprule, \\midrule, \\bottomrule): add \\usepackage{booktabs} to the preamble.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

TABLE_FORMATS = ("markdown", "latex", "csv")
SUFFIXES = {"markdown": "md", "latex": "tex", "csv": "csv"}


@dataclass
class PaperTable:
    """header[i] names column i; align[i] is "l" or "r"; notes are sentences printed below."""

    header: list[str]
    rows: list[list[Any]]
    align: list[str] | None = None
    caption: str = ""
    notes: list[str] = field(default_factory=list)
    label: str = ""

    def __post_init__(self) -> None:
        if self.align is None:
            self.align = ["l"] + ["r"] * (len(self.header) - 1)
        for row in self.rows:
            if len(row) != len(self.header):
                raise ValueError(f"table row has {len(row)} cells for {len(self.header)} columns: {row!r}")


def render(table: PaperTable, fmt: str) -> str:
    """The table as text in fmt: markdown, latex or csv."""
    if fmt == "markdown":
        return to_markdown(table)
    if fmt == "latex":
        return to_latex(table)
    if fmt == "csv":
        return to_csv(table)
    raise ValueError(f"table format must be one of {', '.join(TABLE_FORMATS)}, got {fmt!r}")


def number(value: Any, digits: int = 4) -> str:
    """A value for people: 4 significant digits, plain notation between 1e-3 and 1e4."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e4):
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}g}"
    if isinstance(value, tuple) and len(value) == 2:
        return f"[{number(value[0], digits)}, {number(value[1], digits)}]"
    return str(value)


def to_markdown(table: PaperTable) -> str:
    def cell(value: Any) -> str:
        return number(value).replace("|", "\\|")

    lines = []
    if table.caption:
        lines += [f"**{table.caption}**", ""]
    lines.append("| " + " | ".join(cell(h) for h in table.header) + " |")
    lines.append("|" + "|".join(":---" if a == "l" else "---:" for a in table.align) + "|")
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.rows]
    if table.notes:
        lines += [""] + list(table.notes)
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


def _latex_number(value: Any) -> str:
    text = number(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_latex_number(v) for v in value) + "]"
    m = re.fullmatch(r"(-?[0-9.]+)e([+-])0*([0-9]+)", text)
    if m and isinstance(value, float):
        sign = "-" if m.group(2) == "-" else ""
        return f"${m.group(1)} \\times 10^{{{sign}{m.group(3)}}}$"
    if text == "-":
        return "--"
    return latex_escape(text)


def to_latex(table: PaperTable) -> str:
    lines = ["\\begin{table}[ht]", "  \\centering"]
    if table.caption:
        lines.append(f"  \\caption{{{latex_escape(table.caption)}}}")
    if table.label:
        lines.append(f"  \\label{{{table.label}}}")
    lines += [f"  \\begin{{tabular}}{{{''.join(table.align)}}}", "    \\toprule",
              "    " + " & ".join(latex_escape(h) for h in table.header) + " \\\\", "    \\midrule"]
    for row in table.rows:
        cells = [latex_escape(v) if isinstance(v, str) else _latex_number(v) for v in row]
        lines.append("    " + " & ".join(cells) + " \\\\")
    lines += ["    \\bottomrule", "  \\end{tabular}"]
    for note in table.notes:
        lines.append(f"  \\par\\smallskip{{\\footnotesize {latex_escape(note)}}}")
    lines.append("\\end{table}")
    return "\n".join(lines) + "\n"


def _csv_header(table: PaperTable) -> list[str]:
    out = []
    for i, name in enumerate(table.header):
        if any(isinstance(row[i], tuple) for row in table.rows):
            out += [f"{name} low", f"{name} high"]
        else:
            out.append(name)
    return out


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "nan"
    return str(value)


def to_csv(table: PaperTable) -> str:
    """Full-precision values; an interval column becomes two; notes are left out (not data)."""
    intervals = [any(isinstance(row[i], tuple) for row in table.rows) for i in range(len(table.header))]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(_csv_header(table))
    for row in table.rows:
        cells: list[str] = []
        for value, split in zip(row, intervals):
            if split:
                pair: Sequence[Any] = value if isinstance(value, tuple) else (None, None)
                cells += [_csv_value(pair[0]), _csv_value(pair[1])]
            else:
                cells.append(_csv_value(value))
        writer.writerow(cells)
    return buf.getvalue()
