"""optui against the script an expert would write instead, each side one whole process.

    .venv/bin/python benchmarks/bench_peers.py                  # every case at CPU sizes
    .venv/bin/python benchmarks/bench_peers.py --quick          # small sizes: a few minutes
    .venv/bin/python benchmarks/bench_peers.py --only study-adam,random
    .venv/bin/python benchmarks/bench_peers.py --full           # the study at 3,000 iterations
    .venv/bin/python benchmarks/bench_peers.py --gpu            # GPU sizes (3,000 iterations, MNIST x20)

The expert script (the `peer` functions below, run as `bench_peers.py --peer CASE`): the
replicates of a config `vmap`ped over their keys, the whole run one `jit`-compiled `lax.scan` of
eval blocks (a scan of steps, then the full train/test eval), results read once at the end; a
search asks Optuna one trial at a time and trains each as such a compiled scan (hyperparameters
as traced arguments, so one compile per batch size). Both sides use the same data, optui's own
workload functions (init, batch sampling, loss, eval), the same budget, evals and search space.

optui runs as a user would: `optui run|search PRESET --headless --no-export --store TMP`. Each
side is timed from process start to exit. The table shows both wall times, optui's speed
relative to the script (script seconds / optui seconds: above 1 means optui is faster) and the
final losses of both sides (mean test loss over replicates; a search's best objective), which
agree within seed noise (the two sides draw different keys and, for searches, trials).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MNIST_DIR = ROOT.parent / "shared" / "data" / "mnist-t10k"
if not MNIST_DIR.is_dir():
    MNIST_DIR = Path("/work/shared/data/mnist-t10k")
TWNET = ROOT / "presets" / "twnet.toml"
MNIST = ROOT / "presets" / "mnist-offline.toml"


# --------------------------------------------------------------------------------------------
# The expert's script. Everything below `peer_*` is what a JAX + Optuna user writes by hand.
# --------------------------------------------------------------------------------------------

def _load(preset: Path, sets: list[str]):
    """The preset's study and workload, built by optui (data and model functions only)."""
    sys.path.insert(0, str(ROOT))
    from optui.study import presets
    from optui.service import build_workload

    study = presets.load(preset, sets)
    return study, build_workload(study)


def _transform(name: str):
    import optax

    return optax.inject_hyperparams({"adam": optax.adam, "sgd": optax.sgd}[name])


def _boundaries(steps: int, points: int) -> list[int]:
    points = max(1, min(points, steps))
    return sorted({round(steps * i / points) for i in range(points + 1)})


def make_trainer(workload, optimizer: str, batch_size: int, steps: int, points: int):
    """jit(vmap(train)): one member's whole run (init, `points` blocks of steps + eval)."""
    import jax
    import jax.numpy as jnp
    import optax

    bounds = _boundaries(steps, points)
    starts = jnp.asarray(bounds[:-1], jnp.int32)
    ends = jnp.asarray(bounds[1:], jnp.int32)
    longest = max(b - a for a, b in zip(bounds[:-1], bounds[1:]))
    tx_of = _transform(optimizer)

    def train(key, hp):
        init_key, data_key = jax.random.split(key)
        params, model_state = workload.init(init_key)
        tx = tx_of(**hp)
        opt_state = tx.init(params)
        data = workload.data

        def step(carry, i):
            params, opt_state, model_state = carry
            batch = workload.sample_batch(data, data_key, i, batch_size)
            (loss, model_state), grads = jax.value_and_grad(workload.loss, has_aux=True)(
                params, model_state, data, batch, jax.random.fold_in(key, i))
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state, model_state), loss

        def block(carry, se):
            start, end = se

            def masked(c, j):  # blocks differ in length by at most one step
                i = start + j
                return jax.lax.cond(i < end, step, lambda c, i: (c, jnp.nan), c, i)

            carry, losses = jax.lax.scan(masked, carry, jnp.arange(longest, dtype=jnp.int32))
            metrics = workload.evaluate(carry[0], carry[2], data)
            return carry, (losses, metrics)

        carry = (params, opt_state, model_state)
        first = workload.evaluate(params, model_state, data)
        _, (losses, metrics) = jax.lax.scan(block, carry, (starts, ends))
        return first, losses, metrics

    return jax.jit(jax.vmap(train, in_axes=(0, None)))


def _keys(seed: int, n: int):
    import jax

    return jax.random.split(jax.random.PRNGKey(seed), n)


def peer_study(preset: str, sets: list[str], configs: list[str]) -> dict:
    """Every config: all replicates in one compiled call; final test losses read at the end."""
    import jax.numpy as jnp
    import numpy as np

    study, workload = _load(Path(preset), sets)
    out = {}
    for name in configs:
        cfg = study.configs[name]
        steps = study.budget.steps(cfg.batch_size, workload.n_train)
        train = make_trainer(workload, cfg.optimizer, cfg.batch_size, steps, study.eval_points)
        hp = {k: jnp.float32(v) for k, v in cfg.hyperparams.items()}
        _, _, metrics = train(_keys(study.replicates_seed, study.replicates_count), hp)
        out[name] = float(np.nanmean(np.asarray(metrics["test_loss"])[:, -1]))
    return out


def peer_search(preset: str, sets: list[str], space_name: str, sampler: str, trials: int) -> dict:
    """Optuna asks one trial at a time; each trial is one compiled run (one compile per batch size)."""
    import jax.numpy as jnp
    import numpy as np
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study, workload = _load(Path(preset), sets)
    space = study.search[space_name]
    budget = space.budget or study.budget
    bs_iv = space.intervals["batch_size"]
    sizes = sorted({int(bs_iv.bucket_value(k)) for k in range(bs_iv.buckets)})
    make = {"random": optuna.samplers.RandomSampler, "tpe": optuna.samplers.TPESampler}[sampler]
    search = optuna.create_study(sampler=make(seed=0), direction="minimize")
    trainers = {}

    def objective(trial):
        hp = {n: v for n, v in {**space.defaults, **space.fixed}.items() if n != "batch_size"}
        for n, iv in space.intervals.items():
            if n != "batch_size":
                hp[n] = trial.suggest_float(n, iv.low, iv.high, log=iv.scale == "log")
        bs = trial.suggest_categorical("batch_size", sizes)
        steps = budget.steps(bs, workload.n_train)
        if (bs, steps) not in trainers:
            trainers[(bs, steps)] = make_trainer(workload, space.optimizer, bs, steps, study.eval_points)
        _, _, metrics = trainers[(bs, steps)](_keys(trial.number, 1), {k: jnp.float32(v) for k, v in hp.items()})
        value = float(np.asarray(metrics["test_loss"])[0, -1])
        return value if math.isfinite(value) else float("inf")

    search.optimize(objective, n_trials=trials)
    return {"best": search.best_value, "compiles": len(trainers)}


# --------------------------------------------------------------------------------------------
# The comparison.
# --------------------------------------------------------------------------------------------

@dataclass
class Case:
    name: str
    work: str
    optui_args: list[str]  # after `optui`
    peer: dict  # arguments of the peer
    sets: list[str] = field(default_factory=list)
    target: float = 1.0


def cases(args) -> list[Case]:
    gpu, quick = args.gpu, args.quick
    iters = 3000 if (args.full or gpu) else (60 if quick else 300)
    points = 20 if quick else 100
    reps = 5 if quick else 20
    tw = [f"budget.iterations={iters}", f"eval.points={points}", f"replicates.count={reps}"]
    all_cfgs = ["sgd-default", "sgd-optimal", "adam-default", "adam-optimal"]
    out = [
        Case("study", f"TwNet, 4 configs x {reps} replicates x {iters:,} iterations, {points} evals",
             ["run", str(TWNET)], {"kind": "study", "preset": str(TWNET), "configs": all_cfgs}, tw, 1.2),
        Case("study-adam", f"the same, adam-default only", ["run", str(TWNET), "-c", "adam-default"],
             {"kind": "study", "preset": str(TWNET), "configs": ["adam-default"]}, tw, 1.2),
    ]
    trials = 6 if quick else 20
    examples = 9_420 if quick else 47_100
    sp = [f"eval.points=20", f"search.adam.trials={trials}", f"search.adam.budget={{examples={examples}}}"]
    base = ["search", str(TWNET), "--space", "adam"]
    out += [
        Case("random", f"Adam search, {trials} random trials, {examples:,} examples each, 20 evals",
             base + ["--sampler", "random"], {"kind": "search", "preset": str(TWNET), "sampler": "random",
                                              "trials": trials}, sp, 1.5),
        Case("tpe", f"the same with TPE", base + ["--sampler", "tpe"],
             {"kind": "search", "preset": str(TWNET), "sampler": "tpe", "trials": trials}, sp, 1.2),
        Case("tpe-asha", f"TPE + ASHA (optui) vs the script's TPE", base + ["--sampler", "tpe"],
             {"kind": "search", "preset": str(TWNET), "sampler": "tpe", "trials": trials},
             sp + ["search.adam.pruner=asha"], 2.0),
    ]
    if MNIST_DIR.is_dir():
        mreps = 20 if gpu else (2 if quick else 4)
        examples_m = 60_000 if gpu else (2_000 if quick else 12_000)
        ms = [f"data.path={MNIST_DIR}", f"replicates.count={mreps}", f"budget.examples={examples_m}",
              f"eval.points={10 if quick else 20}"]
        out.append(Case("mnist", f"MNIST CNN (t10k), 2 configs x {mreps} replicates, {examples_m:,} examples",
                        ["run", str(MNIST), "-c", "adam-default", "-c", "sgd-default"],
                        {"kind": "study", "preset": str(MNIST), "configs": ["adam-default", "sgd-default"]},
                        ms, 1.0))
    return out


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_optui(case: Case, store: Path) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "optui.cli", *case.optui_args, "--headless", "--no-export",
           "--store", str(store)] + [a for s in case.sets for a in ("--set", s)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"optui failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall, read_store(store)


def read_store(store: Path) -> dict:
    """Final test loss per unit (mean over replicates), best objective, compile seconds of the run."""
    sys.path.insert(0, str(ROOT))
    import numpy as np
    from optui.store import Store

    s = Store.open(store)
    try:
        run = s.list_runs()[-1]
        run_id = run["id"] if isinstance(run, dict) else run
        info = s.run_info(run_id)
        finals, objectives = {}, []
        for row in s.unit_rows(run_id):
            unit = s.load_unit(run_id, row)
            test = unit.eval.get("test_loss")
            if test is not None and test.shape[1]:
                finals[row["name"]] = float(np.nanmean(test[:, -1]))
            obj = row["extra"].get("objective")
            if obj is not None:
                objectives.append(float(obj))
        return {"finals": finals, "best": min(objectives) if objectives else None,
                "compile_s": info["meta"].get("compile_seconds"), "compiles": info["meta"].get("compiles")}
    finally:
        s.close()


def run_peer(case: Case) -> tuple[float, dict]:
    spec = {**case.peer, "sets": case.sets}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--peer", json.dumps(spec)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"peer failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall, json.loads(proc.stdout.strip().splitlines()[-1])


def peer_main(spec: dict) -> None:
    if spec["kind"] == "study":
        result = {"finals": peer_study(spec["preset"], spec["sets"], spec["configs"])}
    else:
        space = spec.get("space", "adam")
        result = peer_search(spec["preset"], spec["sets"], space, spec["sampler"], spec["trials"])
    print(json.dumps(result))


def _loss(result: dict, kind: str) -> str:
    if kind == "search":
        return f"{result['best']:.4f}" if result.get("best") is not None else "-"
    return " ".join(f"{v:.4f}" for v in result["finals"].values())


def compile_repeat(args) -> list[str]:
    """Case (g): the same study twice into one store; the persistent cache makes the second compile little."""
    sets = ["budget.iterations=30", "eval.points=10", "replicates.count=4"]
    case = Case("cache", "", ["run", str(TWNET), "-c", "adam-default", "-c", "sgd-default"], {}, sets)
    with tempfile.TemporaryDirectory() as tmp:
        first_wall, first = run_optui(case, Path(tmp))
        # The second run into the same store (a new run id): read the newest run.
        second_wall, second = run_optui(case, Path(tmp))
    c1, c2 = first["compile_s"] or 0.0, second["compile_s"] or 0.0
    ok = c2 < 0.1 * c1 if c1 else False
    return [f"| repeated study, persistent compile cache | first run {first_wall:.1f} s, compile {c1:.2f} s | "
            f"second run {second_wall:.1f} s, compile {c2:.2f} s | {c2 / c1 * 100 if c1 else float('nan'):.0f}% "
            f"of the first's compile (target < 10%) {'ok' if ok else 'MISSED'} |"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="small sizes (a few minutes in all)")
    ap.add_argument("--full", action="store_true", help="the study at the preset's 3,000 iterations")
    ap.add_argument("--gpu", action="store_true", help="GPU sizes: 3,000 iterations, MNIST at 20 replicates")
    ap.add_argument("--only", default="", help="comma-separated cases: study, study-adam, random, tpe, "
                                                "tpe-asha, mnist, cache")
    ap.add_argument("--repeat", type=int, default=1, help="time each side this many times, keep the best")
    args = ap.parse_args()
    if args.peer:
        peer_main(json.loads(args.peer))
        return
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    rows = ["| work | expert script | optui | optui's speed vs the script | final loss: script / optui |",
            "|---|---|---|---|---|"]
    missed = []
    for case in cases(args):
        if only and case.name not in only:
            continue
        kind = case.peer["kind"]
        optui_s, peer_s = math.inf, math.inf
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                w, o = run_optui(case, Path(tmp))
            if w < optui_s:
                optui_s, optui_r = w, o
            w, p = run_peer(case)
            if w < peer_s:
                peer_s, peer_r = w, p
        ratio = peer_s / optui_s
        if ratio < case.target:
            missed.append(f"{case.name}: {ratio:.2f}x < {case.target}x")
        ours = optui_r if kind == "search" else {"finals": {k: optui_r["finals"][k] for k in case.peer["configs"]}}
        rows.append(f"| {case.work} | {peer_s:.1f} s | {optui_s:.1f} s | {ratio:.2f}x (target {case.target}x) | "
                    f"{_loss(peer_r, kind)} / {_loss(ours, kind)} |")
        print(rows[-1], flush=True)
    if not only or "cache" in only:
        rows += compile_repeat(args)
    if not MNIST_DIR.is_dir() and (not only or "mnist" in only):
        rows.append(f"| MNIST study | skipped: no {MNIST_DIR} | | | |")
    print()
    print("\n".join(rows))
    if missed:
        print("\nbelow target: " + "; ".join(missed))


if __name__ == "__main__":
    main()
