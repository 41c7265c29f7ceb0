"""How much of a many-trial search is bookkeeping: wall time outside training, and memory.

A TwNet random search of N trials at one batch size (so trials train together), a few steps
each, into a temporary store, as `optui search` runs it. Training time is the time inside the
engine's train_group calls (device work, compiles and the chunk writes they make); everything
else (adding trials, scoring, recording each trial's end, events) is bookkeeping. Each count
runs in a fresh process so peak RSS is its own.

    python benchmarks/bench_bookkeeping.py                     # 500 and 2,000 trials
    python benchmarks/bench_bookkeeping.py --trials 10000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, resource, sys, tempfile, time
from optui.study import presets
from optui.engine import executor
from optui.service import SearchRunner, build_workload, execution
from optui.store import Store

trials, steps = int(sys.argv[1]), int(sys.argv[2])
study = presets.load(sys.argv[3], [f"search.sgd.trials={trials}", "search.sgd.batch_size=128",
                                   f"search.sgd.budget={{iterations={steps}}}", "search.sgd.replicates=1",
                                   "eval.points=1", "engine.replicates_per_batch=100"])
workload = build_workload(study)
training = [0.0]
_train_group = executor.train_group
def timed(*args, **kwargs):
    t = time.perf_counter()
    try:
        return _train_group(*args, **kwargs)
    finally:
        training[0] += time.perf_counter() - t
execution.train_group = timed
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
with tempfile.TemporaryDirectory() as tmp:
    store = Store.open(tmp)
    t = time.perf_counter()
    SearchRunner(study, "sgd", store).run(workload=workload)
    wall = time.perf_counter() - t
print(json.dumps({"trials": trials, "wall_s": wall, "training_s": training[0],
                  "rss_before": rss0, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--steps", type=int, default=20, help="training steps per trial")
    parser.add_argument("--preset", default=str(ROOT / "presets" / "twnet.toml"))
    args = parser.parse_args()
    print(f"{'trials':>7} {'wall s':>8} {'training s':>11} {'outside %':>10} {'ms/trial outside':>17} "
          f"{'peak RSS MiB':>13} {'RSS growth MiB':>15}")
    for n in args.trials:
        out = subprocess.run([sys.executable, "-c", CHILD, str(n), str(args.steps), args.preset],
                             capture_output=True, text=True, cwd=ROOT)
        if out.returncode != 0:
            sys.exit(out.stderr)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        outside = row["wall_s"] - row["training_s"]
        print(f"{n:>7} {row['wall_s']:>8.1f} {row['training_s']:>11.1f} {100 * outside / row['wall_s']:>10.1f} "
              f"{1000 * outside / n:>17.2f} {row['peak_rss'] / 2**20:>13.0f} "
              f"{(row['peak_rss'] - row['rss_before']) / 2**20:>15.0f}")


if __name__ == "__main__":
    main()
