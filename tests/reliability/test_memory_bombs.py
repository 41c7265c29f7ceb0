"""Case 7: small files that ask for big memory, and studies whose memory has no bound.

A 37-byte pickle calling bytearray(20_000_000_000), a pickle whose tuples nest a hundred thousand
deep (hashing them crashed Python), a small .gz that decompresses to gigabytes before its
header is read, and replicates.count = 100,000: each is refused with exit 2 and a reason, or
planned, before it allocates what it asks for.
"""

from __future__ import annotations

import gzip
import json
import resource
import subprocess
import tracemalloc
import zlib

import numpy as np
import pytest

from optui.export import safe_pickle
from optui.export.safe_pickle import UnsafePickleError

from support.common import ROOT, optui_command

PROTO = b"\x80\x04"


def global_(module: str, name: str) -> bytes:
    return b"\x8c" + bytes([len(module)]) + module.encode() + b"\x8c" + bytes([len(name)]) + name.encode() + b"\x93"


def int_arg(n: int) -> bytes:
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


BYTEARRAY_BOMB = PROTO + global_("builtins", "bytearray") + int_arg(20_000_000_000) + b"\x85R."


def nested_tuples(depth: int) -> bytes:
    """A frozenset holding one tuple nested `depth` deep: hashing it recursed until Python crashed."""
    return PROTO + b"(" + b")" + b"\x85" * depth + b"\x91."


def test_case_7_a_37_byte_pickle_cannot_allocate_20_gb():
    assert len(BYTEARRAY_BOMB) < 40
    tracemalloc.start()
    try:
        with pytest.raises(UnsafePickleError, match=r"bytearray\(20000000000\) would allocate"):
            safe_pickle.loads(BYTEARRAY_BOMB, "bomb.p")
        assert tracemalloc.get_traced_memory()[1] < 50 * 2**20
    finally:
        tracemalloc.stop()


def test_case_7_arrays_that_a_pickle_asks_numpy_to_make_are_bounded():
    # numpy's own reconstructor, asked for a 10**12-element array of a 1,000-byte dtype
    p = (PROTO + global_("numpy.core.multiarray", "_reconstruct") + global_("numpy", "ndarray")
         + int_arg(10**12) + b"\x85" + global_("numpy", "dtype") + b"\x8c\x05V1000\x85R" + b"\x87R.")
    with pytest.raises(UnsafePickleError, match="would allocate"):
        safe_pickle.loads(p, "array-bomb.p")
    # ... and the ordinary case still loads: an array pickled by numpy itself
    import pickle

    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(safe_pickle.loads(pickle.dumps(a, protocol=2), "a.p"), a)


def test_case_7_deeply_nested_pickle_is_refused_not_a_crash(tmp_path):
    bomb = tmp_path / "deep.p"
    bomb.write_bytes(nested_tuples(200_000))
    assert bomb.stat().st_size < 210_000
    result = subprocess.run(optui_command() + ["import", str(bomb), "--store", str(tmp_path / "runs")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "nested more than" in result.stderr and "Traceback" not in result.stderr


def test_case_7_nesting_through_the_memo_is_counted():
    # 60 levels, memoised, fetched back and wrapped in 60 more: 120 deep in all
    inner = b")" + b"\x85" * 60 + b"\x94"  # MEMOIZE
    p = PROTO + inner + b"0" + b"h\x00" + b"\x85" * 60 + b"."  # POP, BINGET 0, TUPLE1 x 60
    with pytest.raises(UnsafePickleError, match="nested more than 100"):
        safe_pickle.loads(p, "memo.p")
    assert safe_pickle.check_nesting(PROTO + inner + b".", "ok.p") == 61


def gz_bomb(path, count: int, extra_zeros: int) -> None:
    """An IDX images .gz whose header promises `count` images, followed by many more zeros."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip container
    with open(path, "wb") as f:
        f.write(comp.compress(np.array([2051, count, 28, 28], ">u4").tobytes()))
        block = bytes(16 * 2**20)
        left = count * 784 + extra_zeros
        while left > 0:
            f.write(comp.compress(block[:min(left, len(block))]))
            left -= len(block)
        f.write(comp.flush())


def test_case_7_idx_header_is_checked_before_decompressing(tmp_path):
    from optui.errors import DataError
    from optui.workloads.mnist_data import read_idx

    bomb = tmp_path / "t10k-images-idx3-ubyte.gz"
    gz_bomb(bomb, 10, 512 * 2**20)  # 10 images, then half a gigabyte of zeros
    assert bomb.stat().st_size < 1_000_000
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="trailing bytes"):
            read_idx(bomb, "images")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, peak  # never the whole file decompressed

    huge = tmp_path / "huge" / "t10k-images-idx3-ubyte.gz"
    huge.parent.mkdir()
    with gzip.open(huge, "wb") as f:
        f.write(np.array([2051, 4_000_000_000, 28, 28], ">u4").tobytes())
    with pytest.raises(DataError, match="header says 4,000,000,000 images"):
        read_idx(huge, "images")


def limit_memory(gib: int):
    """preexec_fn: a safety net, so that a study that does try to allocate fails fast here."""
    def apply():
        resource.setrlimit(resource.RLIMIT_AS, (gib * 2**30, gib * 2**30))
    return apply


def test_case_7_a_hundred_thousand_replicates_get_an_estimate_and_a_refusal(cli, shared_data):
    # The report's CNN: about 10 MB of parameters and Adam state per replicate.
    args = ["run", ROOT / "presets" / "mnist-offline.toml", "--headless", "--no-export",
            "--set", f"data.path={shared_data / 'mnist-t10k'}", "--config", "adam-default",
            "--replicates", "100000"]
    result = subprocess.run(optui_command() + [str(a) for a in args], cwd=cli.cwd, env=cli.env,
                            capture_output=True, text=True, timeout=300, preexec_fn=limit_memory(16))
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "100,000 replicates needs about" in result.stderr and "GiB" in result.stderr, result.stderr
    assert "train at most" in result.stderr and "Traceback" not in result.stderr
    assert "running mnist-offline" not in result.stdout  # refused before any training
    assert json.loads(cli("runs", "--json").stdout) == []


def test_case_7_replicates_that_fit_only_in_smaller_calls_get_a_plan():
    from optui.study import presets
    from optui.engine import memory
    from optui.service import build_workload, plan_units, resolve_strategy
    from support.common import tiny_preset_text

    study = presets.loads(tiny_preset_text(replicates=1000, iterations=20, points=2), "tiny.toml")
    workload = build_workload(study)
    units = plan_units(study, workload)
    strategy = resolve_strategy(study, workload)
    needs = memory.unit_needs(workload, units, study.eval_points)
    state = max(n.device_bytes for n in needs)
    per_call = 1000 * max(n.working_bytes_per_member for n in needs)
    # Free memory for the states and a tenth of the calls: the plan is about a tenth of the members.
    free = int((state + per_call / 10 + memory.reserve_bytes()) / memory.USABLE_SHARE)
    with pytest.warns(UserWarning, match="training .* at a time"):
        planned = memory.fit(strategy, workload, units, study.eval_points, free=(free, 10 * free, "test"))
    assert 50 <= planned.max_members <= 150
    assert memory.fit(strategy, workload, units, study.eval_points, free=(100 * free, 100 * free, "test")) is strategy
