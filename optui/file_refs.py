"""Where a preset's file reference ("./my_workload.py:make", "./my_opt.py:make") is looked up.

One order for workloads and optimisers alike: an absolute path as it is; a relative one in the
preset's folder first (so a preset and the files beside it travel together), then in the current
folder (for a preset given without a file, or a file kept beside the project).
"""

from __future__ import annotations

from pathlib import Path


def preset_folder(preset: str | Path | None) -> Path | None:
    """The folder of a preset file, or None (no file, or its folder is gone)."""
    if not preset:
        return None
    folder = Path(preset).expanduser().resolve().parent
    return folder if folder.is_dir() else None


def candidates(path_text: str, folder: Path | None) -> list[Path]:
    """The paths to try, in order, without duplicates (resolved); folder: the preset's."""
    path = Path(path_text).expanduser()
    if path.is_absolute():
        return [path]
    folders = [f for f in (folder, Path.cwd()) if f is not None]
    return list(dict.fromkeys((f / path).resolve() for f in folders))
