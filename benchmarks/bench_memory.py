"""Peak memory of a study against optui's estimate (optui.engine.memory), per replicate count.

Each count runs in a fresh process (peak RSS is per process): the TwNet preset's sgd-default
config for a few steps, all replicates vmapped at once. The marginal memory per replicate is
what memory.ACTIVATIONS_PER_DATA_BYTE is calibrated from.

    python benchmarks/bench_memory.py                     # replicates 50, 200, 400
    python benchmarks/bench_memory.py --replicates 100 800 --preset presets/twnet.toml
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, resource, sys, tempfile
from optui.study import presets
from optui.engine import memory
from optui.service import StudyRunner, build_workload, plan_units
from optui.store import Store

preset, replicates = sys.argv[1], int(sys.argv[2])
study = presets.load(preset, [f"replicates.count={replicates}", "budget.iterations=20", "eval.points=2"])
workload = build_workload(study)
units = plan_units(study, workload, ["sgd-default"])
need = memory.unit_needs(workload, units, study.eval_points)[0]
with tempfile.TemporaryDirectory() as tmp:
    StudyRunner(study, Store.open(tmp)).run(configs=["sgd-default"], workload=workload)
print(json.dumps({"replicates": replicates, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "estimate_per_replicate": need.working_bytes_per_member + 2 * need.state_bytes,
                  "data_bytes": memory.data_bytes(workload)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicates", type=int, nargs="+", default=[50, 200, 400])
    parser.add_argument("--preset", default=str(ROOT / "presets" / "twnet.toml"))
    args = parser.parse_args()
    rows = []
    for r in args.replicates:
        out = subprocess.run([sys.executable, "-c", CHILD, args.preset, str(r)], capture_output=True, text=True,
                             cwd=ROOT, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{'replicates':>10} {'peak RSS MiB':>13} {'marginal MiB/rep':>17} {'estimate MiB/rep':>17}")
    for prev, row in zip([None] + rows[:-1], rows):
        marginal = "-" if prev is None else \
            f"{(row['peak_rss'] - prev['peak_rss']) / (row['replicates'] - prev['replicates']) / 2**20:.2f}"
        print(f"{row['replicates']:>10} {row['peak_rss'] / 2**20:>13.0f} {marginal:>17} "
              f"{row['estimate_per_replicate'] / 2**20:>17.2f}")
    print(f"data on the device: {rows[0]['data_bytes'] / 2**20:.2f} MiB")


if __name__ == "__main__":
    main()
