"""Fixtures shared by the reliability tests."""

from __future__ import annotations

import pytest

from support.serving import Served


@pytest.fixture
def served(tmp_path):
    (tmp_path / "presets").mkdir()
    started: list[Served] = []

    def start(*args: str, port: int | None = None) -> Served:
        started.append(Served(tmp_path, *args, port=port))
        return started[-1]

    yield start
    for s in started:
        s.close()
