"""MNIST data sources: TensorFlow Datasets (read without TensorFlow) or IDX files from a folder.

Both return host numpy arrays (uint8 images of shape (N, 28, 28), int32 labels); the workload
moves them to the device once. Every failure is a DataError saying what is wrong and where.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

IMAGE_MAGIC = 2051  # IDX: unsigned bytes, 3 dimensions
LABEL_MAGIC = 2049  # IDX: unsigned bytes, 1 dimension
ROWS = COLS = 28
N_CLASSES = 10
# Standard file stems; a ".gz" suffix is optional.
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class MnistArrays:
    train_images: np.ndarray  # (N, 28, 28) uint8
    train_labels: np.ndarray  # (N,) int32
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str  # where the data came from, for run metadata


# ---------------------------------------------------------------- IDX files


# More images or labels than any MNIST-format set holds: refused before reading, so a header
# cannot make optui allocate what it promises (a 3 MB .gz of zeros can claim gigabytes).
MAX_IDX_ITEMS = 1_000_000
_READ_BLOCK = 16 * 2**20


def _read_up_to(handle, count: int) -> bytes:
    """Up to count bytes, in blocks, so a short file costs only what it holds."""
    parts, left = [], count
    while left > 0:
        block = handle.read(min(left, _READ_BLOCK))
        if not block:
            break
        parts.append(block)
        left -= len(block)
    return b"".join(parts)


def read_idx(path: str | Path, kind: str) -> np.ndarray:
    """Parse one IDX file; kind is "images" ((N, 28, 28) uint8) or "labels" ((N,) int32).

    The header is read and checked first; then exactly the bytes it promises, and one more to
    find trailing data. A gzipped file is decompressed as it is read, never whole.
    """
    path = Path(path)
    header_len = 16 if kind == "images" else 8
    expected_magic = IMAGE_MAGIC if kind == "images" else LABEL_MAGIC
    gz = path.suffix == ".gz"
    try:
        with (gzip.open(path, "rb") if gz else path.open("rb")) as handle:
            head = handle.read(header_len)
            if len(head) < header_len:
                raise DataError(f"{path}: {len(head)} bytes is too short for an IDX {kind} header "
                                f"({header_len} bytes); the file is truncated or not MNIST")
            header = np.frombuffer(head, dtype=">u4")
            magic, count = int(header[0]), int(header[1])
            if magic != expected_magic:
                raise DataError(f"{path}: magic number {magic}, expected {expected_magic} for MNIST {kind} "
                                f"(is this an IDX {kind} file?)")
            if count > MAX_IDX_ITEMS:
                raise DataError(f"{path}: header says {count:,} {kind}; optui reads at most "
                                f"{MAX_IDX_ITEMS:,} (MNIST has 70,000)")
            shape: tuple[int, ...] = (count,)
            if kind == "images":
                rows, cols = int(header[2]), int(header[3])
                if (rows, cols) != (ROWS, COLS):
                    raise DataError(f"{path}: images are {rows}x{cols}, MNIST images are {ROWS}x{COLS}")
                shape = (count, rows, cols)
            need = int(np.prod(shape))
            if not gz:  # the size on disk says it all before anything is read
                body_len = path.stat().st_size - header_len
                if body_len != need:
                    what = "truncated" if body_len < need else "has trailing bytes"
                    raise DataError(f"{path}: header says {count:,} {kind} ({need:,} bytes) but the file "
                                    f"holds {body_len:,} bytes after the header: it {what}")
            body = _read_up_to(handle, need)
            if len(body) < need:
                raise DataError(f"{path}: header says {count:,} {kind} ({need:,} bytes) but the file holds "
                                f"{len(body):,} bytes after the header: it is truncated")
            if handle.read(1):
                raise DataError(f"{path}: header says {count:,} {kind} ({need:,} bytes) but the file holds "
                                f"more after them: it has trailing bytes")
    except OSError as exc:
        if gz and not isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
            raise DataError(f"{path}: not a complete gzip file, or a damaged one ({exc})") from None
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (EOFError, zlib.error) as exc:
        raise DataError(f"{path}: not a complete gzip file, or a damaged one ({exc})") from None
    data = np.frombuffer(body, dtype=np.uint8).reshape(shape)
    if kind == "labels":
        if count and int(data.max()) >= N_CLASSES:
            raise DataError(f"{path}: label {int(data.max())} found; MNIST labels are 0-9")
        return data.astype(np.int32)
    return data


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _read_pair(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    img_stem, lbl_stem = IDX_FILES[split]
    img, lbl = _find(folder, img_stem), _find(folder, lbl_stem)
    if img is None and lbl is None:
        return None
    if img is None or lbl is None:
        missing = img_stem if img is None else lbl_stem
        raise DataError(f"{folder}: has one file of the {split} pair but not {missing}[.gz]")
    images, labels = read_idx(img, "images"), read_idx(lbl, "labels")
    if len(images) != len(labels):
        raise DataError(f"{folder}: {img.name} holds {len(images):,} images but {lbl.name} holds "
                        f"{len(labels):,} labels")
    return images, labels


def load_idx(path: str | Path, train_split: int = 0, test_split: int = 0) -> MnistArrays:
    """Read an IDX folder.

    With both the train and t10k pairs, train_split/test_split must be 0 (use them as they are).
    With only the t10k pair, train is its first train_split images and test its last test_split.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DataError(f"data.path {str(path)!r}: no such folder ({folder.absolute()}; a relative "
                        f"path is read from the current folder); expected MNIST IDX files such as "
                        f"t10k-images-idx3-ubyte.gz")
    train, test = _read_pair(folder, "train"), _read_pair(folder, "test")
    if test is None:
        raise DataError(f"{folder}: no t10k-images-idx3-ubyte[.gz] / t10k-labels-idx1-ubyte[.gz] "
                        f"pair found")
    if train is not None:
        if train_split or test_split:
            raise DataError(f"{folder}: holds both the train and t10k pairs; data.train_split and "
                            f"data.test_split apply only to a folder with the t10k pair alone "
                            f"(set them to 0)")
        return MnistArrays(*train, *test, source=f"idx:{folder}")
    n = len(test[0])
    if train_split <= 0 or test_split <= 0:
        raise DataError(f"{folder}: holds only the t10k pair ({n:,} images); set data.train_split "
                        f"and data.test_split (for example 8000 and 2000) to split it")
    if train_split + test_split > n:
        raise DataError(f"{folder}: data.train_split {train_split:,} + data.test_split "
                        f"{test_split:,} exceed the {n:,} images of the t10k pair")
    images, labels = test
    return MnistArrays(images[:train_split], labels[:train_split],
                       images[n - test_split:], labels[n - test_split:],
                       source=f"idx:{folder} (t10k first {train_split} / last {test_split})")


# ---------------------------------------------------------------- TensorFlow Datasets


def _default_data_dir() -> str:
    return os.environ.get("TFDS_DATA_DIR") or str(Path("~/tensorflow_datasets").expanduser())


def _stack(source: Any, label: str) -> tuple[np.ndarray, np.ndarray]:
    """All records of a random-access TFDS split as (images, labels)."""
    n = len(source)
    images = np.empty((n, ROWS, COLS), np.uint8)
    labels = np.empty((n,), np.int32)
    chunk = 4096
    for start in range(0, n, chunk):
        keys = list(range(start, min(n, start + chunk)))
        try:
            records = source.__getitems__(keys)
        except (AttributeError, TypeError):  # sources that only support one record at a time
            records = [source[k] for k in keys]
        for k, rec in zip(keys, records):
            images[k] = np.asarray(rec["image"]).reshape(ROWS, COLS)
            labels[k] = int(rec["label"])
    if n and (labels.min() < 0 or labels.max() >= N_CLASSES):
        raise DataError(f"TFDS {label}: labels outside 0-9")
    return images, labels


def _ways_out(data_dir: str) -> str:
    return ("Ways out: copy a prepared TFDS data folder (made elsewhere with "
            "tfds.builder('mnist').download_and_prepare(file_format='array_record')) to "
            f"{data_dir} or set data.data_dir to it; or use IDX files with "
            "--set data.source=idx --set data.path=DIR (for example ../shared/data/mnist-t10k "
            "with --set data.train_split=8000 --set data.test_split=2000)")


def _load_via_tensorflow(builder: Any, name: str) -> MnistArrays:
    """A data_dir prepared in TFRecord format (TFDS's old default) needs TensorFlow to read."""
    import tensorflow_datasets as tfds

    out = []
    for split in ("train", "test"):
        ds = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
        out += [np.asarray(ds["image"]).reshape(-1, ROWS, COLS).astype(np.uint8),
                np.asarray(ds["label"]).astype(np.int32)]
    return MnistArrays(*out, source=f"tfds:{name} (tfrecord) at {builder.data_dir}")


def load_tfds(name: str = "mnist", data_dir: str = "", download: bool = True) -> MnistArrays:
    """MNIST from TensorFlow Datasets via its random-access (ArrayRecord) data source.

    Prepared data is read without TensorFlow. When it is missing and download is true, TFDS
    downloads and prepares it in ArrayRecord format first.
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError as exc:
        raise DataError(f"data.source = 'tfds' needs the tensorflow-datasets package ({exc}); "
                        "install it or use --set data.source=idx --set data.path=DIR") from None
    where = data_dir or _default_data_dir()
    kwargs = {"data_dir": data_dir} if data_dir else {}

    def read() -> MnistArrays:
        arrays = []
        for split in ("train", "test"):
            source = tfds.data_source(name, split=split, download=False, **kwargs)
            arrays += list(_stack(source, f"{name}/{split}"))
        return MnistArrays(*arrays, source=f"tfds:{name} at {where}")

    try:
        return read()
    except DataError:
        raise
    except Exception as first:  # TFDS raises assorted types for "not prepared here"
        builder = _builder(tfds, name, kwargs)
        if builder is not None and _prepared_as_tfrecord(builder):
            try:
                return _load_via_tensorflow(builder, name)
            except ImportError:
                raise DataError(
                    f"TFDS {name} at {builder.data_dir} is prepared in TFRecord format, which "
                    "needs TensorFlow to read. Prepare it again with file_format='array_record' "
                    "or install tensorflow. " + _ways_out(where)) from None
        if not download:
            raise DataError(f"TFDS {name} is not prepared: {_why_unreadable(builder, first)}, and "
                            f"data.download is false. " + _ways_out(where)) from None
    try:
        builder = tfds.builder(name, file_format="array_record", **kwargs)
        builder.download_and_prepare(file_format="array_record")
    except ImportError as exc:  # TFDS's MNIST builder needs TensorFlow to prepare the data
        raise DataError(f"TFDS {name} is not prepared under {where}, and preparing it needs the "
                        f"Python packages tensorflow and importlib_resources (missing: "
                        f"{getattr(exc, 'name', None) or exc}). " + _ways_out(where)) from None
    except Exception as exc:
        raise DataError(f"TFDS {name} is not prepared under {where}, and downloading it failed "
                        f"({_short(exc)}); downloading needs internet access to the MNIST "
                        f"mirrors. " + _ways_out(where)) from None
    try:
        return read()
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"TFDS {name} was prepared under {where} but cannot be read "
                        f"({_short(exc)})") from None


def _builder(tfds: Any, name: str, kwargs: dict) -> Any:
    try:
        return tfds.builder(name, **kwargs)
    except Exception:
        return None


def _why_unreadable(builder: Any, exc: BaseException) -> str:
    try:
        if builder is not None and not builder.is_prepared():
            return f"TFDS looked in {builder.data_dir} and found no prepared copy"
    except Exception:
        pass
    return _short(exc)


def _prepared_as_tfrecord(builder: Any) -> bool:
    try:
        fmt = builder.info.file_format
        return bool(builder.is_prepared()) and fmt is not None and "tfrecord" in str(fmt).lower()
    except Exception:
        return False


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


# ---------------------------------------------------------------- dispatch


def load(settings: dict[str, Any]) -> MnistArrays:
    """The arrays for a validated [data] table (see mnist.DATA_SETTINGS)."""
    if settings["source"] == "idx":
        if not settings["path"]:
            raise DataError("data.path is required when data.source = 'idx' (a folder of MNIST "
                            "IDX files)")
        return load_idx(settings["path"], settings["train_split"], settings["test_split"])
    return load_tfds(settings["name"], settings["data_dir"], settings["download"])
