"""The run store: every run, unit (config or trial), chunk of history and checkpoint, in SQLite.

`schema` holds the tables and migrations, `lease` who holds a running run, `database` the Store
that writes and reads them, and `removal` deleting a run. The names below are its public API
(the lease's timings are read in `lease`, so a test that shortens them patches that module).
"""

from .database import Store, new_run_id
from .schema import ACTIVE, DAMAGED, DB_NAME, MIGRATIONS, SCHEMA_VERSION

__all__ = ["ACTIVE", "DAMAGED", "DB_NAME", "MIGRATIONS", "SCHEMA_VERSION",
           "Store", "new_run_id"]
