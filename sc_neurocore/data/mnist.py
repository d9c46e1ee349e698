"""Your own copy of MNIST, read from its IDX files, encoded as spikes like the bundled digits.

sc-neurocore downloads nothing. If you have MNIST (the four ``*-idx?-ubyte`` files, gzipped or not, as
distributed by LeCun et al. and mirrored by torchvision under ``MNIST/raw/``), read it with:

    from sc_neurocore.data import load_mnist
    test = load_mnist("MNIST/raw/t10k-images-idx3-ubyte.gz", "MNIST/raw/t10k-labels-idx1-ubyte.gz",
                      n_steps=25, limit=1000)
    test.spikes.shape          # (1000, 25, 784): the tutorial's test_spikes are test.spikes[i]

and train a 784-32-10 network on it with the same script as the shipped models:

    python -m sc_neurocore.data.train --out my-mnist \\
        --mnist-images MNIST/raw/train-images-idx3-ubyte.gz --mnist-labels MNIST/raw/train-labels-idx1-ubyte.gz \\
        --mnist-test-images MNIST/raw/t10k-images-idx3-ubyte.gz --mnist-test-labels MNIST/raw/t10k-labels-idx1-ubyte.gz

then load the weights with ``load_state_dict("my-mnist/mnist.safetensors")`` (``weights.0``, ``weights.1``)
or ``LIFNetwork``. The shipped ``size=28`` model was trained on upsampled scikit-learn digits, which sit in
the 28x28 frame the way MNIST digits do, but it is not an MNIST model.

IDX format: a big-endian header ``0x00 0x00 <type 0x08 = ubyte> <n dims>``, one big-endian ``int32`` per
dimension, then the values. Images are ``(n, 28, 28)`` bytes 0..255, labels ``(n,)`` bytes 0..9.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..inputs import as_positive_int
from .digits import DEFAULT_STEPS, DigitSpikes
from .encoding import encode

_UBYTE = 0x08


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An IDX file (``.gz`` or plain) as a ``uint8`` array of the shape its header gives.

    Args:
        path: the file; gzip is recognised by its magic bytes, not its name.

    Returns:
        A fresh ``uint8`` array.

    Example:
        >>> array = read_idx("t10k-labels-idx1-ubyte.gz")  # doctest: +SKIP
        >>> array.shape, array.dtype  # doctest: +SKIP
        ((10000,), dtype('uint8'))

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not an unsigned-byte IDX file, or its size disagrees with its header.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no such file {str(path)!r}")
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    with opener(path, "rb") as handle:
        content = handle.read()
    if len(content) < 4 or content[0] != 0 or content[1] != 0 or content[2] != _UBYTE:
        raise ValueError(f"path: {str(path)!r} is not an unsigned-byte IDX file (expected a header 00 00 08 ..)")
    n_dims = content[3]
    header = 4 + 4 * n_dims
    shape = tuple(int(d) for d in np.frombuffer(content[4:header], dtype=">i4"))
    expected = int(np.prod(shape)) if shape else 0
    if len(content) - header != expected:
        raise ValueError(f"path: {str(path)!r} holds {len(content) - header} values but its header says "
                         f"{shape} ({expected})")
    return np.frombuffer(content, dtype=np.uint8, offset=header).reshape(shape).copy()


def read_mnist(images_path: str | os.PathLike, labels_path: str | os.PathLike,
               limit: int | None = None) -> tuple[Tensor, Tensor]:
    """MNIST images ``(B, 28, 28)`` float32 in ``[0, 1]`` and labels ``(B,)`` int64 from IDX files.

    Args:
        images_path: the ``*-images-idx3-ubyte[.gz]`` file.
        labels_path: the matching ``*-labels-idx1-ubyte[.gz]`` file.
        limit: keep only the first ``limit`` images (``None``: all).

    Returns:
        ``(images, labels)``, fresh tensors.

    Example:
        >>> images, labels = read_mnist("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")  # doctest: +SKIP
        >>> images.shape  # doctest: +SKIP
        torch.Size([60000, 28, 28])
    """
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"images_path, labels_path: expected (n, h, w) images and (n,) labels, got "
                         f"{images.shape} and {labels.shape}")
    if limit is not None:
        limit = as_positive_int(limit, "limit")
        images, labels = images[:limit], labels[:limit]
    return torch.from_numpy(images).to(torch.float32) / 255.0, torch.from_numpy(labels).to(torch.int64)


def load_mnist(images_path: str | os.PathLike, labels_path: str | os.PathLike, n_steps: int = DEFAULT_STEPS,
               encoding: str = "rate", seed: int = 0, limit: int | None = None) -> DigitSpikes:
    """Your MNIST IDX files encoded as spikes ``(B, T, 784)``, like `load_digits`.

    Args:
        images_path, labels_path: IDX files (see the module docstring), gzipped or not.
        n_steps: timesteps ``T``.
        encoding: ``"rate"`` or ``"latency"``.
        seed: the rate coder's seed.
        limit: keep only the first ``limit`` images.

    Returns:
        A `DigitSpikes` (``index`` is the position in the file).

    Example:
        >>> test = load_mnist("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", limit=100)  # doctest: +SKIP
        >>> test.spikes.shape  # doctest: +SKIP
        torch.Size([100, 25, 784])
    """
    images, labels = read_mnist(images_path, labels_path, limit)
    spikes = encode(images.reshape(len(images), -1), n_steps, encoding, seed=seed)
    return DigitSpikes(spikes, labels, images, torch.arange(len(labels)))
