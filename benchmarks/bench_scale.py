"""Scaling out, side by side: one process vs Ray workers, the forced 4-device check, a GPU run.

  .venv/bin/python benchmarks/bench_scale.py                 # MNIST 2 configs x 4 reps, TwNet 4 reps
  .venv/bin/python benchmarks/bench_scale.py --quick         # a tenth of the steps (a smoke run)
  .venv/bin/python benchmarks/bench_scale.py --gpu           # + MNIST 20 reps x 4 configs, full eval

Each mode is its own process running `optui run PRESET --headless` on the same reduced study:
  single   the default executor in one process (every local device);
  ray-2    Ray with two workers of 1 CPU each (a local cluster started by the driver, as `--ray`);
  ray-1    Ray with one worker of 1 CPU: Ray's fixed costs on the same work with one core.
Reported: the process's wall time (start, cluster, data, compiles, training), the training wall
time the run recorded, Ray's overhead (ray-2 against single, as a fraction) and the speedup
(single over ray-2), and whether the stored results are equal. Targets: overhead at most 10% on TwNet; on MNIST, whose
single process leaves a core idle (small matrices, replicates one after another), ray-2 at least
1.3x single. The forced-4-device run checks correctness only (simulated CPU devices gain nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MNIST = ["--config", "sgd-default", "--config", "adam-default", "--set", "replicates.count=4"]
TWNET = ["--set", "replicates.count=4"]
RAY_DRIVER = ("import sys, ray\n"
              "ray.init(num_cpus=int(sys.argv.pop(1)), include_dashboard=False, log_to_driver=False)\n"
              "from optui.cli import app\nsys.argv[0] = 'optui'\napp()\n")


def env() -> dict[str, str]:
    out = dict(os.environ)
    out["PYTHONPATH"] = str(ROOT) + (os.pathsep + out["PYTHONPATH"] if out.get("PYTHONPATH") else "")
    out["NO_COLOR"] = "1"
    return out


def run_mode(mode: str, preset: str, args: list[str], store: Path) -> dict:
    cli = ["run", str(ROOT / "presets" / preset), "--headless", "--no-export", "--store", str(store), *args]
    if mode == "single":
        cmd = [sys.executable, "-m", "optui.cli", *cli]
    else:
        cmd = [sys.executable, "-c", RAY_DRIVER, mode.split("-")[1], *cli, "--ray"]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env(), capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{mode} {preset} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    conn = sqlite3.connect(store / "optui.sqlite")
    run_id, run_wall = conn.execute("SELECT id, wall_time_s FROM runs ORDER BY created DESC LIMIT 1").fetchone()
    conn.close()
    return {"mode": mode, "process_s": wall, "run_s": run_wall, "run_id": run_id, "store": store}


def final_losses(store: Path, run_id: str) -> np.ndarray:
    from optui.store import Store

    s = Store.open(store)
    out = [s.load_unit(run_id, r).minibatch_loss[:, -50:] for r in s.unit_rows(run_id)]
    return np.concatenate([o.ravel() for o in out])


def compare(name: str, preset: str, args: list[str], modes: list[str], tmp: Path) -> dict:
    rows = [run_mode(m, preset, args, tmp / f"{name}-{m}") for m in modes]
    by = {r["mode"]: r for r in rows}
    base = final_losses(by["single"]["store"], by["single"]["run_id"])
    out = {"workload": name, "modes": {}}
    for r in rows:
        same = np.allclose(final_losses(r["store"], r["run_id"]), base, rtol=1e-5, atol=1e-6, equal_nan=True)
        out["modes"][r["mode"]] = {"process_s": round(r["process_s"], 1), "run_s": round(r["run_s"], 1),
                                   "equal_to_single": bool(same)}
    if "ray-2" in by:  # > 0: Ray with 2 workers took longer than one process (the TwNet target: <= 0.10)
        out["ray2_overhead"] = round(by["ray-2"]["process_s"] / by["single"]["process_s"] - 1, 3)
        out["speedup_ray2"] = round(by["single"]["process_s"] / by["ray-2"]["process_s"], 2)
    if "ray-1" in by:  # one 1-CPU worker on the same work: Ray's fixed costs plus one core instead of two
        out["ray1_vs_single"] = round(by["ray-1"]["process_s"] / by["single"]["process_s"] - 1, 3)
    return out


def forced_four_devices(tmp: Path) -> dict:
    e = env()
    e["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "multidevice_check.py"), str(tmp / "four")],
                          cwd=ROOT, env=e, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    report = json.loads(proc.stdout.split("RESULT ", 1)[1])
    return {"wall_s": round(time.perf_counter() - started, 1),
            "largest_difference": {k: v for k, v in report.items() if isinstance(v, float)}}


def gpu_study(tmp: Path) -> dict:
    """MNIST offline, 20 replicates x 4 configs, full eval, vmapped, on one GPU."""
    args = ["--set", "engine.strategy=scan-vmap", "--set", "engine.devices=1", "--set", "eval.train_examples=0",
            "--set", "eval.test_examples=0"]
    r = run_mode("single", "mnist-offline.toml", args, tmp / "gpu")
    from optui.store import Store

    s = Store.open(r["store"])
    examples = sum(u["total_steps"] * u["spec"]["batch_size"] * u["replicates"] for u in s.unit_rows(r["run_id"]))
    return {"process_s": round(r["process_s"], 1), "run_s": round(r["run_s"], 1),
            "train_examples_per_s": round(examples / r["run_s"]), "device": s.run_info(r["run_id"])["meta"]["device"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a tenth of the steps: checks the script, not timings")
    ap.add_argument("--only", choices=("mnist", "twnet", "four", "gpu"), action="append",
                    help="run only these parts (repeatable)")
    ap.add_argument("--gpu", action="store_true", help="also the 20 x 4 MNIST study on one GPU")
    ap.add_argument("--modes", default="single,ray-1,ray-2")
    opts = ap.parse_args()
    parts = opts.only or ["mnist", "twnet", "four"] + (["gpu"] if opts.gpu else [])
    modes = opts.modes.split(",")
    quick_mnist = ["--set", "budget.examples=6000", "--set", "eval.points=10"] if opts.quick else []
    quick_twnet = ["--set", "budget.iterations=300", "--set", "eval.points=10"] if opts.quick else []
    results: dict = {"cpus": os.cpu_count(), "quick": opts.quick}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp_name:
        tmp = Path(tmp_name)
        if "mnist" in parts:
            results["mnist"] = compare("mnist", "mnist-offline.toml", MNIST + quick_mnist, modes, tmp)
            print(json.dumps(results["mnist"]), flush=True)
        if "twnet" in parts:
            results["twnet"] = compare("twnet", "twnet.toml", TWNET + quick_twnet, modes, tmp)
            print(json.dumps(results["twnet"]), flush=True)
        if "four" in parts:
            results["four_devices"] = forced_four_devices(tmp)
            print(json.dumps(results["four_devices"]), flush=True)
        if "gpu" in parts:
            results["gpu"] = gpu_study(tmp)
            print(json.dumps(results["gpu"]), flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
