"""A folder made read-only for a test, also when the tests run as root."""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path
import pytest

@contextmanager
def read_only(folder: Path):
    """folder, read-only. Root ignores permission bits, so as root it is bind-mounted read-only."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"as root, a read-only folder needs a read-only bind mount: {mounted.stderr.decode().strip()}")
    try:
        with pytest.raises(OSError):  # the mount really is read-only
            (folder / "probe").write_text("x")
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)
