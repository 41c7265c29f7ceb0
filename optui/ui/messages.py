"""Messages worker threads post to the app; widgets change only in their handlers (UI thread)."""

from __future__ import annotations

from typing import Any

from textual.message import Message


class EngineEvent(Message):
    """One engine event (a frozen dataclass of numpy arrays), handed over from the run worker."""

    def __init__(self, event: Any) -> None:
        super().__init__()
        self.event = event


class JobFailed(Message):
    """A worker hit an error; the message is for the user (no traceback)."""

    def __init__(self, title: str, error: str) -> None:
        super().__init__()
        self.title = title
        self.error = error


class DeviceProbed(Message):
    def __init__(self, backend: str, device: str) -> None:
        super().__init__()
        self.backend = backend
        self.device = device


class PresetChecked(Message):
    """The result of validating the editor's text: error is None when the study is valid."""

    def __init__(self, generation: int, study: Any, error: str | None, fields: dict) -> None:
        super().__init__()
        self.generation = generation
        self.study = study
        self.error = error
        self.fields = fields


class RunDone(Message):
    """The run worker has returned (whatever happened): a new run may start."""
