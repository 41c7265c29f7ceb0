"""Stores filled through the Store API without training: a study run and a search run with known
values (one replicate or trial diverged), for tests of what reads a store (exports, tables, the
notebook API). No JAX compile: these tests stay fast."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from optui.store import Store

from support.common import tiny_preset_text

SEARCH_SPACE = """
[search.adam]
optimizer = "adam"
trials = 3
replicates = 2
learning_rate = { low = 0.001, high = 0.5, scale = "log" }
batch_size = { low = 8, high = 32, int = true }
"""


def fill_study(store: Store, study: str = "demo", steps: int = 12, points: int = 4, reps: int = 3,
               seed: int = 0) -> str:
    """A finished study run with configs sgd (batch 16) and adam (batch 8; replicate 1 diverges
    at step 7). Eval points at 0, steps/3, 2 steps/3, steps (chunks of steps/3 steps)."""
    rng = np.random.default_rng(seed)
    text = tiny_preset_text(study=study, iterations=steps, points=points - 1, replicates=reps)
    run_id = store.create_run(study, "twnet", "study", text, f"{study}.toml",
                              {"device": "cpu:cpu x1", "eval_points": points - 1})
    chunk = steps // (points - 1)
    for name, batch, diverge in (("sgd", 16, None), ("adam", 8, (1, 7))):
        store.add_unit(run_id, name, {"optimizer": name, "batch_size": batch, "learning_rate": 0.1,
                                      "steps": steps}, reps, steps, points - 1)
        diverged_at = np.full(reps, -1)
        store.write_chunk(run_id, name, -1, 0, np.zeros((reps, 0), np.float32), 0,
                          {"train_loss": rng.uniform(1, 2, reps), "test_loss": rng.uniform(1, 2, reps)},
                          diverged_at.copy())
        for c in range(points - 1):
            start = c * chunk
            loss = rng.uniform(0.1, 1.0, (reps, chunk)).astype(np.float32)
            evals = {"train_loss": rng.uniform(0.1, 1.0, reps), "test_loss": rng.uniform(0.1, 1.0, reps)}
            if diverge is not None:
                r, at = diverge
                if start + chunk > at:
                    loss[r, max(at - start, 0):] = np.nan
                    diverged_at[r] = at
                    for v in evals.values():
                        v[r] = np.nan
            store.write_chunk(run_id, name, c, start, loss, start + chunk, evals, diverged_at.copy())
        store.finish_unit(run_id, name, "done", 1.5)
    store.finish_run(run_id, "done", 3.0)
    return run_id


def fill_search(store: Store, study: str = "demo", steps: int = 10, reps: int = 2) -> str:
    """A finished search run of space adam: trials t001 and t002 done (t002 best), t003 diverged."""
    rng = np.random.default_rng(1)
    text = tiny_preset_text(study=study, iterations=steps, points=2, replicates=reps, extra=SEARCH_SPACE)
    meta = {"device": "cpu:cpu x1", "space_name": "adam", "overrides": [], "budget": f"{steps} iterations",
            "budget_note": "the same iterations per trial", "compiles": 3}
    run_id = store.create_run(study, "twnet", "search", text, f"{study}.toml", meta)
    trials = [("adam-t001", 0.01, 16, 0.4, None), ("adam-t002", 0.05, 24, 0.3, None),
              ("adam-t003", 0.45, 9, None, 4)]
    for i, (name, lr, batch, objective, diverge) in enumerate(trials):
        spec = {"optimizer": "adam", "batch_size": batch, "learning_rate": lr, "b1": 0.9, "b2": 0.999,
                "eps": 1e-8, "trial": i + 1, "space": "adam", "steps": steps}
        store.add_unit(run_id, name, spec, reps, steps, 2)
        diverged_at = np.full(reps, -1)
        loss = rng.uniform(0.2, 1.0, (reps, steps)).astype(np.float32)
        finals = np.full(reps, objective if objective is not None else np.nan)
        if diverge is not None:
            loss[0, diverge:] = np.nan
            diverged_at[0] = diverge
        store.write_chunk(run_id, name, 0, 0, loss, steps, {"test_loss": finals, "train_loss": finals},
                          diverged_at)
        extra = {"objective_name": "final_test_loss", "objective": objective,
                 "objectives": [objective] * reps, "diverged": int((diverged_at >= 0).sum())}
        store.finish_unit(run_id, name, "done" if objective is not None else "diverged", 2.0, extra)
    store.finish_run(run_id, "done", 6.0)
    return run_id


def make_store(root: Path) -> tuple[Store, str, str]:
    """A store with one study run and one search run: (store, study run id, search run id)."""
    store = Store.open(root)
    study = fill_study(store)
    search = fill_search(store)
    return store, study, search
