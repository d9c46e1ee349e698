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
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..inputs import as_positive_int
from .digits import DEFAULT_STEPS, DigitSpikes
from .encoding import encode

_UBYTE = 0x08


#: The most bytes `read_idx` returns by default: MNIST's training images are 47 MB, so 1 GiB leaves room for
#: bigger IDX sets while a tiny gzip that claims (or inflates to) gigabytes is refused before it is read.
MAX_IDX_BYTES = 1 << 30


def read_idx(path: str | os.PathLike, max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """An IDX file (``.gz`` or plain) as a ``uint8`` array of the shape its header gives.

    The file is streamed: the header is read first, the values into one array of the size it gives
    (refused past ``max_bytes``), and a file holding more bytes than its header says is refused after
    reading one byte past the end -- a gzip that inflates to far more than it claims is never inflated.

    Args:
        path: the file; gzip is recognised by its magic bytes, not its name.
        max_bytes: the largest array returned (default 1 GiB).

    Returns:
        A fresh ``uint8`` array.

    Example:
        >>> array = read_idx("t10k-labels-idx1-ubyte.gz")  # doctest: +SKIP
        >>> array.shape, array.dtype  # doctest: +SKIP
        ((10000,), dtype('uint8'))

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not an unsigned-byte IDX file (or not a readable gzip), its size disagrees
            with its header, or it is bigger than ``max_bytes``.
    """
    path = Path(path)
    max_bytes = as_positive_int(max_bytes, "max_bytes")
    if not path.is_file():
        raise FileNotFoundError(f"path: no such file {str(path)!r}")
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    where = f"path: {str(path)!r}"
    try:
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as handle:
            head = handle.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] != _UBYTE:
                raise ValueError(f"{where} is not an unsigned-byte IDX file (expected a header 00 00 08 ..)")
            dims = handle.read(4 * head[3])
            if len(dims) != 4 * head[3]:
                raise ValueError(f"{where} ends inside its IDX header")
            shape = tuple(int(d) for d in np.frombuffer(dims, dtype=">i4"))
            expected = int(np.prod(shape, dtype=np.int64)) if shape else 0
            if any(d < 0 for d in shape) or expected > max_bytes:
                raise ValueError(f"{where}: its header gives shape {shape} ({expected} bytes), more than "
                                 f"max_bytes={max_bytes}; raise max_bytes if the file is really that big")
            values = np.empty(expected, dtype=np.uint8)
            view, filled = memoryview(values), 0  # type: ignore[arg-type]  # an array is a buffer
            while filled < expected:
                got = handle.readinto(view[filled:])
                if not got:
                    break
                filled += got
            extra = handle.read(1)
    except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError; truncation is EOFError
        raise ValueError(f"{where} is not a readable {'gzip' if gzipped else 'IDX'} file "
                         f"({error.__class__.__name__}: {error})") from error
    if filled != expected or extra:
        raise ValueError(f"{where} holds {'more' if extra else filled} values but its header says {shape} "
                         f"({expected})")
    return values.reshape(shape)


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
    """Your MNIST IDX files encoded as spikes ``(B, T, 784)``, like `sc_neurocore.data.load_digits`.

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
