"""Errors that carry a message meant for the user, never a traceback."""


class OptuiError(Exception):
    """A problem the user can fix; the message says what and where."""


class PresetError(OptuiError):
    """A preset file, or a --set override, is invalid."""


class DataError(OptuiError):
    """A data set is missing, malformed or unusable."""


class StoreError(OptuiError):
    """The run store cannot be opened, read or written."""


class UsageError(OptuiError):
    """A command-line argument names something that does not exist or cannot be used here."""


class UnknownRunError(StoreError, UsageError):
    """A run id, prefix or 'latest' that matches no run in the store (bad input: exit 2)."""


class RunLostError(StoreError):
    """This process can no longer record the run it was running: resuming here would not help."""


class StoreGoneError(RunLostError):
    """The store file was deleted or replaced while a run was writing it."""


class RunTakenOverError(RunLostError):
    """Another process took this run over (its lease had expired): this one must stop writing."""
