"""Errors that carry a message meant for the user, never a traceback."""


class OptuiError(Exception):
    """A problem the user can fix; the message says what and where."""


class PresetError(OptuiError):
    """A preset file, or a --set override, is invalid."""


class DataError(OptuiError):
    """A data set is missing, malformed or unusable."""


class StoreError(OptuiError):
    """The run store cannot be opened, read or written."""
