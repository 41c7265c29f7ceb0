"""Digests of the optimised XLA programs the engine compiles for TwNet and MNIST (a training chunk
and an eval, vmapped and sequential), with source locations left out.

Equal digests from two source trees mean the same machine code runs, so a change to the engine or
the workload contract cannot have changed speed (or results) on this backend:

    PYTHONPATH=OLD_TREE python benchmarks/same_programs.py
    PYTHONPATH=NEW_TREE python benchmarks/same_programs.py

MNIST uses the t10k IDX files (--mnist DIR, default ../shared/data/mnist-t10k; skipped without).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def normalised(text: str) -> str:
    """Optimised HLO without source locations (file names, lines), which differ between trees."""
    text = re.sub(r"\n\d+ \"[^\n]*", "", text)
    text = re.sub(r"\n\d+ \{file_name_id[^\n]*", "", text)
    return re.sub(r",? ?metadata=\{[^}]*\}", "", text)


def digest(text: str) -> str:
    return hashlib.sha256(normalised(text).encode()).hexdigest()[:16]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", type=Path, default=ROOT.parent / "shared" / "data" / "mnist-t10k")
    args = parser.parse_args()

    import optui
    from optui.study import presets
    from optui.engine.core import GroupRunner, member_keys
    from optui.service import build_workload
    from optui.workloads.base import Strategy

    print(f"optui from {Path(optui.__file__).parent}", file=sys.stderr)
    cases = [("twnet", ROOT / "presets" / "twnet.toml", ["data.users=40", "data.vocab=300"])]
    if args.mnist.is_dir():
        cases.append(("mnist", ROOT / "presets" / "mnist-offline.toml",
                      [f"data.path={args.mnist}", "model.conv1=4", "model.conv2=8", "model.dense=16",
                       "eval.train_examples=200", "eval.test_examples=200"]))
    for name, path, sets in cases:
        study = presets.load(path, sets)
        workload = build_workload(study)
        cfg = study.configs["adam-default"]
        keys = member_keys(0, 2)
        hp = {k: np.full(2, v, np.float32) for k, v in cfg.hyperparams.items()}
        for vmap in (True, False):
            runner = GroupRunner(workload, "adam", cfg.batch_size, Strategy(scan=True, vmap_replicates=vmap))
            state = runner.init(keys, hp)
            if vmap:
                member, member_hp, member_keys = state, {k: jnp.asarray(v) for k, v in hp.items()}, keys
            else:
                member, member_hp, member_keys = state[0], {k: jnp.asarray(v[0]) for k, v in hp.items()}, keys[0]
            chunk = runner._chunk.lower(member, member_hp, jnp.asarray(member_keys, jnp.uint32), jnp.int32(0),
                                        workload.data, 5).compile().as_text()
            ev = runner._eval.lower(member, workload.data).compile().as_text()
            print(f"{name:6} {'vmap' if vmap else 'sequential':10} chunk {digest(chunk)}  eval {digest(ev)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
