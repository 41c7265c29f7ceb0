"""TwNet random search: `optui search` against the report's way (one trial after another).

    .venv/bin/python benchmarks/bench_search.py                     # 20 Adam trials, fair budget, 100 evals
    .venv/bin/python benchmarks/bench_search.py --trials 6 --budget-scale 0.1 --points 20   # a few minutes
    .venv/bin/python benchmarks/bench_search.py --iterations 3000   # the report's fixed 3,000 iterations

Both sides do the same work: the same trials (the preset's [search.adam] draws), the same data
(synthetic TwNet at the report's sizes), the same steps per trial (from the search's budget) and
the same number of full train+test evals. optui runs SearchRunner as `optui search` does (into a
temporary store, compiles included); the baseline runs each trial through the report-style loop
(benchmarks/report_twnet_loop.py: a Python for-loop over iterations, random choice batches, grad
of the loss, a hand-written Adam update, full train and test loss from Python at every 1%).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from report_twnet_loop import report_style_run  # noqa: E402

from optui.study import presets  # noqa: E402
from optui.engine.core import member_keys  # noqa: E402
from optui.search import rank_trials  # noqa: E402
from optui.service import SearchRunner, build_workload  # noqa: E402
from optui.store import Store  # noqa: E402
from optui.workloads.twnet import load_data  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", default="adam")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--points", type=int, default=100, help="full train+test evals per trial")
    ap.add_argument("--iterations", type=int, default=None,
                    help="a fixed iteration count per trial (the report's way) instead of the fair budget")
    ap.add_argument("--budget-scale", type=float, default=1.0,
                    help="scale the fair budget (examples per trial) to shorten a run")
    ap.add_argument("--skip-report", action="store_true", help="optui side only")
    args = ap.parse_args()

    overrides = [f"eval.points={args.points}", f"search.{args.space}.trials={args.trials}"]
    if args.iterations:
        overrides.append(f"search.{args.space}.budget={{iterations={args.iterations}}}")
    study = presets.load(ROOT / "presets" / "twnet.toml", overrides)
    if not args.iterations and args.budget_scale != 1.0:
        from optui.study.search_space import fair_budget

        fair, _ = fair_budget(study.search[args.space], study.budget)
        examples = max(1, int(fair.value * args.budget_scale))
        study = presets.load(ROOT / "presets" / "twnet.toml",
                             overrides + [f"search.{args.space}.budget={{examples={examples}}}"])
    space = study.search[args.space]
    workload = build_workload(study)
    print(f"device: {jax.devices()[0]}; data: {workload.info['users']} users, {workload.info['tokens']} tokens, "
          f"{workload.info['edges']} edges ({workload.n_train} train)")

    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(tmp)
        runner = SearchRunner(study, args.space, store)
        t = time.perf_counter()
        run_id = runner.run(workload=workload)
        optui_s = time.perf_counter() - t
        trials = sorted(rank_trials(store, run_id), key=lambda r: r["trial"])
        budget = store.run_info(run_id)["meta"]["budget_note"]
    steps = [r["steps"] for r in trials]
    print(f"work: {len(trials)} {space.optimizer} trials; budget {budget}")
    print(f"      steps per trial {min(steps):,}..{max(steps):,} (total {sum(steps):,}); "
          f"{args.points} full evals each; batch sizes {sorted({r['params']['batch_size'] for r in trials})}")
    best = min((r for r in trials if r["objective"] is not None), key=lambda r: r["objective"])
    print(f"optui      : {optui_s:8.1f} s for the whole search, compiles included "
          f"({runner.compiles} training programs compiled); best {best['name']} {best['objective']:.4f}")
    if args.skip_report:
        return

    data = load_data(study.data)
    t = time.perf_counter()
    finals = []
    for r in trials:
        key = member_keys(space.seed, 1, r["trial"] - 1)[0]
        hp = {k: v for k, v in r["params"].items() if k != "batch_size"}
        t0 = time.perf_counter()
        _, test, _ = report_style_run(data, space.optimizer, hp, r["params"]["batch_size"], r["steps"],
                                      jax.numpy.asarray(key), args.points)
        finals.append(test[-1])
        print(f"  report loop {r['name']}: batch {r['params']['batch_size']:>5}, {r['steps']:>6,} steps, "
              f"{time.perf_counter() - t0:6.1f} s, final test loss {test[-1]:.4f} (optui {r['objective']:.4f})")
    report_s = time.perf_counter() - t
    print(f"report loop: {report_s:8.1f} s for the same {len(trials)} trials one after another")
    print(f"ratio      : optui's search is {report_s / optui_s:.1f}x faster")
    diffs = np.abs(np.array(finals) - np.array([r["objective"] for r in trials], dtype=float))
    print(f"check      : final test losses differ by {np.nanmedian(diffs):.4f} (median; batches are drawn "
          f"differently on the two sides, so only close, not equal)")


if __name__ == "__main__":
    main()
