"""TwNet: optui's engine against the report-style loop on the same work.

    .venv/bin/python benchmarks/bench_twnet.py                      # adam-optimal, 300 iterations, 2 replicates
    .venv/bin/python benchmarks/bench_twnet.py --iterations 3000 --replicates 1
    .venv/bin/python benchmarks/bench_twnet.py --study               # also time the whole preset study in optui

Both sides: the same synthetic data, config, replicates, iterations and 100 full train+test evals.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from report_twnet_loop import report_style_replicates  # noqa: E402

from optui.study import presets  # noqa: E402
from optui.engine.core import GroupRunner, chunk_bounds, member_keys, run_group  # noqa: E402
from optui.workloads.base import Strategy  # noqa: E402
from optui.workloads.twnet import make_workload  # noqa: E402
from optui.workloads.twnet_data import synthetic  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def optui_run(workload, cfg, iterations, replicates, points, strategy=Strategy()):
    """Returns (seconds with compile, seconds steady, seconds in eval, final test losses)."""
    runner = GroupRunner(workload, cfg.optimizer, cfg.batch_size, strategy)
    keys = member_keys(0, replicates)
    hp = {k: np.full(replicates, v, np.float32) for k, v in cfg.hyperparams.items()}

    def once():
        t = time.perf_counter()
        last = None
        for out, _ in run_group(runner, keys, hp, iterations, points):
            last = out
        return time.perf_counter() - t, last

    first, _ = once()
    steady, last = once()
    # Where the time goes: eval alone on the final state, times the number of evals.
    state = runner.init(keys, hp)
    runner.evaluate(state)
    t = time.perf_counter()
    for _ in range(5):
        runner.evaluate(state)
    eval_s = (time.perf_counter() - t) / 5 * (len(chunk_bounds(iterations, points)))
    return first, steady, eval_s, last.eval["test_loss"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="adam-optimal")
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--replicates", type=int, default=2)
    ap.add_argument("--points", type=int, default=100)
    ap.add_argument("--study", action="store_true", help="also time the whole preset in optui")
    ap.add_argument("--skip-report", action="store_true", help="optui side only")
    args = ap.parse_args()

    study = presets.load(ROOT / "presets" / "twnet.toml")
    cfg = study.configs[args.config]
    data = synthetic()
    workload = make_workload(data)
    print(f"device: {jax.devices()[0]}; data: {workload.info['users']} users, {workload.info['tokens']} tokens, "
          f"{workload.info['edges']} edges; config {cfg.name} {cfg.as_dict()}")
    print(f"work: {args.replicates} replicates x {args.iterations} iterations, {args.points} full evals each")

    first, steady, eval_s, finals = optui_run(workload, cfg, args.iterations, args.replicates, args.points)
    print(f"optui      : {steady:8.2f} s steady ({first:.2f} s with compile); of which eval ~{eval_s:.2f} s; "
          f"final test loss {np.mean(finals):.4f}")
    if not args.skip_report:
        t = time.perf_counter()
        runs = report_style_replicates(data, cfg.optimizer, cfg.hyperparams, cfg.batch_size, args.iterations,
                                       args.replicates, args.points)
        report_s = time.perf_counter() - t
        print(f"report loop: {report_s:8.2f} s; final test loss {np.mean([r[1][-1] for r in runs]):.4f}")
        print(f"ratio      : optui is {report_s / steady:.1f}x faster (steady), {report_s / first:.1f}x "
              f"including its compile")
    if args.study:
        t = time.perf_counter()
        for c in study.configs.values():
            optui_run_once = GroupRunner(workload, c.optimizer, c.batch_size, Strategy())
            keys = member_keys(0, study.replicates_count)
            hp = {k: np.full(study.replicates_count, v, np.float32) for k, v in c.hyperparams.items()}
            for _ in run_group(optui_run_once, keys, hp, study.budget.steps(c.batch_size, workload.n_train),
                               study.eval_points):
                pass
            print(f"  {c.name}: {time.perf_counter() - t:.1f} s cumulative")
        print(f"whole study (4 configs x {study.replicates_count} replicates x {study.budget.describe()}, "
              f"{study.eval_points} evals): {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
