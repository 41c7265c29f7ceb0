"""Search strategies side by side: random (no pruning), tpe, and tpe + asha, over several seeds.

    .venv/bin/python benchmarks/bench_search_strategies.py                       # the full measurement
    .venv/bin/python benchmarks/bench_search_strategies.py --workloads twnet --seeds 2 --trials 8 \\
        --scale 0.05 --points 20 --no-confirm                                    # a few minutes, provisional

For each workload (TwNet with the preset's [search.adam] space; MNIST offline with its Adam space,
at a reduced per-trial budget by default: --mnist-scale) and each search seed (--seeds for TwNet,
--mnist-seeds for MNIST), each strategy searches the same space with the same trial count into one
temporary store; each run compiles its own programs as a fresh `optui search` would (the count is
printed; --share-compiles reuses them across runs). For each strategy: the best objective reached (median and
range over seeds), the examples trained (median), and wall time (median).

Target: tpe + asha reaches random search's median best objective with at most a third of random's
examples trained. Where it does not, the script prints what bears on why: how flat the landscape
is (spread of the finished trials' objectives against the gap between strategies) and the noise
between seed replicates (from confirming the winners with --confirm-top 3 --confirm-replicates 10,
which also says whether each strategy's ranking holds under fresh seeds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optui.study import presets  # noqa: E402
from optui.export.search_progress import summary  # noqa: E402
from optui.search import rank_confirmations, rank_trials  # noqa: E402
from optui.study.search_space import fair_budget  # noqa: E402
from optui.service import CompiledGroups, SearchRunner, build_workload  # noqa: E402
from optui.store import Store  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = {"random": ("random", "none"), "tpe": ("tpe", "none"), "tpe+asha": ("tpe", "asha")}
PRESETS = {"twnet": ROOT / "presets" / "twnet.toml", "mnist": ROOT / "presets" / "mnist-offline.toml"}


def load(workload: str, space: str, args, scale: float, extra: list[str]) -> presets.Study:
    overrides = [f"eval.points={args.points}", f"search.{space}.trials={args.trials}", *args.set, *extra]
    study = presets.load(PRESETS[workload], overrides)
    if scale != 1.0:
        budget, _ = fair_budget(study.search[space], study.budget)
        if budget.kind != "examples":
            raise SystemExit(f"{workload}: --scale needs a budget in examples, got {budget.describe()}")
        examples = max(1, int(budget.value * scale))
        study = presets.load(PRESETS[workload], [*overrides, f"search.{space}.budget={{examples={examples}}}"])
    return study


def one(workload: str, space: str, strategy: str, seed: int, args, scale: float, store: Store,
        compiled: CompiledGroups, data) -> dict:
    sampler, pruner = STRATEGIES[strategy]
    extra = [f"search.{space}.seed={seed}", f"search.{space}.sampler={sampler}", f"search.{space}.pruner={pruner}"]
    if pruner == "asha":
        extra += [f"search.{space}.reduction_factor={args.reduction_factor}",
                  f"search.{space}.min_budget={args.min_budget}"]
    if sampler != "random" and args.round_trials:
        extra.append(f"search.{space}.round_trials={args.round_trials}")
    study = load(workload, space, args, scale, extra)
    runner = SearchRunner(study, space, store, compiled=compiled if args.share_compiles else CompiledGroups())
    started = time.perf_counter()
    run_id = runner.run(workload=data)
    wall = time.perf_counter() - started
    ranked = rank_trials(store, run_id)
    done = [t["objective"] for t in ranked if t["objective"] is not None]
    s = summary(ranked)
    return {"workload": workload, "strategy": strategy, "seed": seed, "run_id": run_id,
            "best": done[0] if done else None, "best_trial": ranked[0]["name"] if done else None,
            "objectives": done, "examples": s["total"], "pruned": s["pruned"], "wall_s": wall,
            "compiles": runner.compiles, "study": study}


def confirm(result: dict, store: Store, compiled: CompiledGroups, data, args) -> dict:
    study = result["study"]
    space = next(iter(study.search)) if len(study.search) == 1 else args.space
    runner = SearchRunner(study, space, store, compiled=compiled)
    runner.confirm(result["run_id"], args.confirm_top, args.confirm_replicates, workload=data)
    rows = rank_confirmations(store, result["run_id"])
    searched = [t["name"] for t in rank_trials(store, result["run_id"]) if t["objective"] is not None]
    confirmed = [c["confirm_of"] for c in rows if c["objective"] is not None]
    stds = [c["extra"].get("objective_std") for c in rows if c["extra"].get("objective_std") is not None]
    return {"searched_order": searched[:args.confirm_top], "confirmed_order": confirmed,
            "holds": confirmed[:1] == searched[:1], "replicate_std": stds,
            "confirmed_best": rows[0]["objective"] if rows and rows[0]["objective"] is not None else None}


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", default="twnet,mnist")
    ap.add_argument("--space", default="adam")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=5, help="search seeds for TwNet")
    ap.add_argument("--mnist-seeds", type=int, default=3)
    ap.add_argument("--points", type=int, default=100, help="eval points per trial (the rungs' unit)")
    ap.add_argument("--scale", type=float, default=1.0, help="scale TwNet's per-trial budget")
    ap.add_argument("--mnist-scale", type=float, default=0.25,
                    help="scale MNIST's per-trial budget (default a quarter epoch: say so when reporting)")
    ap.add_argument("--reduction-factor", type=int, default=3)
    ap.add_argument("--min-budget", type=int, default=4, help="eval points before asha's first rung")
    ap.add_argument("--round-trials", type=int, default=0, help="trials per tpe round (0: optui's default)")
    ap.add_argument("--confirm-top", type=int, default=3)
    ap.add_argument("--confirm-replicates", type=int, default=10)
    ap.add_argument("--no-confirm", action="store_true")
    ap.add_argument("--share-compiles", action="store_true",
                    help="reuse compiled programs across runs (faster; wall times then favour later strategies)")
    ap.add_argument("--set", action="append", default=[], help="extra preset override (repeatable)")
    ap.add_argument("--json", type=Path, default=None, help="write every result here")
    args = ap.parse_args()

    results, verdicts = [], {}
    for workload in args.workloads.split(","):
        seeds = args.seeds if workload == "twnet" else args.mnist_seeds
        scale = args.scale if workload == "twnet" else args.mnist_scale
        base = load(workload, args.space, args, scale, [])
        data = build_workload(base)
        compiled = CompiledGroups()
        with tempfile.TemporaryDirectory() as tmp:
            store = Store.open(Path(tmp))
            rows = []
            for seed in range(seeds):
                for strategy in STRATEGIES:
                    r = one(workload, args.space, strategy, seed, args, scale, store, compiled, data)
                    print(f"{workload} seed {seed} {strategy:<9} best {r['best']!s:<22} examples "
                          f"{r['examples']:>12,}  pruned {r['pruned']:>2}  wall {r['wall_s']:7.1f} s  "
                          f"compiles {r['compiles']}", flush=True)
                    rows.append(r)
            if not args.no_confirm:
                for r in rows:
                    if r["seed"] == 0 and r["best"] is not None:
                        r["confirm"] = confirm(r, store, compiled, data, args)
                        c = r["confirm"]
                        print(f"{workload} {r['strategy']:<9} confirm: searched {c['searched_order']} -> "
                              f"confirmed {c['confirmed_order']}, best mean {c['confirmed_best']} over "
                              f"{args.confirm_replicates} fresh seeds (best holds: {c['holds']}; replicate std "
                              f"{', '.join(f'{s:.3g}' for s in c['replicate_std'])})", flush=True)
        print(f"\n{workload} ({args.trials} trials, {seeds} seeds"
              + (f", per-trial budget x{scale:g}" if scale != 1.0 else "") + "):")
        print(f"  {'strategy':<9} {'best median':>12} {'best range':>24} {'examples median':>16} {'wall median':>12}")
        by = {s: [r for r in rows if r["strategy"] == s] for s in STRATEGIES}
        for s, rs in by.items():
            bests = [r["best"] for r in rs if r["best"] is not None]
            rng = f"{min(bests):.4g} .. {max(bests):.4g}" if bests else "-"
            print(f"  {s:<9} {med(bests) or float('nan'):>12.4g} {rng:>24} {med([r['examples'] for r in rs]):>16,.0f} "
                  f"{med([r['wall_s'] for r in rs]):>10.1f} s")
        goal = base.search[args.space].goal
        sign = -1 if goal == "max" else 1
        random_best, asha_best = med([r["best"] for r in by["random"]]), med([r["best"] for r in by["tpe+asha"]])
        random_ex, asha_ex = med([r["examples"] for r in by["random"]]), med([r["examples"] for r in by["tpe+asha"]])
        reached = asha_best is not None and random_best is not None and sign * asha_best <= sign * random_best
        cheap = asha_ex is not None and random_ex and asha_ex <= random_ex / 3
        verdicts[workload] = reached and cheap
        print(f"  target (tpe+asha reaches random's median best with <= 1/3 of its examples): "
              f"{'met' if reached and cheap else 'NOT met'} (best {asha_best} vs {random_best}; examples "
              f"{asha_ex:,.0f} vs {random_ex:,.0f} = {asha_ex / random_ex:.2f}x)")
        if not (reached and cheap):
            spread = [statistics.pstdev(r["objectives"]) for r in by["random"] if len(r["objectives"]) > 1]
            gap = abs((asha_best or 0) - (random_best or 0))
            print(f"  why: random's finished trials spread by {med(spread)} (std over trials); the gap between "
                  f"strategies' median bests is {gap:.3g}")
            noise = [s for r in rows for s in (r.get("confirm") or {}).get("replicate_std", [])]
            if noise:
                print(f"  noise between seed replicates of the winners: std median {med(noise):.3g} "
                      f"(a gap smaller than this is a coin toss)")
        results += [{k: v for k, v in r.items() if k != "study"} for r in rows]
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results,
                                         "target_met": verdicts}, indent=2, default=str))


if __name__ == "__main__":
    main()
