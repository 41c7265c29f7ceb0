"""Record the exact histories of small TwNet and MNIST runs, or compare two such records.

Changes to the engine or the workload contract must leave the numbers of the built-in workloads
unchanged, bit for bit, for the same keys. Record them with one source tree, then with another,
and compare:

    PYTHONPATH=OLD_TREE python benchmarks/same_numbers.py record old.npz
    PYTHONPATH=NEW_TREE python benchmarks/same_numbers.py record new.npz
    python benchmarks/same_numbers.py compare old.npz new.npz

The runs go through the public path (preset, StudyRunner, SearchRunner, store), so they work on
any version of optui with that API. MNIST uses the t10k IDX files of ../shared/data (skipped
without them) with a narrow copy of the report's CNN so that the whole record takes minutes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MNIST_DIR = ROOT.parent / "shared" / "data" / "mnist-t10k"

TWNET_TINY = """
study = "tiny"
workload = "twnet"
[data]
users = 30
vocab = 200
topics = 3
[budget]
iterations = 40
[eval]
points = 4
[replicates]
count = 3
seed = 5
[configs.sgd]
optimizer = "sgd"
learning_rate = 0.5
batch_size = 16
[configs.adam]
optimizer = "adam"
learning_rate = 0.01
b1 = 0.9
b2 = 0.999
batch_size = 16
[configs.momentum]
optimizer = "momentum"
learning_rate = 0.05
batch_size = 24
[search.adam]
optimizer = "adam"
trials = 4
replicates = 2
learning_rate = { low = 0.001, high = 0.1, scale = "log" }
batch_size = { low = 8, high = 32, int = true, buckets = 2 }
"""

TWNET_REPORT_SIZE = ["budget.iterations=150", "eval.points=5", "replicates.count=2"]

MNIST_OVERRIDES = [
    "model.conv1=4", "model.conv2=8", "model.dense=16",
    "budget.examples=3000", "eval.points=3", "eval.train_examples=300", "eval.test_examples=300",
    "replicates.count=2",
]


def _study_arrays(study, prefix: str, store, out: dict[str, np.ndarray]) -> None:
    from optui.service import StudyRunner

    run_id = StudyRunner(study, store).run()
    _store_arrays(store, run_id, prefix, out)


def _store_arrays(store, run_id: str, prefix: str, out: dict[str, np.ndarray]) -> None:
    run = store.load_run(run_id)
    for name, unit in run.units.items():
        out[f"{prefix}/{name}/minibatch_loss"] = np.asarray(unit.minibatch_loss)
        out[f"{prefix}/{name}/diverged_at"] = np.asarray(unit.diverged_at)
        for metric, values in unit.eval.items():
            out[f"{prefix}/{name}/{metric}"] = np.asarray(values)


def record(path: Path, mnist_dir: Path) -> None:
    import optui
    from optui.study import presets
    from optui.search import SearchRunner
    from optui.store import Store

    print(f"optui from {Path(optui.__file__).parent}", file=sys.stderr)
    out: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "runs")
        for strategy in ("scan-vmap", "scan-sequential", "step-vmap"):
            study = presets.loads(TWNET_TINY, "tiny.toml", [f"engine.strategy={strategy}"])
            _study_arrays(study, f"twnet-tiny-{strategy}", store, out)
        study = presets.loads(TWNET_TINY, "tiny.toml")
        run_id = SearchRunner(study, "adam", store).run()
        _store_arrays(store, run_id, "twnet-search", out)
        study = presets.load(ROOT / "presets" / "twnet.toml", TWNET_REPORT_SIZE)
        _study_arrays(study, "twnet-report", store, out)
        if mnist_dir.is_dir():
            for strategy in ("auto", "scan-vmap"):
                study = presets.load(ROOT / "presets" / "mnist-offline.toml",
                                     MNIST_OVERRIDES + [f"data.path={mnist_dir}", f"engine.strategy={strategy}"])
                _study_arrays(study, f"mnist-{strategy}", store, out)
        else:
            print(f"no {mnist_dir}: MNIST skipped", file=sys.stderr)
        store.close()
    np.savez(path, **out)
    print(f"{len(out)} arrays written to {path}")


def compare(a_path: Path, b_path: Path) -> int:
    a, b = np.load(a_path), np.load(b_path)
    keys = sorted(set(a.files) | set(b.files))
    differ = 0
    for k in keys:
        if k not in a.files or k not in b.files:
            print(f"only in {'the first' if k in a.files else 'the second'}: {k}")
            differ += 1
            continue
        x, y = a[k], b[k]
        same = x.shape == y.shape and x.dtype == y.dtype and np.array_equal(x, y, equal_nan=True)
        if not same:
            diff = np.nanmax(np.abs(x - y)) if x.shape == y.shape else float("nan")
            print(f"DIFFERENT {k}: shapes {x.shape} {y.shape}, max |diff| {diff}")
            differ += 1
    print(f"{len(keys)} arrays compared; {differ} differ" if differ else
          f"{len(keys)} arrays compared: all bit-identical")
    return 1 if differ else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="run the small studies and save every history")
    rec.add_argument("out", type=Path)
    rec.add_argument("--mnist", type=Path, default=MNIST_DIR, help=f"MNIST IDX folder (default {MNIST_DIR})")
    cmp_ = sub.add_parser("compare", help="compare two records bit for bit")
    cmp_.add_argument("a", type=Path)
    cmp_.add_argument("b", type=Path)
    args = parser.parse_args()
    if args.command == "record":
        record(args.out, args.mnist)
        return 0
    return compare(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())
