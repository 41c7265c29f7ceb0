"""MNIST: the report's training loop vs optui's engine on the same work.

Both sides train the same CNN on the same data with the same config, replicates and eval schedule:
  report  a re-implementation of the report's loop: per replicate, one permutation per epoch,
          a Python loop over its batches calling two separately jitted functions, apply_model
          (loss, grads, accuracy) and update_model (TrainState.apply_gradients). At each eval
          point it calls apply_model on the whole train-eval set and the whole test set in one
          unsliced call each, as the report did (so its eval also computes gradients, ~3x the
          forward work; --report-eval forward gives it a forward-only eval instead).
  optui   optui.engine.core.GroupRunner + run_group with the workload's strategy for this backend
          (or --strategy), sliced forward-only eval on the device.
The eval schedule is the preset's: an eval before training and one after each of eval.points
chunks. With --examples below the preset's budget, eval.points shrinks in proportion (unless
--eval-points is given) so eval and training keep the full study's proportions.

Each side runs in its own process (clean peak RSS, no shared compile caches); compile time is
reported apart from the timed run. Throughput counts training examples per second of the timed run,
eval included; GFLOP/s counts training at 3x the forward cost (~27.9 MFLOP/example) plus eval at the
forward cost (~9.3 MFLOP/example) — "useful" work, the same for both sides.

  .venv/bin/python benchmarks/bench_mnist.py --replicates 2 --examples 12000
  .venv/bin/python benchmarks/bench_mnist.py --memory            # peak RSS, 20 replicates
  .venv/bin/python benchmarks/bench_mnist.py --kernels           # every strategy x conv, steady state
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CPU_PEAK_GFLOPS = 190.0  # this 2-core CPU's measured peak, for context


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


# ---------------------------------------------------------------- the work both sides do


def load_study(args):
    from optui.study import presets

    sets = list(args.set or [])
    return presets.load(args.preset, sets)


def plan(args) -> dict:
    """Steps, batch size, hyperparameters and eval bounds: identical for both sides."""
    from optui.engine.core import chunk_bounds

    study = load_study(args)
    config = study.configs[args.config]
    budget_examples = args.examples
    if budget_examples is None:
        if study.budget.kind != "examples":
            raise SystemExit("--examples is required for presets whose budget is not in examples")
        budget_examples = int(study.budget.value)
    steps = max(1, budget_examples // config.batch_size)
    points = args.eval_points
    if points is None:
        full = int(study.budget.value) if study.budget.kind == "examples" else budget_examples
        points = max(1, round(study.eval_points * budget_examples / full))
    return {
        "config": args.config, "optimizer": config.optimizer, "batch_size": config.batch_size,
        "hyperparams": config.hyperparams, "steps": steps, "eval_points": points,
        "eval_bounds": chunk_bounds(steps, points), "replicates": args.replicates or study.replicates_count,
        "seed": study.replicates_seed,
    }


def build_workload(args):
    from optui import workloads

    return workloads.build(load_study(args))


# ---------------------------------------------------------------- the report's loop


def run_report(args, p: dict) -> dict:
    import jax
    import jax.numpy as jnp
    import optax
    from flax.training import train_state

    from optui.workloads.mnist_model import CNN

    w = build_workload(args)  # same arrays and eval subsets as optui
    d = w.data
    train_x, train_y = d["train_x"], d["train_y"]
    ev_train = np.asarray(d["eval_train_idx"]).ravel()[np.asarray(d["eval_train_w"]).ravel() > 0]
    ev_test = np.asarray(d["eval_test_idx"]).ravel()[np.asarray(d["eval_test_w"]).ravel() > 0]
    ev_train_x, ev_train_y = train_x[ev_train], train_y[ev_train]
    test_x, test_y = d["test_x"][ev_test], d["test_y"][ev_test]
    cnn = CNN()
    hp = p["hyperparams"]
    if p["optimizer"] == "sgd":
        tx = optax.sgd(hp["learning_rate"])
    elif p["optimizer"] == "adam":
        tx = optax.adam(hp["learning_rate"], b1=hp["b1"], b2=hp["b2"], eps=hp["eps"])
    else:
        raise SystemExit("the report's loop is written for sgd and adam configs")

    @jax.jit
    def apply_model(state, images, labels):
        def loss_fn(params):
            logits = cnn.apply({"params": params}, images)
            one_hot = jax.nn.one_hot(labels, 10)
            return jnp.mean(optax.softmax_cross_entropy(logits=logits, labels=one_hot)), logits

        (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        return grads, loss, jnp.mean(jnp.argmax(logits, -1) == labels)

    @jax.jit
    def update_model(state, grads):
        return state.apply_gradients(grads=grads)

    @jax.jit
    def forward_eval(state, images, labels):
        logits = cnn.apply({"params": state.params}, images)
        one_hot = jax.nn.one_hot(labels, 10)
        return (jnp.mean(optax.softmax_cross_entropy(logits=logits, labels=one_hot)),
                jnp.mean(jnp.argmax(logits, -1) == labels))

    def evaluate(state):
        if args.report_eval == "grad":  # the report reused apply_model, gradients and all
            _, test_loss, _ = apply_model(state, test_x, test_y)
            _, train_loss, _ = apply_model(state, ev_train_x, ev_train_y)
        else:
            test_loss, _ = forward_eval(state, test_x, test_y)
            train_loss, _ = forward_eval(state, ev_train_x, ev_train_y)
        return train_loss, test_loss

    def create_state(key):
        params = cnn.init(key, jnp.ones([1, 28, 28, 1]))["params"]
        return train_state.TrainState.create(apply_fn=cnn.apply, params=params, tx=tx)

    bs, steps, n = p["batch_size"], p["steps"], w.n_train
    eval_at = set(p["eval_bounds"])

    def replicate(key, steps):
        rng, init_rng = jax.random.split(key)
        state = create_state(init_rng)
        losses, evals, step = [], [], 0
        while step < steps:  # one permutation per epoch; incomplete last batch skipped
            rng, perm_rng = jax.random.split(rng)
            per_epoch = n // bs
            perms = jax.random.permutation(perm_rng, n)[: per_epoch * bs].reshape(per_epoch, bs)
            for perm in perms:
                if step in eval_at:
                    evals.append(evaluate(state))
                batch_images, batch_labels = train_x[perm, ...], train_y[perm, ...]
                grads, loss, _ = apply_model(state, batch_images, batch_labels)
                state = update_model(state, grads)
                losses.append(loss)
                step += 1
                if step == steps:
                    break
        evals.append(evaluate(state))
        return np.asarray(jnp.stack(losses)), np.asarray(evals, dtype=np.float64)

    t0 = time.perf_counter()
    replicate(jax.random.PRNGKey(999), 2)  # compile
    compile_s = time.perf_counter() - t0
    base = jax.random.PRNGKey(p["seed"])
    t0 = time.perf_counter()
    finals = []
    for r in range(p["replicates"]):
        losses, evals = replicate(jax.random.fold_in(base, r), steps)
        finals.append(evals[-1])
    wall = time.perf_counter() - t0
    return {"side": "report", "wall_s": wall, "compile_s": compile_s, "evals": len(evals),
            "final_train_test_loss": np.mean(finals, axis=0).tolist(), "peak_rss_gib": peak_rss_gib(),
            "eval_train_examples": len(ev_train), "eval_test_examples": len(ev_test),
            "what": f"python loop, apply_model+update_model jitted separately, "
                    f"{'grad' if args.report_eval == 'grad' else 'forward'} eval unsliced"}


# ---------------------------------------------------------------- optui


def run_optui(args, p: dict) -> dict:
    import jax

    from optui.engine import core
    from optui.workloads.base import Strategy

    w = build_workload(args)
    if args.strategy == "auto":
        strategy = w.choose_strategy(jax.default_backend())
    else:
        scan, vmap = args.strategy.split("-")
        strategy = Strategy(scan=scan == "scan", vmap_replicates=vmap == "vmap")
    runner = core.GroupRunner(w, p["optimizer"], p["batch_size"], strategy)
    hp = {k: np.full(p["replicates"], v) for k, v in p["hyperparams"].items()}
    keys = core.member_keys(p["seed"], p["replicates"])

    t0 = time.perf_counter()
    warm = {k: v[:1] for k, v in hp.items()} if not strategy.vmap_replicates else hp
    warm_keys = keys[:1] if not strategy.vmap_replicates else keys
    # Compile what the timed run uses: the eval, and a scan chunk of every length in the plan
    # (a chunk's length is a static shape), as a study reuses them across its replicates.
    state = runner.init(warm_keys, warm)
    runner.evaluate(state)
    lengths = sorted(set(np.diff(p["eval_bounds"]).tolist())) if strategy.scan else [1]
    for length in lengths:
        state, _ = runner.advance(state, warm_keys, warm, 0, int(length))
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    outs = [out for out, _ in core.run_group(runner, keys, hp, p["steps"], p["eval_points"])]
    wall = time.perf_counter() - t0
    last = outs[-1].eval
    return {"side": "optui", "wall_s": wall, "compile_s": compile_s, "evals": len(outs),
            "final_train_test_loss": [float(np.mean(last["train_loss"])), float(np.mean(last["test_loss"]))],
            "peak_rss_gib": peak_rss_gib(), "strategy": strategy.label,
            "eval_train_examples": w.info["eval_train_examples"],
            "eval_test_examples": w.info["eval_test_examples"],
            "what": f"engine GroupRunner ({strategy.label}), sliced forward eval "
                    f"(slice {w.info['eval_slice']})"}


# ---------------------------------------------------------------- memory at full MNIST sizes


def run_memory(args) -> dict:
    """Peak RSS for replicates of the real CNN at full MNIST array sizes (random pixels)."""
    import jax

    from optui.engine import core
    from optui.workloads import mnist
    from optui.workloads.base import Strategy
    from optui.workloads.mnist_data import MnistArrays

    rng = np.random.default_rng(0)
    arrays = MnistArrays(rng.integers(0, 256, (args.mem_train, 28, 28), np.uint8),
                         rng.integers(0, 10, args.mem_train).astype(np.int32),
                         rng.integers(0, 256, (args.mem_test, 28, 28), np.uint8),
                         rng.integers(0, 10, args.mem_test).astype(np.int32), source="random")
    # Memory depends on the slice size and the replicates evaluated together, not on how many
    # slices an eval has; a few slices keep this check quick on a CPU.
    ev = {"points": 1, "train_examples": 2 * args.slice, "test_examples": 2 * args.slice,
          "slice": args.slice}
    w = mnist.from_arrays(arrays, {"conv1": 32, "conv2": 64, "dense": 256}, ev)
    scan, vmap = args.strategy.split("-") if args.strategy != "auto" else ("scan", "vmap")
    strategy = Strategy(scan=scan == "scan", vmap_replicates=vmap == "vmap")
    runner = core.GroupRunner(w, "adam", 128, strategy)
    r = args.replicates or 20
    hp = {"learning_rate": np.full(r, 1e-3), "b1": np.full(r, 0.9), "b2": np.full(r, 0.999),
          "eps": np.full(r, 1e-8)}
    t0 = time.perf_counter()
    for _ in core.run_group(runner, core.member_keys(0, r), hp, 2, 1):
        pass
    return {"side": "memory", "strategy": strategy.label, "replicates": r,
            "n_train": args.mem_train, "n_test": args.mem_test, "slice": args.slice,
            "device_data_gib": sum(x.nbytes for x in jax.tree.leaves(w.data)) / 2**30,
            "wall_s": time.perf_counter() - t0, "peak_rss_gib": peak_rss_gib()}


# ---------------------------------------------------------------- strategies x conv kernels


def run_kernels(args) -> dict:
    """Steady-state training and eval throughput of every engine strategy with each conv kernel.

    The same config, data and steps for all; compile time excluded (each is warmed first).
    """
    import jax

    from optui.engine import core
    from optui.workloads import mnist, mnist_data
    from optui.workloads.base import Strategy

    study = load_study(args)
    config = study.configs[args.config]
    members = args.replicates or 4
    hp = {k: np.full(members, v) for k, v in config.hyperparams.items()}
    keys = core.member_keys(0, members)
    arrays = mnist_data.load(study.data)
    rows = []
    for conv in ("patches", "xla"):
        w = mnist.from_arrays(arrays, {**study.model, "train_conv": conv}, study.eval)
        for label in ("step-sequential", "scan-sequential", "step-vmap", "scan-vmap"):
            how, who = label.split("-")
            strategy = Strategy(scan=how == "scan", vmap_replicates=who == "vmap")
            runner = core.GroupRunner(w, config.optimizer, config.batch_size, strategy)
            state = runner.init(keys, hp)
            state, _ = runner.advance(state, keys, hp, 0, args.kernel_steps)  # compile
            t0 = time.perf_counter()
            state, losses = runner.advance(state, keys, hp, args.kernel_steps, args.kernel_steps)
            train_s = time.perf_counter() - t0
            rows.append({"conv": conv, "strategy": label, "members": members,
                         "train_examples_per_s": members * args.kernel_steps * config.batch_size / train_s,
                         "final_loss": float(np.mean(losses[:, -1]))})
    for vmap in (False, True):  # eval always runs XLA's forward conv: the fastest forward here
        runner = core.GroupRunner(w, config.optimizer, config.batch_size,
                                  Strategy(scan=True, vmap_replicates=vmap))
        state = runner.init(keys, hp)
        runner.evaluate(state)  # compile
        t0 = time.perf_counter()
        runner.evaluate(state)
        eval_s = time.perf_counter() - t0
        n = members * (w.info["eval_train_examples"] + w.info["eval_test_examples"])
        rows.append({"conv": "xla", "strategy": f"eval-{'vmap' if vmap else 'sequential'}",
                     "members": members, "eval_examples_per_s": n / eval_s})
    return {"side": "kernels", "config": args.config, "batch_size": config.batch_size,
            "steps": args.kernel_steps, "rows": rows, "backend": jax.default_backend()}


# ---------------------------------------------------------------- driver


def child(args, side: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", side] + args.passthrough
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        sys.stderr.write(out.stderr[-4000:])
        raise SystemExit(f"{side} run failed (exit {out.returncode})")
    return json.loads(lines[-1])


def report(p: dict, results: list[dict]) -> None:
    from optui.workloads.mnist_model import flops_per_example

    fwd = flops_per_example()
    train_ex = p["replicates"] * p["steps"] * p["batch_size"]
    print(f"config {p['config']}: {p['optimizer']} batch {p['batch_size']}, {p['steps']} steps x "
          f"{p['replicates']} replicates = {train_ex:,} training examples; "
          f"{len(p['eval_bounds'])} evals per replicate")
    by_side = {}
    for r in results:
        eval_ex = p["replicates"] * r["evals"] * (r["eval_train_examples"] + r["eval_test_examples"])
        useful = train_ex * 3 * fwd + eval_ex * fwd
        executed = useful + (eval_ex * 2 * fwd if r["side"] == "report" and "grad" in r["what"] else 0)
        r["train_examples_per_s"] = train_ex / r["wall_s"]
        r["useful_gflops"] = useful / r["wall_s"] / 1e9
        r["executed_gflops"] = executed / r["wall_s"] / 1e9
        by_side[r["side"]] = r
        print(f"  {r['side']:6s} {r['what']}")
        print(f"         wall {r['wall_s']:.1f} s (+{r['compile_s']:.1f} s compile), "
              f"{r['train_examples_per_s']:,.0f} training examples/s, "
              f"{r['useful_gflops']:.1f} useful GFLOP/s ({100 * r['useful_gflops'] / CPU_PEAK_GFLOPS:.0f}% "
              f"of ~{CPU_PEAK_GFLOPS:.0f}), {r['executed_gflops']:.1f} executed GFLOP/s; "
              f"{eval_ex:,} eval examples; peak RSS {r['peak_rss_gib']:.2f} GiB; "
              f"final train/test loss {r['final_train_test_loss'][0]:.4f}/{r['final_train_test_loss'][1]:.4f}")
    if "report" in by_side and "optui" in by_side:
        ratio = by_side["report"]["wall_s"] / by_side["optui"]["wall_s"]
        print(f"  optui / report speed: {ratio:.2f}x")
    print(json.dumps({"plan": {k: v for k, v in p.items() if k != "eval_bounds"}, "results": results}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default=str(ROOT / "presets" / "mnist-offline.toml"))
    ap.add_argument("--set", action="append", help="preset override KEY=VALUE (repeatable)")
    ap.add_argument("--config", default="adam-optimal")
    ap.add_argument("--replicates", type=int, default=None, help="default: the preset's count")
    ap.add_argument("--examples", type=int, default=None, help="training examples per replicate")
    ap.add_argument("--eval-points", type=int, default=None)
    ap.add_argument("--side", choices=("both", "optui", "report"), default="both")
    ap.add_argument("--report-eval", choices=("grad", "forward"), default="grad")
    ap.add_argument("--strategy", default="auto",
                    choices=("auto", "step-sequential", "step-vmap", "scan-sequential", "scan-vmap"))
    ap.add_argument("--memory", action="store_true", help="peak RSS at full MNIST sizes instead")
    ap.add_argument("--kernels", action="store_true",
                    help="training and eval throughput of every strategy x conv kernel instead")
    ap.add_argument("--kernel-steps", type=int, default=10, help="--kernels: timed steps per run")
    ap.add_argument("--mem-train", type=int, default=60_000)
    ap.add_argument("--mem-test", type=int, default=10_000)
    ap.add_argument("--slice", type=int, default=250)
    ap.add_argument("--worker", choices=("optui", "report", "memory", "kernels"), help=argparse.SUPPRESS)
    args, _ = ap.parse_known_args()
    args.passthrough = [a for a in sys.argv[1:]]
    if args.worker:
        if args.worker in ("memory", "kernels"):
            print(json.dumps(run_memory(args) if args.worker == "memory" else run_kernels(args)))
            return
        p = plan(args)
        fn = run_optui if args.worker == "optui" else run_report
        print(json.dumps(fn(args, p)))
        return
    if args.memory or args.kernels:
        result = child(args, "memory" if args.memory else "kernels")
        for row in result.get("rows", []):
            rate = row.get("train_examples_per_s") or row.get("eval_examples_per_s")
            kind = "train" if "train_examples_per_s" in row else "eval "
            print(f"{kind} {row['conv']:8s} {row['strategy']:16s} {rate:8,.0f} examples/s "
                  f"({row['members']} members)")
        print(json.dumps(result))
        return
    p = plan(args)
    sides = ["report", "optui"] if args.side == "both" else [args.side]
    report(p, [child(args, s) for s in sides])


if __name__ == "__main__":
    main()
