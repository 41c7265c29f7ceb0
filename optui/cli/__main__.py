"""`python -m optui.cli`: the optui command line, as the `optui` script runs it."""

import sys

from .main import app

sys.exit(app(prog_name="optui"))
