"""Exports at the TwNet study's size: the ci95 band (scipy.stats.bootstrap against the resampling
optui did by hand before), TensorBoard event files, and one figure as PNG, PDF and SVG.

    .venv/bin/python benchmarks/bench_exports.py                 # 4 configs x 20 replicates x 3,000 steps
    .venv/bin/python benchmarks/bench_exports.py --steps 300     # a quick look

The run is synthetic (no training): the shapes of presets/twnet.toml (4 configs, 20 replicates,
3,000 steps, train and test loss at 101 eval points). Timings are wall-clock seconds, best of
--repeat; the TensorBoard line also gives scalars written per second.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optui.export.figures import FigureStyle, config_figure, save_figure  # noqa: E402
from optui.results import RunResult, UnitResult  # noqa: E402
from optui.results.stats import band  # noqa: E402


def hand_written_ci(values: np.ndarray, resamples: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The percentile bootstrap optui computed by hand before scipy: counts as weights, a matmul."""
    n = values.shape[0]
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    counts = np.zeros((resamples, n))
    np.add.at(counts, (np.arange(resamples)[:, None], idx), 1.0)
    means = (counts / n) @ values
    lo, hi = np.quantile(means, [0.025, 0.975], axis=0)
    return lo, hi


def synthetic_run(configs: int, replicates: int, steps: int, points: int) -> RunResult:
    rng = np.random.default_rng(0)
    units = {}
    t = np.arange(steps)
    eval_steps = np.round(np.linspace(0, steps, points)).astype(int)
    for c in range(configs):
        mb = (np.exp(-t / (steps / 3)) + 0.1) * rng.uniform(0.5, 1.5, (replicates, steps))
        base = np.exp(-eval_steps / (steps / 3)) + 0.1
        ev = {"train_loss": base * rng.uniform(0.9, 1.1, (replicates, points)),
              "test_loss": 1.1 * base * rng.uniform(0.9, 1.1, (replicates, points))}
        units[f"config-{c}"] = UnitResult(
            name=f"config-{c}", spec={"optimizer": "sgd", "learning_rate": 0.1, "batch_size": 128},
            minibatch_loss=mb.astype(np.float32), eval_steps=eval_steps, eval=ev,
            diverged_at=np.full(replicates, -1), total_steps=steps, wall_time_s=60.0)
    return RunResult(run_id="bench", study="bench", workload="twnet", kind="study", status="done",
                     device="cpu", created=0.0, wall_time_s=240.0, preset_text="", units=units)


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", type=int, default=4)
    parser.add_argument("--replicates", type=int, default=20)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--points", type=int, default=101)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    run = synthetic_run(args.configs, args.replicates, args.steps, args.points)
    curves = run.units["config-0"].minibatch_loss.astype(float)

    print(f"ci95 band of ({args.replicates}, {args.steps}) minibatch losses, 2,000 resamples:")
    print(f"  scipy.stats.bootstrap (optui now)  {best_of(args.repeat, lambda: band(curves, 'ci95')):.3f} s")
    print(f"  hand-written (before)              {best_of(args.repeat, lambda: hand_written_ci(curves)):.3f} s")

    try:
        from optui.export.tensorboard import write_run
    except ImportError:
        write_run = None
    if write_run is not None:
        scalars = 2 * sum(u.replicates * (u.minibatch_loss.shape[1] + sum(v.shape[1] for v in u.eval.values()))
                          for u in run.units.values())
        with tempfile.TemporaryDirectory() as tmp:
            try:
                seconds = best_of(1, lambda: write_run(run, tmp))
            except ImportError as exc:
                print(f"TensorBoard: skipped ({exc})")
            else:
                print(f"TensorBoard event files: {scalars:,} scalars in {seconds:.2f} s "
                      f"({scalars / seconds:,.0f} scalars/s)")

    fig = config_figure(run, "config-0", FigureStyle())
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("png", "pdf", "svg"):
            path = Path(tmp) / f"figure.{kind}"
            seconds = best_of(args.repeat, lambda: save_figure(fig, path))
            print(f"figure as {kind}: {seconds:.3f} s, {path.stat().st_size / 1024:,.0f} KiB")


if __name__ == "__main__":
    main()
