"""A search's results for people: the ranked trials, the report's section-1 table (default and
optimal hyperparameters), Markdown, scatter plots of the objective against each hyperparameter,
and the best trial written back into a preset as a new config.

Figures use matplotlib's Figure + FigureCanvasAgg (no pyplot); every file is written atomically.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..errors import PresetError
from ..study.presets import Study
from ..study.search_space import SearchSpace
from . import atomic
from . import search_progress as sp
from .figures import _RENDER_LOCK, save_figure

# The report's own studies (its workloads) get its words: it calls constant-step SGD "Constant"
# and names hyperparameters as in its section 1. Every other study gets the names its
# optimiser declares (what its preset writes).
REPORT_WORKLOADS = ("twnet", "mnist")
OPTIMIZER_TITLES = {"sgd": "Constant", "adam": "Adam"}
PARAM_LABELS = {"learning_rate": "Alpha", "batch_size": "Batch Size", "b1": "Beta1", "b2": "Beta2"}
SECTION1 = "the report's section 1"


def is_report_study(study: Study) -> bool:
    """A study of one of the report's workloads: its tables use the report's words."""
    return study.workload in REPORT_WORKLOADS


def label(param: str, study: Study | None = None) -> str:
    """A hyperparameter's column title: the report's ("Alpha") for its studies, else the name
    the optimiser declares ("learning_rate")."""
    if study is not None and is_report_study(study):
        return PARAM_LABELS.get(param, param)
    return param


def section1_title(study: Study) -> str:
    """'Default and optimal hyperparameters', naming the report's section 1 for its studies."""
    return "Default and optimal hyperparameters" + (f" ({SECTION1})" if is_report_study(study) else "")


def direction(space: SearchSpace) -> str:
    return f"{'higher' if space.goal == 'max' else 'lower'} is better"


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return "-"
    if isinstance(value, (int, float)) and float(value).is_integer() and abs(value) < 1e9:
        return str(int(value))
    return f"{value:.4g}"


def table_params(space: SearchSpace) -> list[str]:
    """Columns: alpha and batch size, then every other hyperparameter the space sets."""
    rest = [p for p in space.params if p not in ("batch_size", "learning_rate")
            and (p in space.intervals or p in space.fixed)]
    return ["learning_rate", "batch_size", *rest]


def _config_named(study: Study, space: SearchSpace, suffix: str):
    for name in (f"{space.name}-{suffix}", f"{space.optimizer}-{suffix}"):
        cfg = study.configs.get(name)
        if cfg is not None and cfg.optimizer == space.optimizer:
            return cfg
    return None


def section1_rows(study: Study, space: SearchSpace, best: dict[str, Any] | None) -> list[tuple[str, list[str]]]:
    """The report's section-1 rows for one optimiser: Default, the preset's Optimal, the search's."""
    cols = table_params(space)
    rows = []
    for title, suffix in (("Default", "default"), ("Optimal (preset)", "optimal")):
        cfg = _config_named(study, space, suffix)
        if cfg is not None:
            values = cfg.as_dict()
            rows.append((title, [fmt(values.get(c)) for c in cols]))
    if best is not None:
        rows.append((f"Optimal (search, {best['name']})", [fmt(best["params"].get(c)) for c in cols]))
    return rows


def section1_header(space: SearchSpace, study: Study | None = None) -> list[str]:
    from ..optim import registry as optimizers

    report = study is not None and is_report_study(study)
    title = OPTIMIZER_TITLES.get(space.optimizer) if report else None
    return [title or optimizers.label(space.optimizer), *(label(p, study) for p in table_params(space))]


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def trial_header(space: SearchSpace, study: Study | None = None) -> list[str]:
    return ["Rank", "Trial", "Status", space.objective, *(label(p, study) for p in table_params(space)), "Steps",
            "Wall s", "Examples"]


def trial_cells(t: dict[str, Any], space: SearchSpace) -> list[str]:
    steps = f"{t['steps']:,}"
    if t["status"] == "pruned":  # the steps it ran of its budget
        steps = f"{sp.steps_trained(t):,}/{steps}"
    return [fmt(t["rank"]), t["name"], t["status"], fmt(t["objective"]),
            *[fmt(t["params"].get(c)) for c in table_params(space)], steps, f"{t['wall_time_s']:.1f}",
            f"{sp.examples_trained(t):,}"]


def strategy_lines(space: SearchSpace, meta: dict[str, Any], ranked: list[dict[str, Any]]) -> list[str]:
    """Sentences on how trials were chosen and stopped, and the examples they trained."""
    stored = meta.get("space", {})
    sampler, pruner = stored.get("sampler", "random"), stored.get("pruner", "none")
    how = {"random": "optui's seeded random draws", "qmc": "Optuna's QMCSampler (scrambled Sobol)",
           "tpe": "Optuna's TPESampler", "cmaes": "Optuna's CmaEsSampler"}.get(sampler, sampler)
    rounds = f", asked in rounds of {meta['round_trials']} trials" if meta.get("round_trials") else ""
    stop = {"none": "none (every trial trains its whole budget)",
            "asha": (f"asha (successive halving: reduction factor {stored.get('reduction_factor')}, "
                     f"first rung at eval point {stored.get('min_budget')})"),
            "median": "median (Optuna's MedianPruner at every eval point)"}.get(pruner, pruner)
    s = sp.summary(ranked)
    saved = (f" ({100 * (1 - s['total'] / s['full_total']):.0f}% fewer than every trial to its end)"
             if s["full_total"] and s["total"] < s["full_total"] else "")
    return [f"Sampler: {sampler} ({how}{rounds}). Pruner: {stop}; {s['pruned']} trial(s) pruned.",
            f"Examples trained: {s['total']:,} in total{saved}; per trial {s['per_trial_mean']:,.0f} on "
            f"average ({s['per_trial_min']:,} to {s['per_trial_max']:,})."]


def confirm_header() -> list[str]:
    return ["Rank", "Trial", "Search objective", "Mean", "Std", "Min", "Max", "Replicates", "Status"]


def confirm_cells(c: dict[str, Any], trials: dict[str, dict[str, Any]]) -> list[str]:
    x = c["extra"]
    source = trials.get(c["confirm_of"], {})
    return [fmt(c["rank"]), c["confirm_of"], fmt(source.get("objective")), fmt(c["objective"]),
            fmt(x.get("objective_std")), fmt(x.get("objective_min")), fmt(x.get("objective_max")),
            str(c["replicates"]), c["status"] + (f" ({x.get('diverged')} diverged)" if x.get("diverged") else "")]


def markdown(study: Study, space: SearchSpace, run_info: dict[str, Any], ranked: list[dict[str, Any]],
             confirmations: list[dict[str, Any]]) -> str:
    meta = run_info["meta"]
    best = ranked[0] if ranked and ranked[0]["objective"] is not None else None
    counts = {s: sum(t["status"] == s for t in ranked) for s in ("done", "pruned", "diverged", "failed")}
    pruned = f"{counts['pruned']} pruned, " if counts["pruned"] else ""
    parts = [
        f"# {sp.strategy_title(meta.get('space', {}))} search: {study.name} / {space.name}",
        "",
        f"Run `{run_info['id']}` ({run_info['status']}): {len(ranked)} trials of {space.optimizer} "
        f"(seed {space.seed}), {counts['done']} done, {pruned}{counts['diverged']} diverged, {counts['failed']} failed; "
        f"objective `{space.objective}` ({space.describe_objective()}); "
        f"{space.replicates} replicate(s) per trial.",
        "",
        f"Budget: {meta.get('budget_note') or meta.get('budget')}.",
        "",
        *[x for line in strategy_lines(space, meta, ranked) for x in (line, "")],
        f"![best {space.objective} so far against examples trained](search-{space.name}-history.png)",
        "",
        f"Compiled training programs: {meta.get('compiles', '-')}; wall time {run_info['wall_time_s']:.1f} s "
        f"on {meta.get('device', '?')}.",
        "",
        f"## {section1_title(study)}",
        "",
        _md_table(section1_header(space, study), [[t, *r] for t, r in section1_rows(study, space, best)]),
        "",
        f"## Trials, best first by {space.objective} ({direction(space)})",
        "",
        _md_table(trial_header(space, study), [trial_cells(t, space) for t in ranked]),
        "",
    ]
    if confirmations:
        by_name = {t["name"]: t for t in ranked}
        parts += [
            "## Confirmation: the best trials re-run with fresh seeds",
            "",
            "A trial that won by a lucky seed falls back here; ranks by the mean over replicates.",
            "",
            _md_table(confirm_header(), [confirm_cells(c, by_name) for c in confirmations]),
            "",
        ]
    return "\n".join(parts)


# -- figures -----------------------------------------------------------------------------------

def scatter_figure(study: Study, space: SearchSpace, ranked: list[dict[str, Any]], param: str) -> Any:
    """Objective against one hyperparameter; diverged trials as red crosses along the top."""
    from matplotlib.figure import Figure

    done = [t for t in ranked if t["objective"] is not None]
    diverged = [t for t in ranked if t["status"] == "diverged"]
    with _RENDER_LOCK:
        fig = Figure(figsize=(7.0, 4.5), dpi=120, layout="constrained")
        ax = fig.add_subplot()
        if done:
            ax.scatter([t["params"][param] for t in done], [t["objective"] for t in done], s=28,
                       color="#2e6fd9", label="trial", zorder=3)
            best = done[0]
            ax.scatter([best["params"][param]], [best["objective"]], s=160, marker="*", color="#ff9c24",
                       edgecolor="black", linewidth=0.6, label=f"best ({best['name']})", zorder=4)
        if diverged:  # drawn past the worst end of the axis
            ys = [t["objective"] for t in done]
            pad = 0.05 * (max(ys) - min(ys) or abs(max(ys)) or 1.0) if ys else 0.0
            top = (min(ys) - pad if space.goal == "max" else max(ys) + pad) if ys else 1.0
            ax.scatter([t["params"][param] for t in diverged], [top] * len(diverged), marker="x", s=40,
                       color="#d62728", label="diverged", zorder=3)
        interval = space.intervals[param]
        if interval.scale == "log":
            ax.set_xscale("log")
        ax.set_xlim(*_padded(interval.low, interval.high, interval.scale == "log"))
        shown = label(param, study)
        ax.set_xlabel(f"{shown} ({param}, {interval.scale} scale)" if shown != param else f"{param} ({interval.scale} scale)")
        ax.set_ylabel(f"{space.objective} ({direction(space)})")
        ax.set_title(f"{study.name}: {space.name} search, {len(ranked)} trials")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize=9, framealpha=0.85)
    return fig


def _padded(low: float, high: float, log: bool) -> tuple[float, float]:
    if log:
        f = (high / low) ** 0.04 if high > low else 1.5
        return low / f, high * f
    pad = 0.04 * (high - low) or 0.5 * (abs(low) or 1.0)
    return low - pad, high + pad


def trials_table(study: Study, space: SearchSpace, run_info: dict[str, Any],
                 ranked: list[dict[str, Any]]) -> Any:
    """The ranked trials as a PaperTable (Markdown, booktabs LaTeX or CSV)."""
    from .paper import PaperTable

    header = trial_header(space, study)
    rows = []
    for t in ranked:
        rows.append([t["rank"], t["name"], t["status"], t["objective"],
                     *[_plain(t["params"].get(c)) for c in table_params(space)], int(t["steps"]),
                     float(t["wall_time_s"]), sp.examples_trained(t)])
    align = ["r", "l", "l"] + ["r"] * (len(header) - 3)
    caption = (f"{sp.strategy_title(run_info['meta'].get('space', {}))} search {study.name} / {space.name}: {len(ranked)} trials of "
               f"{space.optimizer}, best first by {space.objective} ({direction(space)})")
    notes = [f"Run {run_info['id']}; budget: {run_info['meta'].get('budget_note') or run_info['meta'].get('budget')}."]
    return PaperTable(header, rows, align=align, caption=caption, notes=notes)


def _plain(value: Any) -> Any:
    """Integers stay integers (batch sizes), other numbers floats, for every table format."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)) and float(value).is_integer() and abs(value) < 1e9:
        return int(value)
    return float(value) if isinstance(value, (int, float)) else value


def export_search(study: Study, space: SearchSpace, run_info: dict[str, Any], ranked: list[dict[str, Any]],
                  confirmations: list[dict[str, Any]], out_dir: str | Path,
                  formats: tuple[str, ...] = ("markdown", "png"),
                  related: dict[str, list[dict[str, Any]]] | None = None) -> list[Path]:
    """exports/<study>/search-<space>.md, one search-<space>-<param>.png per searched param and
    search-<space>-history.png (best objective so far against examples trained; `related`
    searches of the same space, {label: ranked trials}, drawn beside it).

    formats may add latex and csv (the trials table), json (the ranked trials with their
    confirmations) and pdf or svg (the scatter plots).
    """
    from .paper import SUFFIXES, render
    from .tables import write_json

    out = atomic.ensure_writable_dir(out_dir)
    files = []
    if "markdown" in formats:
        files.append(atomic.write_text(out / f"search-{space.name}.md",
                                       markdown(study, space, run_info, ranked, confirmations)))
    for kind in ("latex", "csv"):
        if kind in formats:
            table = trials_table(study, space, run_info, ranked)
            files.append(atomic.write_text(out / f"search-{space.name}.{SUFFIXES[kind]}", render(table, kind)))
    if "json" in formats:
        files.append(write_json({"run_id": run_info["id"], "study": study.name, "space": space.name,
                                 "objective": space.objective, "trials": ranked,
                                 "confirmations": confirmations}, out / f"search-{space.name}.json"))
    kinds = [k for k in ("png", "pdf", "svg") if k in formats]
    for param in space.intervals if kinds else ():
        fig = scatter_figure(study, space, ranked, param)
        for kind in kinds:
            files.append(save_figure(fig, out / f"search-{space.name}-{param}.{kind}"))
    if kinds:
        label = f"{sp.strategy_label(run_info['meta'].get('space', {}))} ({run_info['id']})"
        fig = sp.history_figure(f"{study.name}: {space.name} search, best so far", space.objective, space.goal,
                                {label: ranked, **(related or {})})
        for kind in kinds:
            files.append(save_figure(fig, out / f"search-{space.name}-history.{kind}"))
    return files


# -- the best trial as a preset config -----------------------------------------------------------

def write_best_config(path: str | Path, config_name: str, optimizer: str, params: dict[str, Any],
                      note: str) -> Path:
    """Add (or replace) [configs.<config_name>] in a preset file, keeping its comments and layout.

    The edited text is validated as a preset before it atomically replaces the file.
    """
    import tomlkit

    from ..optim import registry as optimizers
    from ..study import presets

    path = Path(path)
    text = presets.read_text(path)
    try:
        doc = tomlkit.parse(text)
    except Exception as exc:  # tomlkit's parse errors carry line and column
        raise PresetError(f"{path}: not valid TOML: {exc}") from None
    if "." in config_name or not config_name:
        raise PresetError(f"{path}: config name {config_name!r} may not be empty or contain '.'")
    table = tomlkit.table()
    table.add(tomlkit.comment(note))
    table.add("optimizer", optimizer)
    for name in optimizers.hyperparam_names(optimizer):
        if name in params:
            value = optimizers.toml_value(name, params[name])  # a schedule kind by name
            table.add(name, value if isinstance(value, str) else float(value))
    table.add("batch_size", int(params["batch_size"]))
    configs = doc.get("configs")
    if configs is None:
        configs = tomlkit.table(is_super_table=True)
        doc["configs"] = configs
    if config_name in configs:  # replaced in place, keeping what followed the old table
        trailing = _pop_trailing(configs[config_name])
        configs[config_name] = table
        configs[config_name].value.body.extend(trailing or [(None, _blank())])
    else:
        _insert_after_last_config(doc, configs, config_name, table)
    new_text = tomlkit.dumps(doc)
    presets.loads(new_text, str(path))  # never leave an invalid preset behind
    atomic.write_text(path, new_text)
    return path


def _blank() -> Any:
    from tomlkit.items import Whitespace

    return Whitespace("\n")


def _pop_trailing(table: Any) -> list:
    """Remove and return the comments and blank lines at the end of a table's body: tomlkit keeps
    the comments that introduce the next section there."""
    from tomlkit.items import Comment, Whitespace

    if not hasattr(table, "value"):
        return []
    body = table.value.body
    trailing = []
    while body and body[-1][0] is None and isinstance(body[-1][1], (Comment, Whitespace)):
        trailing.insert(0, body.pop())
    return trailing


def _insert_after_last_config(doc: Any, configs: Any, name: str, table: Any) -> None:
    """Put the new table right after the last config; what followed that config follows it."""
    names = list(configs.keys())
    trailing = _pop_trailing(configs[names[-1]]) if names else []
    if names and hasattr(configs[names[-1]], "value"):
        configs[names[-1]].value.body.append((None, _blank()))
    configs.append(name, table)
    configs[name].value.body.extend(trailing or [(None, _blank())])
