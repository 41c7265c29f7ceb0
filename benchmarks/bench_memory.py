"""optui's memory estimate (optui.engine.memory) against the measured peak, at small and large batches.

Each case runs in a fresh process (peak RSS is per process): a preset's config trained for a few
steps with R replicates at batch size B. The process's resident memory is sampled every 5 ms;
"measured" is its peak while the run trains minus its size just before (workload built, nothing
compiled for training yet), so it holds what the run adds: states, activations, the
compiler's working memory and the allocator's slack. "estimate" is what the plan reserves for
the run (memory.planned_bytes): every member's resident state, one call's working bytes
(activations measured by compiling one member's step, see memory.activation_bytes) and a
reserve for compiling the training program. The check: estimate within 1.5x
above the measured peak, never below.

    python benchmarks/bench_memory.py                          # TwNet and the MNIST CNN, small and large batches
    python benchmarks/bench_memory.py --cases twnet:sgd-default:128:4 mnist:adam-default:4000:1
    (a case is PRESET:CONFIG:BATCH:REPLICATES; PRESET twnet or mnist, or a preset file)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "mnist-t10k"
PRESETS = {"twnet": (ROOT / "presets" / "twnet.toml", []),
           "mnist": (ROOT / "presets" / "mnist-offline.toml", [f"data.path={DATA}"])}
DEFAULT_CASES = ["twnet:sgd-default:128:4", "twnet:sgd-default:2000:4",
                 "mnist:adam-default:128:1", "mnist:adam-default:4000:1"]

CHILD = """
import json, os, sys, tempfile, threading, time
import psutil
from optui.study import presets
from optui.engine import memory
from optui.service import StudyRunner, build_workload, plan_units, resolve_strategy
from optui.service.studies import metric_count
from optui.store import Store

preset, config, batch, replicates = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
text = presets.read_text(preset)
raw = presets.parse_toml(text, preset)
raw["budget"] = {"iterations": 4}  # a few steps: the peak comes with the first
study = presets.study_from_dict(presets.apply_overrides(raw, json.loads(sys.argv[5]) + [
    f"replicates.count={replicates}", "eval.points=1", f"configs.{config}.batch_size={batch}"]), preset, text)
workload = build_workload(study)
units = plan_units(study, workload, [config])
[need] = memory.unit_needs(workload, units, study.eval_points, metrics=metric_count(study))
strategy = memory.fit(resolve_strategy(study, workload), workload, units, study.eval_points)
members = (strategy.max_members or replicates) if strategy.vmap_replicates else 1
estimate = memory.planned_bytes(need, members)
process = psutil.Process()
before = process.memory_info().rss
peak = [before]
done = threading.Event()

def sample():
    while not done.is_set():
        peak[0] = max(peak[0], process.memory_info().rss)
        time.sleep(0.005)

watcher = threading.Thread(target=sample, daemon=True)
watcher.start()
with tempfile.TemporaryDirectory() as tmp:
    StudyRunner(study, Store.open(tmp)).run(configs=[config], workload=workload)
done.set()
watcher.join()
print(json.dumps({"batch": batch, "replicates": replicates, "measured": peak[0] - before, "estimate": estimate,
                  "activations": need.activation_bytes, "strategy": strategy.label}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=DEFAULT_CASES)
    args = parser.parse_args()
    print(f"{'case':<28} {'strategy':<16} {'activations MiB':>15} {'estimate MiB':>13} {'measured MiB':>13} "
          f"{'estimate/measured':>18}  check")
    ok = True
    for case in args.cases:
        name, config, batch, replicates = case.split(":")
        preset, overrides = PRESETS.get(name, (Path(name), []))
        if name == "mnist" and not DATA.is_dir():
            print(f"{case:<28} skipped: {DATA} not found")
            continue
        out = subprocess.run([sys.executable, "-c", CHILD, str(preset), config, batch, replicates,
                              json.dumps(overrides)], capture_output=True, text=True, cwd=ROOT)
        if out.returncode != 0:
            sys.exit(f"{case}: {out.stderr[-3000:]}")
        row = json.loads(out.stdout.strip().splitlines()[-1])
        ratio = row["estimate"] / max(1, row["measured"])
        good = 1.0 <= ratio <= 1.5
        ok &= good
        print(f"{case:<28} {row['strategy']:<16} {row['activations'] / 2**20:>15.1f} {row['estimate'] / 2**20:>13.1f} "
              f"{row['measured'] / 2**20:>13.1f} {ratio:>18.2f}  {'ok' if good else 'OUTSIDE [1, 1.5]'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
