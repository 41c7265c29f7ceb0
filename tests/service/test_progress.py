"""The one progress state every view renders: events folded by a pure reducer."""

from __future__ import annotations

import numpy as np

from optui.search import TrialScored
from optui.service.events import ChunkDone, RunFailed, RunFinished, RunStarted, UnitFinished, UnitStarted
from optui.service.progress import COMPILING, NOT_RUN, WAITING, RunProgress, reduce
from optui.status import Status


def chunk(unit: str, index: int, step_end: int, test_loss: list[float], diverged: list[int]) -> ChunkDone:
    return ChunkDone(unit, index, 2, step_end, 20, np.ones((len(test_loss), 10)), step_end,
                     {"test_loss": np.array(test_loss)}, np.array(diverged), elapsed_s=1.5, run_id="r1")


def fold(events: list) -> RunProgress:
    state = RunProgress()
    for e in events:
        state = reduce(state, e)
    return state


def test_a_study_folds_from_started_to_finished_without_changing_earlier_states():
    start = RunStarted("r1", "tiny", "study", {"sgd": (20, 2), "adam": (20, 2)}, "cpu", "scan")
    events = [start, UnitStarted("sgd", 20, 2, run_id="r1"), chunk("sgd", 0, 10, [0.5, 0.7], [-1, -1]),
              chunk("sgd", 1, 20, [0.25, float("nan")], [-1, 14]), UnitFinished("r1", "sgd", Status.DONE, 1, 3.0),
              RunFinished("r1", Status.INTERRUPTED, 3.5)]
    states = [RunProgress()]
    for e in events:
        states.append(reduce(states[-1], e))
    assert states[1].units["sgd"].status == WAITING and states[2].units["sgd"].status == COMPILING
    sgd = states[4].units["sgd"]
    assert sgd.steps_done == 20 and sgd.fraction == 1.0 and sgd.diverged == 1 and len(sgd.chunks) == 2
    assert sgd.last_value("test_loss") == 0.25  # the mean over the healthy replicates
    end = states[-1]
    assert end.status == Status.INTERRUPTED and end.wall_time_s == 3.5
    assert end.units["sgd"].status == Status.DONE and end.units["adam"].status == NOT_RUN
    assert end.finished_units == 1
    assert states[3].units["sgd"].steps_done == 10  # earlier states are left as they were


def test_a_searchs_scores_and_a_failure_land_in_the_state():
    state = fold([RunStarted("r2", "tiny", "search", {"adam-t001": (20, 1)}, "cpu", "scan"),
                  TrialScored("r2", "adam-t001", {"learning_rate": 0.01}, Status.DONE, 0.42),
                  RunFailed("r2", "boom")])
    trial = state.units["adam-t001"]
    assert (trial.status, trial.objective, trial.params) == (Status.DONE, 0.42, {"learning_rate": 0.01})
    assert (state.status, state.error) == (Status.FAILED, "boom")
