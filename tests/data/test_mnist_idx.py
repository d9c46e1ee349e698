"""Reading a user's MNIST IDX files (plain and gzipped), written here in the real format."""

import gzip
import struct

import numpy as np
import pytest
import torch

from sc_neurocore.data import load_mnist, read_idx, read_mnist


def write_idx(path, array, compress=False):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">i", d) for d in array.shape)
    content = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(content) if compress else content)


@pytest.fixture()
def mnist_files(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(6, 28, 28))
    labels = rng.integers(0, 10, size=6)
    write_idx(tmp_path / "images-idx3-ubyte.gz", images, compress=True)
    write_idx(tmp_path / "labels-idx1-ubyte", labels)
    return tmp_path / "images-idx3-ubyte.gz", tmp_path / "labels-idx1-ubyte", images, labels


def test_read_idx_plain_and_gzip(mnist_files):
    images_path, labels_path, images, labels = mnist_files
    np.testing.assert_array_equal(read_idx(images_path), images)
    np.testing.assert_array_equal(read_idx(labels_path), labels)


def test_load_mnist_scales_and_encodes(mnist_files):
    images_path, labels_path, images, labels = mnist_files
    pixels, classes = read_mnist(images_path, labels_path, limit=4)
    assert pixels.shape == (4, 28, 28) and torch.equal(classes, torch.as_tensor(labels[:4]))
    assert torch.allclose(pixels, torch.as_tensor(images[:4] / 255.0, dtype=torch.float32))
    spikes = load_mnist(images_path, labels_path, n_steps=7, encoding="latency")
    assert spikes.spikes.shape == (6, 7, 784)
    assert torch.equal(spikes.spikes.sum(dim=1), (spikes.images.reshape(6, 784) > 0).to(torch.float32))


def test_bad_files(tmp_path, mnist_files):
    images_path, labels_path, _, _ = mnist_files
    with pytest.raises(FileNotFoundError, match="path"):
        read_idx(tmp_path / "missing")
    (tmp_path / "text").write_text("not an idx file")
    with pytest.raises(ValueError, match="IDX"):
        read_idx(tmp_path / "text")
    truncated = tmp_path / "truncated"
    truncated.write_bytes(labels_path.read_bytes()[:-1])
    with pytest.raises(ValueError, match="header"):
        read_idx(truncated)
    with pytest.raises(ValueError, match="labels"):
        read_mnist(images_path, images_path)
