"""Load pickles from outside the project without running their code.

pickle.load will call any global a file names (os.system, builtins.eval, ...). This unpickler
resolves only the globals needed to rebuild numpy arrays, scalars and dtypes plus builtin
containers, and refuses everything else before it is called. Pickles written under numpy 1.x
name numpy.core.*; numpy 2 moved those modules to numpy._core.*, so the names are mapped.

A small file can still ask for a lot: `bytearray(20_000_000_000)` is 37 bytes, and a tuple nested
a hundred thousand deep crashes Python when it is hashed (a set member or a dict key). So the
constructors it may call are bounded in what they allocate, and the opcode stream is read once
before unpickling to bound how deeply objects nest.
"""

from __future__ import annotations

import io
import math
import operator
import pickle
import pickletools
from pathlib import Path
from typing import Any, Callable

from ..errors import DataError

MAX_PICKLE_BYTES = 512 * 1024 * 1024
MAX_DEPTH = 100  # the report's layout nests about 8 deep
MAX_OPCODES = 20_000_000  # the report's 1.7 MB mlruns.p has 1.1 million
# What the constructors a pickle calls may allocate, beyond the size of the pickle itself: the
# report's layout asks for nothing (its arrays' bytes are in the file).
ALLOCATION_ALLOWANCE = 64 * 1024 * 1024


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


class _Budget:
    """Bytes the constructors called by one pickle may still allocate."""

    def __init__(self, limit: int, source: str):
        self.left = limit
        self.limit = limit
        self.source = source

    def take(self, nbytes: int, what: str) -> None:
        if nbytes > self.left:
            raise UnsafePickleError(
                f"{self.source}: refused to load: {what} would allocate {nbytes:,} bytes, more than a "
                f"pickle of this size may ask for ({self.limit:,} bytes); nothing was run")
        self.left -= nbytes


def _sized(n: object) -> int | None:
    """An integer size argument (bytes(n), bytearray(n)), else None."""
    if isinstance(n, bool) or isinstance(n, (str, bytes, bytearray)):
        return None
    try:
        return operator.index(n)
    except TypeError:
        return None


def _bounded(allowed: dict[tuple[str, str], Any], budget: _Budget) -> dict[tuple[str, str], Any]:
    """The allow-list with every constructor that can allocate by a number checked first."""
    import numpy as np

    def bytes_like(cls):
        def make(*args, **kwargs):
            n = _sized(args[0]) if args else None
            if n is not None:
                budget.take(max(n, 0), f"{cls.__name__}({n})")
            return cls(*args, **kwargs)
        return make

    def array_bytes(shape: Any, dtype: Any) -> int:
        dims = (shape,) if _sized(shape) is not None else tuple(shape)
        count = math.prod(max(int(operator.index(d)), 0) for d in dims)
        return count * np.dtype(dtype if dtype is not None else float).itemsize

    def ndarray(shape, dtype=float, *args, **kwargs):
        budget.take(array_bytes(shape, dtype), f"an array of shape {shape}")
        return np.ndarray(shape, dtype, *args, **kwargs)

    def reconstruct(original):
        def make(subtype, shape, dtype, *args):
            budget.take(array_bytes(shape, dtype), f"an array of shape {shape}")
            # The pickle names numpy.ndarray as the type to make; here that name is the wrapper.
            return original(np.ndarray if subtype is ndarray else subtype, shape, dtype, *args)
        return make

    out = dict(allowed)
    for key in (("builtins", "bytearray"), ("builtins", "bytes")):
        out[key] = bytes_like(allowed[key])
    for key, obj in allowed.items():
        if key[1] == "_reconstruct":
            out[key] = reconstruct(obj)
    out[("numpy", "ndarray")] = ndarray
    return out


# How the nesting check treats each opcode: (kind, fixed argument bytes or -1, items popped below
# a mark or in all, items pushed, in place). Kinds below.
_GENERIC, _MARK, _MEMOIZE, _PUT, _GET, _DUP, _STOP, _TO_MARK, _TEXT, _PREFIXED = range(10)
_IN_PLACE = {"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"}
_LENGTH_PREFIX = {pickletools.TAKEN_FROM_ARGUMENT1: (1, "<B"), pickletools.TAKEN_FROM_ARGUMENT4: (4, "<i"),
                  pickletools.TAKEN_FROM_ARGUMENT4U: (4, "<I"), pickletools.TAKEN_FROM_ARGUMENT8U: (8, "<Q")}


def _opcode_table() -> list:
    table: list = [None] * 256
    for op in pickletools.opcodes:
        before = list(op.stack_before)
        to_mark = pickletools.markobject in before
        if to_mark:
            before = before[:before.index(pickletools.markobject)]
        kind = {"MARK": _MARK, "MEMOIZE": _MEMOIZE, "PUT": _PUT, "BINPUT": _PUT, "LONG_BINPUT": _PUT,
                "GET": _GET, "BINGET": _GET, "LONG_BINGET": _GET, "DUP": _DUP, "STOP": _STOP}.get(
                    op.name, _TO_MARK if to_mark else _GENERIC)
        argn = 0 if op.arg is None else op.arg.n
        table[ord(op.code.encode("latin-1"))] = (kind, argn, len(before), len(op.stack_after),
                                                 op.name in _IN_PLACE, op.arg)
    return table


_OPCODES = _opcode_table()


def _refuse_sparse_memo(source: str) -> int:
    raise UnsafePickleError(f"{source}: refused to load: memo indices far beyond the objects stored; "
                            f"nothing was run")


def check_nesting(data: bytes, source: str, max_depth: int = MAX_DEPTH, max_ops: int = MAX_OPCODES) -> int:
    """Walk the opcode stream without building anything; refuse objects nested deeper than
    max_depth (or a stream of more than max_ops opcodes). Returns the deepest nesting seen.

    Each stack item carries how deeply its object nests; a container op's result nests one
    deeper than what it holds. A malformed stream is left for the unpickler to report.
    """
    import struct

    stack: list[int] = []
    marks: list[int] = []
    memo = bytearray()  # memo index -> how deeply the object stored there nests (0: empty)
    memo_len = 0
    deepest = 0
    pos, end, ops = 0, len(data), 0
    table = _OPCODES
    while pos < end:
        entry = table[data[pos]]
        if entry is None:
            return deepest
        kind, argn, npop, npush, in_place, arg = entry
        pos += 1
        ops += 1
        if ops > max_ops:
            raise UnsafePickleError(f"{source}: refused to load: more than {max_ops:,} pickle operations; "
                                    f"nothing was run")
        value = 0
        if argn > 0:
            if kind == _PUT or kind == _GET:
                value = int.from_bytes(data[pos:pos + argn], "little")
            pos += argn
        elif argn < 0:
            if argn in _LENGTH_PREFIX:
                size, fmt = _LENGTH_PREFIX[argn]
                if pos + size > end:
                    return deepest
                pos += size + struct.unpack_from(fmt, data, pos)[0]
            else:  # text up to a newline (protocol 0): rare, read it the slow way
                stream = io.BytesIO(data)
                stream.seek(pos)
                try:
                    text = arg.reader(stream)
                except ValueError:
                    return deepest
                pos = stream.tell()
                if kind == _PUT or kind == _GET:
                    value = int(text)
        if kind == _GENERIC:
            if npop == 0:
                stack.extend([1] * npush)  # a number, a string, an empty container ...
                continue
            if len(stack) < npop:
                return deepest
            if in_place:  # the container below keeps its place and holds what was above it
                held = max(stack[len(stack) - npop + 1:], default=0)
                del stack[len(stack) - npop + 1:]
                depth = max(stack[-1], held + 1)
                stack[-1] = depth
            else:
                depth = 1 + max(stack[len(stack) - npop:])
                del stack[len(stack) - npop:]
                stack.extend([depth] * npush)
        elif kind == _TO_MARK:
            if not marks:
                return deepest
            mark = marks.pop()
            held = max(stack[mark:], default=0)
            del stack[mark:]
            if len(stack) < npop:
                return deepest
            if in_place and npop:
                depth = max(stack[-1], held + 1)
                stack[-1] = depth
            else:
                depth = 1 + max([held, *stack[len(stack) - npop:]]) if npop else held + 1
                del stack[len(stack) - npop:]
                stack.extend([depth] * npush)
        elif kind == _MARK:
            marks.append(len(stack))
            continue
        elif kind == _MEMOIZE or kind == _PUT:
            # As the unpickler does: MEMOIZE stores at the number of entries so far.
            index = memo_len if kind == _MEMOIZE else value
            if index < len(memo):
                memo_len += memo[index] == 0
            elif index < len(memo) + 1_000_000:
                memo.extend(bytes(index + 1 - len(memo)))
                memo_len += 1
            else:  # a far index: only a malformed or hostile pickle; be safe, assume the worst
                return _refuse_sparse_memo(source)
            memo[index] = min(stack[-1], 255) if stack else 1
            continue
        elif kind == _GET:
            stack.append(memo[value] if value < len(memo) and memo[value] else 1)
            continue
        elif kind == _DUP:
            stack.append(stack[-1] if stack else 1)
            continue
        else:  # STOP
            break
        if depth > deepest:
            deepest = depth
            if deepest > max_depth:
                raise UnsafePickleError(f"{source}: refused to load: objects nested more than {max_depth} "
                                        f"deep; nothing was run")
    return deepest


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only allow-listed globals and never runs anything else.

    allocation_limit bounds what the allowed constructors may allocate in all (see _Budget).
    """

    def __init__(self, file: io.BufferedIOBase, source: str, allocation_limit: int = ALLOCATION_ALLOWANCE):
        super().__init__(file)
        self._source = source
        self._allowed = _bounded({**_numpy_globals(), **_BUILTINS}, _Budget(allocation_limit, source))

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
    """Unpickle bytes with the allow-list, bounded nesting and bounded allocations; any failure
    becomes an UnsafePickleError naming source."""
    try:
        check_nesting(data, source)
        return RestrictedUnpickler(io.BytesIO(data), source, ALLOCATION_ALLOWANCE + len(data)).load()
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
