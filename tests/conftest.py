"""Shared fixtures: tiny TwNet presets, the shared test data folder, and the CLI in a scratch folder.

Everything here is sized for a busy 2-core CPU: 30 users, a 200-token vocabulary, a few dozen
steps. CLI subprocesses share one persistent JAX compilation cache per test session, so only the
first run of a given program pays for the compile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
from support.common import SHARED_DATA, Cli, cli_env, tiny_preset_text


@pytest.fixture
def write_preset(tmp_path: Path) -> Callable[..., Path]:
    """write_preset(name="tiny.toml", text=None, **tiny_preset_text kwargs) -> path of the file."""

    def write(name: str = "tiny.toml", text: str | None = None, **kwargs: Any) -> Path:
        path = tmp_path / name
        path.write_text(text if text is not None else tiny_preset_text(**kwargs), encoding="utf-8")
        return path

    return write


@pytest.fixture
def shared_data() -> Path:
    """../shared/data relative to the project root; the test is skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA


# --- the CLI as a subprocess --------------------------------------------------------------------


@pytest.fixture(scope="session")
def jax_cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("jax-cache")


# Patch code for `python -c`: every chunk takes 0.3 s longer, so a test can act part-way.


@pytest.fixture
def cli(tmp_path: Path, jax_cache_dir: Path) -> Cli:
    """The CLI in a fresh scratch folder (runs/ and exports/ land there)."""
    return Cli(tmp_path, cli_env(jax_cache_dir))


