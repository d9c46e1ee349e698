"""Handwritten digits as spike trains, with no download: scikit-learn's bundled UCI digits.

scikit-learn ships the UCI "Optical Recognition of Handwritten Digits" test set inside the package: 1,797
grey-level images of 8x8 pixels (values 0..16) from 43 writers, ten classes. `load_digits` scales
them to intensities in ``[0, 1]``, optionally upsamples them to MNIST's 28x28 layout, splits them into a
fixed train / test split and encodes them as spikes ``(B, T, N)``.

* ``size=8``: 64 inputs, the tutorial's 64-32-10 network.
* ``size=28``: each digit is upsampled (bilinear) to 20x20 and centred in a 28x28 frame with a 4-pixel
  empty border, the way MNIST digits sit in their frame: 784 inputs, so the tutorial's MNIST example
  (``test_spikes`` of shape ``(25, 784)``) runs as written on real handwriting.

The split needs no random numbers: within each class, in dataset order, every fifth image (positions
4, 9, 14, ...) is a test image, the others are training images -- 1,442 train and 355 test images, the
same on every machine and every scikit-learn version. The spikes of a split are drawn from a private
generator seeded with ``seed`` (plus a per-split offset, so train and test draws differ).
"""

from __future__ import annotations

import functools
import numbers
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..extras import missing_extra
from ..inputs import as_choice, as_positive_int
from .encoding import encode

SPLITS: tuple[str, ...] = ("train", "test")
SIZES: tuple[int, ...] = (8, 28)
#: Default number of timesteps (the tutorial's MNIST example uses 25).
DEFAULT_STEPS = 25
#: Side of the box a digit fills inside the 28x28 frame (MNIST: 20x20 box, 4-pixel border).
MNIST_BOX = 20
#: Every ``TEST_EVERY``-th image of each class is a test image.
TEST_EVERY = 5


class DigitSpikes(NamedTuple):
    """A spike-encoded split of a digits data set; every field is a fresh tensor the caller owns.

    Attributes:
        spikes: ``(B, T, N)`` float32 0/1 spike trains, ``N = size * size``.
        labels: ``(B,)`` int64 classes 0..9.
        images: ``(B, size, size)`` float32 intensities in ``[0, 1]`` the spikes were encoded from.
        index: ``(B,)`` int64 position of each image in the source data set.
    """

    spikes: Tensor
    labels: Tensor
    images: Tensor
    index: Tensor  # type: ignore[assignment]  # a field named like tuple.index, kept for the API


@functools.lru_cache(maxsize=1)
def _bundled_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 digits as read-only arrays ``(1797, 8, 8)`` in [0, 1] and ``(1797,)`` labels."""
    try:
        from sklearn.datasets import load_digits as sklearn_load_digits
    except ImportError as error:  # an optional dependency
        raise missing_extra("the digits data set needs scikit-learn", "data") from error
    bunch = sklearn_load_digits()
    images = (bunch.images / 16.0).astype(np.float32)
    labels = bunch.target.astype(np.int64)
    images.setflags(write=False)  # cached: nobody may modify it
    labels.setflags(write=False)
    return images, labels


def split_indices(labels: np.ndarray | Tensor, split: str, every: int = TEST_EVERY) -> np.ndarray:
    """Positions of ``split``'s images: within each class, every ``every``-th image (in order) is a test image.

    Args:
        labels: ``(B,)`` integer classes, in data set order.
        split: ``"train"`` or ``"test"``.
        every: one in ``every`` images of each class goes to the test split.

    Returns:
        Sorted ``int64`` positions.

    Example:
        >>> split_indices(np.array([0, 0, 1, 0, 1, 1, 0, 0]), "test", every=2).tolist()
        [1, 4, 6]
    """
    as_choice(split, SPLITS, "split")
    every = as_positive_int(every, "every")
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    # Rank of each image within its class: its position in the sorted order minus where the class starts.
    class_start = np.searchsorted(sorted_labels, sorted_labels, side="left")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(labels)) - class_start
    in_test = rank % every == every - 1
    return np.flatnonzero(in_test if split == "test" else ~in_test).astype(np.int64)


def upsample_to_mnist(images: Tensor) -> Tensor:
    """``(B, h, w)`` intensities -> ``(B, 28, 28)``: bilinear to 20x20, centred with a 4-pixel empty border.

    Example:
        >>> upsample_to_mnist(torch.ones(2, 8, 8)).shape
        torch.Size([2, 28, 28])
    """
    if not isinstance(images, Tensor) or images.ndim != 3:
        raise ValueError(f"images: expected a (B, h, w) tensor, got {getattr(images, 'shape', type(images))}")
    box = torch.nn.functional.interpolate(images[:, None].to(torch.float32), size=(MNIST_BOX, MNIST_BOX),
                                          mode="bilinear", align_corners=False)[:, 0]
    border = (28 - MNIST_BOX) // 2
    frame = torch.nn.functional.pad(box, (border, border, border, border))
    return frame.clamp(0.0, 1.0)


def digit_images(split: str = "test", size: int = 8) -> tuple[Tensor, Tensor, Tensor]:
    """The images of a split, without spike encoding: ``(images (B, size, size), labels (B,), index (B,))``.

    Args:
        split: ``"train"`` (1,442 images) or ``"test"`` (355 images).
        size: ``8`` (the original images) or ``28`` (MNIST layout, see the module docstring).

    Returns:
        Fresh float32 intensities in ``[0, 1]``, int64 labels and int64 positions in the data set.

    Example:
        >>> images, labels, index = digit_images("test", size=28)
        >>> tuple(images.shape), tuple(labels.shape)
        ((355, 28, 28), (355,))
    """
    if size not in SIZES:
        raise ValueError(f"size: expected one of {SIZES}, got {size!r}")
    all_images, all_labels = _bundled_digits()
    index = split_indices(all_labels, split)
    images = torch.tensor(all_images[index])
    if size == 28:
        images = upsample_to_mnist(images)
    return images, torch.tensor(all_labels[index]), torch.tensor(index)


def load_digits(split: str = "test", size: int = 8, n_steps: int = DEFAULT_STEPS, encoding: str = "rate",
                seed: int = 0) -> DigitSpikes:
    """A split of scikit-learn's bundled digits encoded as spikes ``(B, T, N)`` -- no download.

    Args:
        split: ``"train"`` (1,442 images) or ``"test"`` (355 images); see the module docstring.
        size: ``8`` (64 inputs) or ``28`` (784 inputs, MNIST layout).
        n_steps: the number of timesteps ``T``.
        encoding: ``"rate"`` (Bernoulli) or ``"latency"`` (one spike per pixel); see
            `sc_neurocore.data.encoding`.
        seed: seed of the rate coder; the split's draws use ``len(SPLITS) * seed + SPLITS.index(split)``.
            The shipped models were evaluated with ``seed=0``.

    Returns:
        A `DigitSpikes` of fresh tensors.

    Example:
        >>> from sc_neurocore.data import load_digits
        >>> test = load_digits("test")
        >>> tuple(test.spikes.shape), tuple(test.labels.shape)
        ((355, 25, 64), (355,))
    """
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed: expected an int >= 0, got {seed!r}")
    images, labels, index = digit_images(split, size)
    spikes = encode(images.reshape(len(images), -1), n_steps, encoding,
                    seed=len(SPLITS) * int(seed) + SPLITS.index(split))
    return DigitSpikes(spikes, labels, images, index)
