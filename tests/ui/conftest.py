"""Fixtures of the session's tests."""

from __future__ import annotations

from pathlib import Path
import pytest


@pytest.fixture
def folder(tmp_path: Path, monkeypatch) -> Path:
    """A working folder as the session expects it: presets/ here, runs/ and exports/ created."""
    (tmp_path / "presets").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path
