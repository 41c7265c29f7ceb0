"""Load pickles from outside the project without running their code.

pickle.load will call any global a file names (os.system, builtins.eval, ...). This unpickler
resolves only the globals needed to rebuild numpy arrays, scalars and dtypes plus builtin
containers, and refuses everything else before it is called. Pickles written under numpy 1.x
name numpy.core.*; numpy 2 moved those modules to numpy._core.*, so the names are mapped.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, Callable

from ..errors import DataError

MAX_PICKLE_BYTES = 512 * 1024 * 1024


class UnsafePickleError(DataError):
    """A pickle names a global outside the allow-list, or cannot be read."""


def _numpy_globals() -> dict[tuple[str, str], Any]:
    import numpy as np

    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray, numeric

    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy.core.multiarray", "scalar"): multiarray.scalar,
    }
    if hasattr(numeric, "_frombuffer"):  # protocol-5 arrays
        allowed[("numpy.core.numeric", "_frombuffer")] = numeric._frombuffer
    # Named dtype classes, e.g. numpy.dtypes.Float32DType in numpy 2 pickles of dtypes.
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        for name in dir(dtypes):
            if name.endswith("DType"):
                allowed[("numpy.dtypes", name)] = getattr(dtypes, name)
    for (module, name), obj in list(allowed.items()):
        if module.startswith("numpy.core."):
            allowed[("numpy._core." + module[len("numpy.core."):], name)] = obj
    return allowed


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """Protocol-2 pickles store bytes as _codecs.encode(text, 'latin1'); allow only that."""
    if encoding not in ("latin1", "latin-1", "iso-8859-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return text.encode("latin1")


_BUILTINS: dict[tuple[str, str], Any] = {
    ("builtins", name): obj
    for name, obj in {"dict": dict, "list": list, "tuple": tuple, "set": set,
                      "frozenset": frozenset, "bytearray": bytearray, "bytes": bytes,
                      "str": str, "int": int, "float": float, "complex": complex,
                      "bool": bool}.items()
}
_BUILTINS[("_codecs", "encode")] = _latin1_encode
_BUILTINS[("__builtin__", "set")] = set  # written by Python 2 era pickles


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only allow-listed globals and never runs anything else."""

    def __init__(self, file: io.BufferedIOBase, source: str):
        super().__init__(file)
        self._source = source
        self._allowed = {**_numpy_globals(), **_BUILTINS}

    def find_class(self, module: str, name: str) -> Any:
        obj = self._allowed.get((module, name))
        if obj is None:
            raise UnsafePickleError(
                f"{self._source}: refused to load: the pickle asks for {module}.{name}, which is "
                f"not a numpy array, scalar or dtype, nor a builtin container; nothing was run")
        return obj

    def persistent_load(self, pid: Any) -> Callable[..., Any]:
        raise UnsafePickleError(f"{self._source}: refused to load: persistent ids are not allowed")


def loads(data: bytes, source: str = "<bytes>") -> Any:
    """Unpickle bytes with the allow-list; any failure becomes an UnsafePickleError naming source."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), source).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, MemoryError, RecursionError, UnicodeDecodeError) as exc:
        raise UnsafePickleError(f"{source}: not a readable pickle ({type(exc).__name__}: {exc})") from None


def load(path: str | Path, max_bytes: int = MAX_PICKLE_BYTES) -> Any:
    """Read and safely unpickle a file, refusing files over max_bytes before reading them."""
    path = Path(path)
    if not path.exists():
        raise UnsafePickleError(f"{path}: no such file")
    if not path.is_file():
        raise UnsafePickleError(f"{path}: not a file")
    size = path.stat().st_size
    if size > max_bytes:
        raise UnsafePickleError(f"{path}: {size:,} bytes is over the {max_bytes:,}-byte limit for pickles")
    if size == 0:
        raise UnsafePickleError(f"{path}: empty file, expected a pickle")
    return loads(path.read_bytes(), str(path))
