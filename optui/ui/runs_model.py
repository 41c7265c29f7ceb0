"""The run store as the session sees it: the runs listed, the runs loaded, and a message whenever
the store changes (a run of this session, or one started by `optui run` in another terminal)."""

from __future__ import annotations

from pathlib import Path

from textual.message import Message
from textual.widget import Widget

from ..errors import OptuiError
from ..results import RunResult
from ..status import Status
from .formats import Formats

POLL_S = 2.0  # how often the store's files are looked at for writes from other processes


class RunsModel(Widget):
    """Not drawn: it owns the store connection the UI thread reads with."""

    DEFAULT_CSS = "RunsModel { display: none; }"

    class Changed(Message):
        """The store's runs changed: every view of them re-reads `model.runs`."""

        def __init__(self, model: "RunsModel") -> None:
            super().__init__()
            self.model = model

    def __init__(self, folder: Path, formats: Formats, **kwargs) -> None:
        super().__init__(**kwargs)
        self.folder = folder
        self.formats = formats
        self.store = None
        self.runs: list[dict] = []
        self._cache: dict[str, RunResult] = {}
        self._seen: tuple = ()

    def on_mount(self) -> None:
        try:
            from ..store import Store

            self.store = Store.open(self.folder)
        except OptuiError as exc:
            self.notify(str(exc), title="run store", severity="error")
        self.refresh_runs()
        self.set_interval(POLL_S, self._poll)

    def _files_state(self) -> tuple:
        out = []
        for p in sorted(self.folder.glob("*")) if self.folder.is_dir() else ():
            try:
                st = p.stat()
            except OSError:
                continue
            out.append((p.name, st.st_mtime_ns, st.st_size))
        return tuple(out)

    def _poll(self) -> None:
        if self._files_state() != self._seen:
            self.refresh_runs()

    def refresh_runs(self, forget: str | None = None) -> None:
        """Re-read the list (and forget `forget`'s loaded copy); posts Changed."""
        if forget:
            self._cache.pop(forget, None)
        if self.store is None:
            return
        self._seen = self._files_state()
        try:
            runs = self.store.list_runs()
        except OptuiError as exc:
            self.notify(str(exc), title="run store", severity="error")
            return
        for info in runs:  # a run still being written is read again when it is next shown
            if info["status"] not in ("done",) and info["id"] in self._cache:
                self._cache.pop(info["id"], None)
        self.runs = runs
        self.post_message(self.Changed(self))

    def info(self, run_id: str) -> dict | None:
        return next((r for r in self.runs if r["id"] == run_id), None)

    def load(self, run_id: str) -> RunResult | None:
        if run_id not in self._cache:
            if self.store is None:
                return None
            try:
                self._cache[run_id] = self.store.load_run(run_id)
            except OptuiError as exc:
                self.notify(str(exc), title="run store", severity="error")
                return None
        return self._cache[run_id]

    def resumable(self, run_id: str | None = None) -> tuple[dict | None, str]:
        """(run_id's info, "") when it can be resumed, else the newest that can be when run_id is
        None; (None, why not) otherwise."""
        stopped = [r for r in reversed(self.runs) if r["status"] in (Status.INTERRUPTED, Status.FAILED)
                   and r["kind"] in ("study", "search") and run_id in (None, r["id"])]
        if stopped:
            return stopped[0], ""
        info = self.info(run_id) if run_id else None
        if info is None:
            return None, "no interrupted or failed run to resume"
        return None, (f"run {self.label(run_id)} is {info['status']}: only an interrupted or failed study "
                      f"or search can be resumed")

    def label(self, run_id: str) -> str:
        return self.formats.run_label(run_id, [r["id"] for r in self.runs])

    def searches(self, study: str | None = None, space: str | None = None) -> list[dict]:
        """Stored searches, newest first; of one study (and space) when named."""
        return [r for r in reversed(self.runs) if r["kind"] == "search"
                and (study is None or r["study"] == study)
                and (space is None or r["meta"].get("space_name") == space)]

    def on_unmount(self) -> None:
        if self.store is not None:
            try:
                self.store.close()
            except Exception:
                pass
