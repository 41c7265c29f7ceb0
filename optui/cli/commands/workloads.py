"""`optui workloads`: the installed workloads, where each comes from, its metrics and settings."""

from __future__ import annotations

import json
from typing import Any, Optional

import typer

from .common import user_errors


def _setting_row(name: str, f: Any) -> dict[str, Any]:
    return {"name": name, "type": f.kind, "required": f.required,
            "default": None if f.required else f.default, "allowed": f.allowed(), "help": f.help}


def describe(reference: str, origin: str, spec: Any, entry_point: str | None = None) -> dict[str, Any]:
    """A workload as JSON-able data: what `optui workloads --json` prints for each."""
    from ...workloads import fields_of

    return {
        "name": reference, "origin": origin, "entry_point": entry_point, "spec_name": spec.name,
        "description": spec.description,
        "metrics": [{**m.as_dict(), "goal": m.goal, "default_objective": m.name == spec.objective}
                    for m in spec.metrics],
        "objective": spec.objective,
        "settings": {section: [_setting_row(n, f) for n, f in fields.items()]
                     for section, fields in fields_of(spec).items()},
    }


def _allowed(r: dict[str, Any]) -> str:
    if r["type"] == "bool":
        return "true or false"
    if r["type"] in ("str", "path") and not r["allowed"].startswith("one of"):
        return "a path" if r["type"] == "path" else "a string"
    return r["allowed"]


def _print(console: Any, entry: dict[str, Any]) -> None:
    """One workload in a few short lines: fits an 80-column terminal."""
    from rich.markup import escape

    console.print(f"[bold]{escape(entry['name'])}[/]", highlight=False)
    console.print(f"  from: {escape(entry['origin'])}", highlight=False)
    if entry.get("entry_point"):
        console.print(f"  entry point: {escape(entry['entry_point'])}", highlight=False)
    if entry.get("error"):
        console.print(f"  [red]cannot be used: {escape(entry['error'])}[/]", highlight=False)
        console.print()
        return
    if entry["description"]:
        console.print(f"  {escape(entry['description'])}", highlight=False)
    console.print("  metrics (* the default search objective):", highlight=False)
    width = max(len(m["name"]) for m in entry["metrics"]) + 2
    for m in entry["metrics"]:
        better = "higher" if m["higher_is_better"] else "lower"
        name = m["name"] + (" *" if m["default_objective"] else "")
        console.print(f"    {escape(name):<{width}}  {m['kind']}, {better} is better", highlight=False)
    console.print("  settings:", highlight=False)
    for section, rows in entry["settings"].items():
        for r in rows:
            default = "(required)" if r["required"] else json.dumps(r["default"])
            console.print(f"    {escape(section + '.' + r['name'] + ' = ' + default):<34} {escape(_allowed(r))}",
                          highlight=False)
            if r["help"]:
                console.print(f"        [dim]{escape(r['help'])}[/]", highlight=False)
    console.print()


def register(app: typer.Typer) -> None:
    @app.command("workloads")
    def workloads_cmd(
        reference: Optional[str] = typer.Argument(None, help="Show one workload: an installed name, "
                                                  "\"package.module:factory\" or \"./file.py:factory\"."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """List the installed workloads (entry point group optui.workloads): where each comes
        from, its metrics (which way is better, the default search objective) and its settings."""
        from rich.console import Console

        from ... import workloads
        from ...errors import PresetError

        entries = []
        if reference is not None:
            with user_errors():
                resolved = workloads.resolve(reference, None, "workload")
            entries.append(describe(reference, resolved.origin, resolved.spec))
        else:
            from ...workloads.registry import chosen

            for name, found in workloads.providers().items():
                winner, hidden = chosen(name, found)
                for p in hidden:  # listed, as optimisers are, so the package's author can see why
                    entries.append({"name": name, "origin": p.distribution, "entry_point": p.value,
                                    "error": f"shadowed by the built-in {name!r}; name it as "
                                             f"\"{p.value}\" in a preset instead", "shadowed": True})
                found = [winner] if winner is not None else found
                origin = "; ".join(p.distribution for p in found)
                value = "; ".join(p.value for p in found)
                try:
                    resolved = workloads.resolve(name, None, "workload")
                except PresetError as exc:  # listed all the same, with what is wrong
                    entries.append({"name": name, "origin": origin, "entry_point": value, "error": str(exc)})
                    continue
                entries.append(describe(name, origin, resolved.spec, value))
        if as_json:
            print(json.dumps(entries, indent=2))
            return
        console = Console()
        if not entries:
            console.print(f"no workloads installed (entry point group {workloads.GROUP})")
            return
        for entry in entries:
            _print(console, entry)
        if reference is None:
            console.print(f"{len(entries)} workload(s) in the entry point group {workloads.GROUP}; a preset "
                          f"names one with workload = \"NAME\", or \"package.module:factory\" or "
                          f"\"./file.py:factory\"", highlight=False)
