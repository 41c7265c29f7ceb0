"""The restricted unpickler: numpy and builtin containers load; anything that could run code is refused."""

from __future__ import annotations

import builtins
import os
import pickle
import subprocess

import numpy as np
import pytest

from optui.errors import DataError
from optui.export import safe_pickle
from optui.export.safe_pickle import UnsafePickleError


class RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class Evaluates:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (builtins.eval, (f"open({str(self.marker)!r}, 'w').close()",))


class Spawns:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (subprocess.Popen, (["touch", str(self.marker)],))


@pytest.mark.parametrize("payload, refused", [
    (RunsShell, "system"), (Evaluates, "builtins.eval"), (Spawns, "subprocess.Popen")])
def test_code_running_pickles_are_refused_and_nothing_runs(tmp_path, payload, refused):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.p"
    # Hidden inside a legitimate-looking report dict, after real data.
    path.write_bytes(pickle.dumps({"a_loss_histories": [[1.0, 2.0]], "x": payload(marker)}))
    with pytest.raises(UnsafePickleError) as info:
        safe_pickle.load(path)
    message = str(info.value)
    assert str(path) in message and refused in message and "refused" in message
    assert not marker.exists()
    assert isinstance(info.value, DataError)  # the CLI reports it as bad input (exit 2)


def test_hand_written_global_opcode_is_refused(tmp_path):
    # protocol 0: GLOBAL 'os system', then call it with a tuple
    data = b"cos\nsystem\n(Vtouch " + str(tmp_path / "m").encode() + b"\ntR."
    with pytest.raises(UnsafePickleError, match="os.system"):
        safe_pickle.loads(data, "hand.p")
    assert not (tmp_path / "m").exists()


def test_numpy_core_names_from_numpy_1_map_to_numpy_2():
    data = pickle.dumps(np.arange(3, dtype=np.float32), protocol=2)
    data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in data
    np.testing.assert_array_equal(safe_pickle.loads(data), [0, 1, 2])


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_arrays_scalars_dtypes_and_containers_round_trip(protocol):
    obj = {"a": np.arange(6.0).reshape(2, 3), "s": np.float32(1.5), "i": np.int64(7),
           "d": np.dtype("f4"), "t": (1, [2.0, "x"], {3}), "b": b"\x00\xff", "z": np.array(2.0, np.float32)}
    out = safe_pickle.loads(pickle.dumps(obj, protocol=protocol))
    np.testing.assert_array_equal(out["a"], obj["a"])
    assert out["s"] == np.float32(1.5) and out["i"] == 7 and out["d"] == np.dtype("f4")
    assert out["t"] == obj["t"] and out["b"] == obj["b"] and out["z"].shape == ()


def test_file_guards(tmp_path):
    with pytest.raises(UnsafePickleError, match="no such file"):
        safe_pickle.load(tmp_path / "missing.p")
    big = tmp_path / "big.p"
    big.write_bytes(pickle.dumps(list(range(1000))))
    with pytest.raises(UnsafePickleError, match="over the 100-byte limit"):
        safe_pickle.load(big, max_bytes=100)
    empty = tmp_path / "empty.p"
    empty.write_bytes(b"")
    with pytest.raises(UnsafePickleError, match="empty"):
        safe_pickle.load(empty)
    junk = tmp_path / "junk.p"
    junk.write_bytes(b"this is not a pickle")
    with pytest.raises(UnsafePickleError, match="junk.p: not a readable pickle"):
        safe_pickle.load(junk)
    with pytest.raises(UnsafePickleError, match="not a file"):
        safe_pickle.load(tmp_path)
