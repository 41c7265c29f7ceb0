"""The optui command line: `optui` alone opens the interactive session; `optui run`, `search`,
`export` and the rest are the command groups in `commands/`; `headless` drives a run in the
foreground with rich progress. The entry point is `optui.cli:app` (also `python -m optui.cli`)."""

from .main import app

__all__ = ["app"]
