"""The run controller: one run at a time, whatever started it (replicates, a search, a
confirmation, a resumed run). It owns the worker thread, the cancel Event and the run's progress,
folded from the engine's events by `optui.service.progress.reduce`; views get that progress in messages.

Stopping sets the Event: the run ends after its current chunk with everything kept. A resumed run's
progress starts from the chunks the store already holds, so its charts show the whole history.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

from textual import work
from textual.message import Message
from textual.widget import Widget

from ..study import presets
from ..service.events import ChunkDone, RunFailed, RunFinished, RunStarted
from ..service.progress import RunProgress, reduce
from ..status import Status
from . import jobs
from .messages import EngineEvent, RunDone

KINDS = ("replicates", "search", "resume", "confirm")


@dataclasses.dataclass(frozen=True)
class RunRequest:
    """What to run. kind: replicates | search | resume | confirm."""

    kind: str
    study: presets.Study | None = None
    configs: tuple[str, ...] = ()
    count: int = 0  # replicates, or a search's trials
    space: str = ""
    run_id: str = ""  # resume and confirm: the stored run
    top: int = 0  # confirm: how many of the best trials
    view: str = ""  # "replicates" or "search": the panel that shows it

    @property
    def shown_in(self) -> str:
        return self.view or ("search" if self.kind in ("search", "confirm") else "replicates")


def stored_chunks(run: Any, unit: str) -> list[ChunkDone]:
    """A stored unit's history as the chunk events that made it (one per eval point), so a resumed
    run's progress starts where the stored one ends."""
    u = run.units.get(unit)
    if u is None or u.minibatch_loss.shape[1] == 0:
        return []
    out, start = [], 0
    steps = [int(s) for s in u.eval_steps] or [u.minibatch_loss.shape[1]]
    for i, step in enumerate(steps):
        end = min(step, u.minibatch_loss.shape[1])
        out.append(ChunkDone(run_id=run.run_id, unit=unit, chunk_index=i, chunks_total=len(steps), step_end=end,
                             total_steps=u.total_steps or end, minibatch_loss=u.minibatch_loss[:, start:end],
                             eval_step=step, eval={k: v[:, i] for k, v in u.eval.items() if v.shape[1] > i},
                             diverged_at=u.diverged_at))
        start = end
    return out


class RunController(Widget):
    """Not drawn. `begin` starts a request; Progressed and Ended tell every view what happened."""

    DEFAULT_CSS = "RunController { display: none; }"

    class Began(Message):
        def __init__(self, request: RunRequest) -> None:
            super().__init__()
            self.request = request

    class Progressed(Message):
        """The progress after one engine event (the event too, for notices)."""

        def __init__(self, request: RunRequest, progress: RunProgress, event: Any) -> None:
            super().__init__()
            self.request = request
            self.progress = progress
            self.event = event

    class Ended(Message):
        """The worker returned: status is the run's last status (None if it never started)."""

        def __init__(self, request: RunRequest, run_id: str | None, status: str | None) -> None:
            super().__init__()
            self.request = request
            self.run_id = run_id
            self.status = status

    def __init__(self, root: Path, runs=None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.root = root
        self.runs = runs  # the runs model: a resumed run's stored history
        self.request: RunRequest | None = None
        self.cancel_event: threading.Event | None = None
        self.progress = RunProgress()
        self.run_id: str | None = None
        self.last_status: str | None = None

    @property
    def running(self) -> str | None:
        """'replicates' or 'search' (the panel the run shows in) while a run works, else None."""
        return self.request.shown_in if self.request is not None else None

    @property
    def stopping(self) -> bool:
        return self.cancel_event is not None and self.cancel_event.is_set()

    def begin(self, request: RunRequest) -> str | None:
        """Start the request; returns why it cannot start, or None."""
        if self.request is not None:
            return "a run is in progress: one at a time (ctrl+t stops it)"
        if request.kind not in KINDS:
            return f"unknown run kind {request.kind!r}"
        self.request = request
        self.cancel_event = threading.Event()
        self.progress = RunProgress()
        self.run_id, self.last_status = None, None
        self.post_message(self.Began(request))
        self._work(request, self.cancel_event)
        return None

    def stop(self) -> bool:
        """Stop after the current chunk; False when nothing runs."""
        if self.request is None or self.cancel_event is None:
            return False
        self.cancel_event.set()
        return True

    @work(thread=True, exclusive=True, group="run", exit_on_error=False)
    def _work(self, r: RunRequest, cancel: threading.Event) -> None:
        post, root = self.post_message, self.root
        if r.kind == "replicates":
            jobs.run_replicates(post, root, r.study, list(r.configs), r.count, cancel)
        elif r.kind == "search":
            jobs.run_search(post, root, r.study, r.space, r.count, cancel)
        elif r.kind == "resume":
            jobs.resume_run(post, root, r.run_id, cancel)
        else:
            jobs.confirm_search(post, root, r.run_id, r.top, r.count, cancel)

    def on_engine_event(self, message: EngineEvent) -> None:
        message.stop()
        e, r = message.event, self.request
        if r is None:
            return
        study = r.study
        specs = {n: c.as_dict() for n, c in study.configs.items()} if study is not None else {}
        self.progress = reduce(self.progress, e, specs)
        if isinstance(e, RunStarted):
            self.run_id = e.run_id
            if e.resumed and self.runs is not None:
                self.runs.refresh_runs(forget=e.run_id)
                stored = self.runs.load(e.run_id)
                for unit in e.units if stored is not None else ():
                    for chunk in stored_chunks(stored, unit):
                        self.progress = reduce(self.progress, chunk, specs)
        elif isinstance(e, RunFinished):
            self.last_status = e.status
        elif isinstance(e, RunFailed):
            self.last_status = Status.FAILED
        self.post_message(self.Progressed(r, self.progress, e))

    def on_run_done(self, message: RunDone) -> None:
        message.stop()
        r, self.request = self.request, None
        if r is not None:
            self.post_message(self.Ended(r, self.run_id, self.last_status))

    def on_unmount(self) -> None:
        if self.cancel_event is not None:
            self.cancel_event.set()  # never leave a training thread running behind a closed app
