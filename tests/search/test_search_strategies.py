"""Learning samplers (Optuna, asked in rounds) and early stopping (asha, median) on tiny TwNet:
resumed searches ask the same trials, pruned trials stop using compute and keep their histories."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from optui.study import presets
from optui.errors import PresetError
from optui.store import Store

pytest.importorskip("optuna")

ROOT = Path(__file__).resolve().parents[2]
TWNET = ROOT / "presets" / "twnet.toml"
TINY = ["data.users=30", "data.vocab=200", "budget.iterations=40", "eval.points=9",
        'search.adam.batch_size={low=4, high=64, int=true, scale="log", buckets=2}', "search.adam.trials=6"]


def tiny_study(extra):
    return presets.load(TWNET, TINY + extra)


@pytest.fixture(scope="module")
def shared():
    from optui.service import CompiledGroups, build_workload

    return SimpleNamespace(workload=build_workload(tiny_study([])), compiled=CompiledGroups())


def run(study, store, shared, resume=None, cancel=None, listener=None):
    from optui.service import SearchRunner

    runner = SearchRunner(study, "adam", store, listener, cancel, compiled=shared.compiled)
    return runner.run(resume=resume, workload=shared.workload), runner


def trials(store, run_id):
    return {r["name"]: r for r in store.unit_rows(run_id) if not r["spec"].get("confirm_of")}


TPE = ["search.adam.sampler=tpe", "search.adam.round_trials=3"]


def test_tpe_asks_in_rounds_and_a_resumed_search_asks_the_same_trials(tmp_path, shared):
    store = Store.open(tmp_path / "a")
    run_id, _ = run(tiny_study(TPE), store, shared)
    whole = trials(store, run_id)
    assert [r["spec"]["round"] for r in whole.values()] == [0, 0, 0, 1, 1, 1]
    assert all(r["status"] in ("done", "diverged") for r in whole.values())
    assert store.run_info(run_id)["meta"]["space"]["sampler"] == "tpe"

    # Interrupt once the first round is told (the second is asked, not trained), then resume.
    cancel = threading.Event()
    finished = []

    def listen(event):
        if type(event).__name__ == "UnitFinished":
            finished.append(event.unit)
            if len(finished) == 3:
                cancel.set()

    store2 = Store.open(tmp_path / "b")
    run2, _ = run(tiny_study(TPE), store2, shared, cancel=cancel, listener=listen)
    assert store2.run_info(run2)["status"] == "interrupted"
    assert [r["status"] for r in trials(store2, run2).values()][3:] == ["pending"] * 3
    run(tiny_study(TPE), store2, shared, resume=run2)
    # A search of one round, extended by a second process: it asks round 2 from the store alone.
    store3 = Store.open(tmp_path / "c")
    run3, _ = run(tiny_study([*TPE, "search.adam.trials=3"]), store3, shared)
    from optui.service import SearchRunner

    SearchRunner(tiny_study([*TPE, "search.adam.trials=3"]), "adam", store3, compiled=shared.compiled).run(
        trials=6, resume=run3, workload=shared.workload)
    for st, rid in ((store2, run2), (store3, run3)):
        again = trials(st, rid)
        assert st.run_info(rid)["status"] == "done"
        for name, row in whole.items():
            assert again[name]["spec"] == row["spec"], name
            assert again[name]["extra"].get("objective") == pytest.approx(row["extra"].get("objective"), rel=1e-5)


def test_asha_prunes_by_repacking_the_survivors(tmp_path, shared):
    store = Store.open(tmp_path)
    study = tiny_study(["search.adam.pruner=asha", "search.adam.reduction_factor=3", "search.adam.min_budget=1"])
    run_id, runner = run(study, store, shared)
    rows = trials(store, run_id)
    pruned = [r for r in rows.values() if r["status"] == "pruned"]
    done = [r for r in rows.values() if r["status"] == "done"]
    assert pruned and done
    for r in pruned:
        unit = store.load_unit(run_id, r)
        point = r["extra"]["pruned_at"]["eval_point"]
        assert point in (1, 3)
        assert len(unit.eval_steps) == point + 1  # the partial history, kept
        assert unit.minibatch_loss.shape[1] == r["extra"]["steps_trained"] < r["total_steps"]
        assert r["extra"]["objective"] is None
    # Survivors trained as smaller groups: the same shape ran with fewer members after a rung.
    by_batch = {}
    for _, batch, members, _ in runner.programs:
        by_batch.setdefault(batch, set()).add(members)
    assert any(len(m) > 1 for m in by_batch.values())
    from optui.search import rank_trials

    ranked = rank_trials(store, run_id)
    assert [t["status"] for t in ranked][:len(done)] == ["done"] * len(done)
    assert "pruned" in [t["status"] for t in ranked]
    # A resumed search does not train pruned trials again.
    before = {n: r["wall_time_s"] for n, r in rows.items()}
    run(study, store, shared, resume=run_id)
    after = trials(store, run_id)
    assert {n: r["wall_time_s"] for n, r in after.items()} == before


def test_median_pruner_runs_through_optuna(tmp_path, shared):
    store = Store.open(tmp_path)
    run_id, _ = run(tiny_study(["search.adam.pruner=median", "search.adam.trials=8"]), store, shared)
    statuses = [r["status"] for r in trials(store, run_id).values()]
    assert store.run_info(run_id)["status"] == "done"
    assert set(statuses) <= {"done", "pruned", "diverged"}


def test_bucketed_batch_sizes_are_an_ordered_index_for_optuna():
    from optui.search import sampling

    space = tiny_study(["search.adam.sampler=tpe"]).search["adam"]
    dists = sampling.distributions(space)
    assert (dists["batch_size"].low, dists["batch_size"].high) == (0, 1)
    assert dists["learning_rate"].log and not dists["b1"].log
    params = sampling.from_optuna(space, {"batch_size": 1, "learning_rate": 0.123456789, "b1": 0.7, "b2": 0.8})
    assert params["batch_size"] == 64 and params["learning_rate"] == 0.1235
    assert sampling.to_optuna(space, params)["batch_size"] == 1


@pytest.mark.parametrize("override, field", [
    ("search.adam.sampler=grid", "search.adam.sampler"),
    ("search.adam.pruner=hyperband", "search.adam.pruner"),
    ("search.adam.reduction_factor=3", "search.adam.reduction_factor"),  # without pruner = asha
    ("search.adam.round_trials=4", "search.adam.round_trials"),  # with random draws
])
def test_bad_sampler_settings_name_the_field(override, field):
    with pytest.raises(PresetError, match=field.replace(".", r"\.")):
        tiny_study([override])


def test_a_missing_optuna_gives_the_install_command_before_any_run(tmp_path, shared, monkeypatch):
    from optui import optional
    from optui.service import SearchRunner

    real = optional.importlib.import_module

    def no_optuna(name, *a):
        if name == "optuna":
            raise ImportError(name)
        return real(name, *a)

    monkeypatch.setattr(optional.importlib, "import_module", no_optuna)
    store = Store.open(tmp_path)
    with pytest.raises(optional.MissingDependency, match=r"pip install 'optui\[search\]'"):
        SearchRunner(tiny_study(TPE), "adam", store).run(workload=shared.workload)
    assert store.list_runs() == []


def _cli(tmp_path, *args, block_optuna=False):
    import subprocess
    import sys

    from support.common import cli_env

    code = ("import sys\n"
            + ("sys.modules['optuna'] = None\n" if block_optuna else "")  # an import of it then fails
            + "from optui.cli import app\nsys.argv[0] = 'optui'\napp()\n")
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=tmp_path, env=cli_env(None),
                          capture_output=True, text=True, timeout=240)


def test_cli_refuses_an_unknown_sampler_and_a_missing_optuna_with_exit_2(tmp_path):
    common = ["search", TWNET, "--headless", "--space", "adam", "--store", tmp_path / "runs", "--no-export",
              *[a for o in TINY for a in ("--set", o)]]
    bad = _cli(tmp_path, *common, "--sampler", "grid")
    assert bad.returncode == 2 and "--sampler 'grid': choose one of random, qmc, tpe, cmaes" in bad.stderr
    missing = _cli(tmp_path, *common, "--sampler", "tpe", block_optuna=True)
    assert missing.returncode == 2, missing.stderr
    assert "pip install 'optui[search]'" in missing.stderr and "Traceback" not in missing.stderr
    assert not (tmp_path / "runs").exists() or not Store.open(tmp_path / "runs").list_runs()


def test_the_search_panel_plots_best_so_far_against_examples_and_shows_pruned():
    import asyncio

    asyncio.run(_search_panel_history())


async def _search_panel_history():
    from textual.app import App

    from optui.ui.panels.search import HISTORY_AXIS, SearchPanel

    class One(App):
        def compose(self):
            yield SearchPanel()

    rows = [{"name": "adam-t001", "trial": 1, "status": "done", "objective": 0.5, "steps": 100, "replicates": 1,
             "params": {"batch_size": 10, "learning_rate": 0.1}, "extra": {"steps_trained": 100}},
            {"name": "adam-t002", "trial": 2, "status": "pruned", "objective": None, "steps": 100, "replicates": 1,
             "params": {"batch_size": 10, "learning_rate": 1.0}, "extra": {"steps_trained": 10}},
            {"name": "adam-t003", "trial": 3, "status": "done", "objective": 0.4, "steps": 100, "replicates": 1,
             "params": {"batch_size": 10, "learning_rate": 0.2}, "extra": {"steps_trained": 100}}]
    meta = {"space": {"sampler": "tpe", "pruner": "asha", "goal": "min"}}
    async with One().run_test() as pilot:
        panel = pilot.app.query_one(SearchPanel)
        panel.show_trials(rows, "run", "final_test_loss", meta)
        await pilot.pause()
        table = panel.query_one("#search-trials")
        assert [table.get_row_at(i)[3] for i in range(3)] == ["done", "done", "pruned"]
        panel.query_one("#search-param").value = HISTORY_AXIS
        await pilot.pause(0.5)
        plt = panel.query_one("#search-plot").plt
        assert "tpe + asha: best so far vs examples (2,100 examples, 1 pruned)" in plt.build()


@pytest.mark.parametrize("sampler", ["qmc", "tpe", "cmaes"])
def test_each_sampler_asks_the_same_round_from_state_read_back_from_json(sampler):
    """What a resumed search rebuilds from (stored trials and the JSON of Optuna's attributes)
    asks what the uninterrupted search asked, and the rounds move on (no repeated draws)."""
    import json

    from optui.search import sampling

    space = tiny_study([f"search.adam.sampler={sampler}"]).search["adam"]
    saved = {"study": {}, "trials": {}}
    told = []
    asked_rounds = []
    for round_index in range(3):
        params, state = sampling.ask_round(space, told, saved, round_index, 4, 4)
        again, _ = sampling.ask_round(space, json.loads(json.dumps(told)), json.loads(json.dumps(saved)),
                                      round_index, 4, 4)
        assert again == params
        asked_rounds.append(params)
        for j, p in enumerate(params):
            name = f"adam-t{len(told) + 1:03d}"
            saved["trials"][name] = state["trials_new"][j]
            told.append({"name": name, "params": p, "status": "done",
                         "objective": (p["learning_rate"] - 3.0) ** 2 + p["b1"], "intermediate": {1: 1.0}})
        saved["study"] = state["study"]
    assert asked_rounds[0] != asked_rounds[1] != asked_rounds[2]
    for params in asked_rounds:
        for p in params:
            assert 0.1 <= p["learning_rate"] <= 100 and p["batch_size"] in (4, 64)


def test_the_history_figure_sets_random_search_beside_a_learning_one(tmp_path, shared):
    from optui.export import search_progress
    from optui.export.search_report import export_search
    from optui.search import rank_trials

    store = Store.open(tmp_path / "runs")
    random_run, _ = run(tiny_study(["search.adam.trials=3"]), store, shared)
    study = tiny_study([*TPE, "search.adam.trials=3", "search.adam.pruner=asha"])
    tpe_run, _ = run(study, store, shared)
    related = search_progress.related_searches(store, tpe_run)
    assert list(related) == [f"random ({random_run})"]
    assert list(search_progress.related_searches(store, random_run)) == [f"tpe + asha ({tpe_run})"]
    ranked = rank_trials(store, tpe_run)
    points = search_progress.history(ranked)
    assert [x for x, _ in points] == sorted(x for x, _ in points)
    assert points[-1][0] == sum(search_progress.examples_trained(t) for t in ranked)
    files = export_search(study, study.search["adam"], store.run_info(tpe_run), ranked, [], tmp_path / "out",
                          related=related)
    assert (tmp_path / "out" / "search-adam-history.png") in files
    md = (tmp_path / "out" / "search-adam.md").read_text()
    assert md.startswith("# TPE + asha search: twnet / adam") and "trial(s) pruned" in md
