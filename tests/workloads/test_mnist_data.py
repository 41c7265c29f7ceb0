"""MNIST data sources: IDX parsing and validation, the t10k split, TFDS via mock data."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from optui.errors import DataError, PresetError
from optui.workloads import mnist, mnist_data

SHARED_T10K = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "mnist-t10k"


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    header = np.array([magic, *array.shape], dtype=">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def write_pair(folder: Path, prefix: str, n: int, seed: int = 0, gz: bool = True) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(n,), dtype=np.uint8)
    for stem, data, magic in ((f"{prefix}-images-idx3-ubyte", images, 2051),
                              (f"{prefix}-labels-idx1-ubyte", labels, 2049)):
        raw = idx_bytes(data, magic)
        if gz:
            (folder / (stem + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (folder / stem).write_bytes(raw)
    return images, labels


# ---------------------------------------------------------------- IDX parsing


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_round_trips_gzipped_and_plain(tmp_path, gz):
    images, labels = write_pair(tmp_path, "t10k", 7, gz=gz)
    suffix = ".gz" if gz else ""
    got_images = mnist_data.read_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", "images")
    got_labels = mnist_data.read_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", "labels")
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert got_labels.dtype == np.int32 and got_images.shape == (7, 28, 28)


def test_truncated_file_names_file_and_counts(tmp_path):
    raw = idx_bytes(np.zeros((5, 28, 28), np.uint8), 2051)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(raw[:-100])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.*5 images.*truncated"):
        mnist_data.read_idx(path, "images")


def test_truncated_gzip_is_a_data_error(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((5, 28, 28), np.uint8), 2051))[:-20])
    with pytest.raises(DataError, match="not a complete gzip file"):
        mnist_data.read_idx(path, "images")


def test_wrong_magic_is_rejected(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(idx_bytes(np.zeros((4, 28, 28), np.uint8), 2051))  # an images file
    with pytest.raises(DataError, match=r"magic number 2051, expected 2049"):
        mnist_data.read_idx(path, "labels")


def test_foreign_file_and_wrong_shape_and_bad_labels(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.write_bytes(b"hello")
    with pytest.raises(DataError, match="too short"):
        mnist_data.read_idx(foreign, "images")
    shape = tmp_path / "shape"
    shape.write_bytes(idx_bytes(np.zeros((2, 32, 32), np.uint8), 2051))
    with pytest.raises(DataError, match="32x32"):
        mnist_data.read_idx(shape, "images")
    labels = tmp_path / "labels"
    labels.write_bytes(idx_bytes(np.array([1, 12, 3], np.uint8), 2049))
    with pytest.raises(DataError, match="label 12"):
        mnist_data.read_idx(labels, "labels")


# ---------------------------------------------------------------- IDX folders


def test_folder_with_both_pairs(tmp_path):
    tr_images, tr_labels = write_pair(tmp_path, "train", 12, seed=1)
    te_images, te_labels = write_pair(tmp_path, "t10k", 5, seed=2, gz=False)
    arrays = mnist_data.load_idx(tmp_path)
    np.testing.assert_array_equal(arrays.train_images, tr_images)
    np.testing.assert_array_equal(arrays.test_labels, te_labels)
    with pytest.raises(DataError, match="apply only to a folder with the t10k pair alone"):
        mnist_data.load_idx(tmp_path, 4, 2)


def test_t10k_only_folder_needs_and_applies_an_explicit_split(tmp_path):
    images, labels = write_pair(tmp_path, "t10k", 10)
    with pytest.raises(DataError, match="only the t10k pair.*train_split"):
        mnist_data.load_idx(tmp_path)
    with pytest.raises(DataError, match="exceed the 10 images"):
        mnist_data.load_idx(tmp_path, 8, 3)
    arrays = mnist_data.load_idx(tmp_path, 6, 3)
    np.testing.assert_array_equal(arrays.train_images, images[:6])
    np.testing.assert_array_equal(arrays.test_images, images[7:])
    np.testing.assert_array_equal(arrays.test_labels, labels[7:])


def test_missing_folder_and_half_pairs(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        mnist_data.load_idx(tmp_path / "nope", 1, 1)
    with pytest.raises(DataError, match="no t10k"):
        mnist_data.load_idx(tmp_path, 1, 1)
    write_pair(tmp_path, "t10k", 3)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        mnist_data.load_idx(tmp_path, 1, 1)
    write_pair(tmp_path, "t10k", 3)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.zeros(4, np.uint8), 2049)))
    with pytest.raises(DataError, match="3 images but .* 4 labels"):
        mnist_data.load_idx(tmp_path, 1, 1)


@pytest.mark.skipif(not SHARED_T10K.is_dir(), reason="../shared/data/mnist-t10k not present")
def test_real_t10k_split_matches_published_checksums():
    images = mnist_data.read_idx(SHARED_T10K / "t10k-images-idx3-ubyte.gz", "images")
    labels = mnist_data.read_idx(SHARED_T10K / "t10k-labels-idx1-ubyte.gz", "labels")
    raw_images = idx_bytes(images, 2051)
    raw_labels = idx_bytes(labels.astype(np.uint8), 2049)
    assert hashlib.md5(raw_images).hexdigest() == "2646ac647ad5339dbf082846283269ea"
    assert hashlib.md5(raw_labels).hexdigest() == "27ae3e4e09519cfbb04c329615203637"
    arrays = mnist_data.load_idx(SHARED_T10K, 8000, 2000)
    assert arrays.train_images.shape == (8000, 28, 28) and arrays.test_images.shape == (2000, 28, 28)
    assert sorted(np.unique(arrays.test_labels)) == list(range(10))


# ---------------------------------------------------------------- TFDS


def test_tfds_reads_mock_data_through_the_random_access_source(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=6):
        arrays = mnist_data.load_tfds("mnist", str(tmp_path), download=False)
    assert arrays.train_images.shape == (6, 28, 28) and arrays.train_images.dtype == np.uint8
    assert arrays.test_labels.shape == (6,) and arrays.test_labels.dtype == np.int32
    assert arrays.train_labels.min() >= 0 and arrays.train_labels.max() <= 9
    assert arrays.source.startswith("tfds:mnist")


def test_tfds_offline_and_unprepared_says_where_and_how_out(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(DataError) as err:
        mnist_data.load_tfds("mnist", str(tmp_path / "tfds"), download=False)
    msg = str(err.value)
    assert str(tmp_path / "tfds") in msg
    assert "data.source=idx" in msg and "data.path=DIR" in msg and "array_record" in msg


def test_tfds_failed_download_is_a_data_error(tmp_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")

    def no_network(self, *args, **kwargs):
        raise ConnectionError("network unreachable")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_network)
    with pytest.raises(DataError, match=r"downloading it failed \(ConnectionError: network unreachable"):
        mnist_data.load_tfds("mnist", str(tmp_path / "tfds"), download=True)


def test_tfds_preparation_without_tensorflow_names_the_packages(tmp_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")

    def no_tensorflow(self, *args, **kwargs):
        raise ModuleNotFoundError("No module named 'tensorflow'", name="tensorflow")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_tensorflow)
    with pytest.raises(DataError, match=r"needs the Python packages tensorflow .*missing: tensorflow"):
        mnist_data.load_tfds("mnist", str(tmp_path / "tfds"), download=True)


# ---------------------------------------------------------------- settings


def validate_settings(raw, file):
    """The preset's [data], [model] and [eval] checked against the MNIST spec's declarations."""
    from optui.workloads import validate_settings as validate

    return validate(mnist.workload(), raw, file)


def test_settings_defaults_and_errors():
    out = validate_settings({}, "p.toml")
    assert out.data["source"] == "tfds" and out.data["drop_remainder"] is True
    assert out.eval == {"points": 100, "train_examples": 10_000, "test_examples": 0, "slice": 250}
    assert out.model == {"conv1": 32, "conv2": 64, "dense": 256, "train_conv": "auto"}
    cases = [
        ({"data": {"sorce": "idx"}}, r"p.toml: data.sorce: unknown key"),
        ({"data": {"source": "csv"}}, r"data.source must be one of 'tfds', 'idx'"),
        ({"data": {"source": "idx"}}, r"data.path is required"),
        ({"data": {"path": "x"}}, r"data.path applies only to data.source = 'idx'"),
        ({"data": {"source": "idx", "path": "x", "train_split": 8000}}, r"set together"),
        ({"data": {"drop_remainder": False}}, r"drop_remainder must be true"),
        ({"eval": {"slice": 0}}, r"eval.slice must be an integer in \[1,"),
        ({"eval": {"points": 1.5}}, r"eval.points must be an integer"),
        ({"model": {"width": 3}}, r"model.width: unknown key"),
    ]
    for raw, pattern in cases:
        with pytest.raises(PresetError, match=pattern):
            validate_settings(raw, "p.toml")


def test_eval_slices_pad_and_weight():
    idx, w = mnist.eval_slices(np.arange(7, dtype=np.int32), 3)
    assert idx.shape == (3, 3) and w.sum() == 7
    assert list(idx.ravel()[:7]) == list(range(7)) and list(w.ravel()[7:]) == [0, 0]
    subset = mnist.eval_subset(100, 10, seed=0)
    assert len(set(subset.tolist())) == 10 and subset.max() < 100
    np.testing.assert_array_equal(subset, mnist.eval_subset(100, 10, seed=0))
    assert len(mnist.eval_subset(5, 10, seed=0)) == 5
