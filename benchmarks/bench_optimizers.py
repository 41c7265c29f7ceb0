"""What each optimiser in the catalogue costs in the engine: compile time and training throughput.

    .venv/bin/python benchmarks/bench_optimizers.py                       # every optimiser, TwNet
    .venv/bin/python benchmarks/bench_optimizers.py adam prodigy muon     # some of them
    .venv/bin/python benchmarks/bench_optimizers.py --extras adam sgd     # + schedule, clipping, decay
    .venv/bin/python benchmarks/bench_optimizers.py --workload mnist --steps 40 adam

Each optimiser trains `--replicates` members (vmapped, scan chunks: the engine's TwNet strategy;
the MNIST CNN uses the strategy optui picks) at its default hyperparameters (step sizes where none is
published: --lr). Reported per optimiser: the first chunk's wall time (compile + run), the steady
training rate in steps per second (each step trains every replicate), and that rate relative to
plain SGD, so the optimiser's own cost can be read apart from the model's. `--extras` adds a
warm-up cosine schedule, global-norm clipping and decoupled weight decay to every config, to
measure what the chain elements cost.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optui.optim import registry as optimizers  # noqa: E402
from optui.study import presets  # noqa: E402
from optui.engine.core import GroupRunner, member_keys  # noqa: E402
from optui.service import build_workload, resolve_strategy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {"twnet": ROOT / "presets" / "twnet.toml", "mnist": ROOT / "presets" / "mnist-offline.toml"}
EXTRAS = {"schedule": 5.0, "warmup_fraction": 0.05, "final_fraction": 0.0, "clip_norm": 1.0, "weight_decay": 1e-4}


def hyperparams(name: str, lr: float, members: int, extras: bool) -> dict[str, np.ndarray]:
    spec = optimizers.OPTIMIZERS[name]
    values = {k: (lr if f.required else float(f.default)) for k, f in spec.hyperparams.items()}
    if extras and spec.schedule_param is not None:
        values.update({k: v for k, v in EXTRAS.items() if k not in spec.hyperparams})
    return {k: np.full(members, v, np.float32) for k, v in values.items()}


def measure(workload, strategy, name: str, args) -> tuple[float, float]:
    """(first chunk seconds incl. compile, steady steps per second)."""
    keys = member_keys(0, args.replicates)
    hp = optimizers.engine_inputs(name, hyperparams(name, args.lr, args.replicates, args.extras),
                                  args.steps * 3, keys)
    runner = GroupRunner(workload, name, args.batch, strategy)
    state = runner.init(keys, hp)
    t0 = time.perf_counter()
    state, _ = runner.advance(state, keys, hp, 0, args.steps)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    state, losses = runner.advance(state, keys, hp, args.steps, args.steps)
    steady = time.perf_counter() - t0
    if not np.isfinite(losses).all():
        print(f"  ({name}: some losses were not finite at these settings)")
    return first, args.steps / steady


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="optimisers (default: the whole catalogue)")
    ap.add_argument("--workload", choices=tuple(PRESETS), default="twnet")
    ap.add_argument("--replicates", type=int, default=8)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=200, help="steps per timed chunk")
    ap.add_argument("--lr", type=float, default=0.01, help="step size where the optimiser publishes none")
    ap.add_argument("--extras", action="store_true", help="add a schedule, clipping and weight decay")
    args = ap.parse_args()
    names = args.names or list(optimizers.OPTIMIZERS)
    unknown = [n for n in names if n not in optimizers.OPTIMIZERS]
    if unknown:
        ap.error(f"unknown optimisers: {', '.join(unknown)}; known: {optimizers.known()}")
    study = presets.load(PRESETS[args.workload], [f"replicates.count={args.replicates}"])
    workload = build_workload(study)
    strategy = resolve_strategy(study, workload)
    print(f"{args.workload}, {strategy.label}, {args.replicates} replicates, batch {args.batch}, "
          f"{args.steps} steps per chunk{', with schedule + clip_norm + weight_decay' if args.extras else ''}")
    base = None
    if "sgd" not in names:
        _, base = measure(workload, strategy, "sgd", args)
    print(f"{'optimiser':30s} {'first chunk s':>14s} {'steps/s':>10s} {'vs sgd':>8s}")
    for name in names:
        first, rate = measure(workload, strategy, name, args)
        if name == "sgd":
            base = rate
        print(f"{name:30s} {first:14.2f} {rate:10.1f} {rate / base:8.2f}", flush=True)


if __name__ == "__main__":
    main()
