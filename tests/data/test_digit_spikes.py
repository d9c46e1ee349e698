"""The bundled digits: the fixed split, the 28x28 layout, and the spike encoding of each split."""

import numpy as np
import pytest
import torch

from conftest import require_module
from sc_neurocore.data import digit_images, load_digits, split_indices, upsample_to_mnist
from sc_neurocore.data.encoding import encode


@pytest.fixture(scope="module")
def sklearn_digits():
    datasets = require_module("sklearn.datasets", "data")
    return datasets.load_digits()


def test_split_indices_matches_a_per_class_loop():
    labels = np.random.default_rng(0).integers(0, 4, size=103)
    expected_test = []
    for c in range(4):
        positions = [i for i, label in enumerate(labels) if label == c]
        expected_test += positions[4::5]
    assert split_indices(labels, "test").tolist() == sorted(expected_test)
    train = split_indices(labels, "train")
    assert sorted(train.tolist() + expected_test) == list(range(103))


def test_the_split_is_disjoint_complete_and_stratified(sklearn_digits):
    test = split_indices(sklearn_digits.target, "test")
    train = split_indices(sklearn_digits.target, "train")
    assert len(test) == 355 and len(train) == 1442
    assert sorted(np.concatenate([test, train]).tolist()) == list(range(1797))
    per_class = np.bincount(sklearn_digits.target, minlength=10)
    np.testing.assert_array_equal(np.bincount(sklearn_digits.target[test], minlength=10), per_class // 5)


def test_load_digits_8x8_holds_the_sklearn_images(sklearn_digits):
    test = load_digits("test", size=8, n_steps=25)
    assert test.spikes.shape == (355, 25, 64) and test.spikes.dtype == torch.float32
    assert test.labels.dtype == torch.int64 and test.images.shape == (355, 8, 8)
    np.testing.assert_array_equal(test.images.numpy() * 16, sklearn_digits.images[test.index.numpy()])
    np.testing.assert_array_equal(test.labels.numpy(), sklearn_digits.target[test.index.numpy()])
    # Rate coding: no spike where a pixel is dark; the spikes are the documented encoding of the images.
    dark = test.images.reshape(355, 1, 64) == 0
    assert not bool(test.spikes.masked_select(dark.expand_as(test.spikes)).any())
    assert torch.equal(test.spikes, encode(test.images.reshape(355, 64), 25, "rate", seed=1))


def test_load_digits_is_reproducible_and_splits_draw_differently():
    first, again = load_digits("train", seed=3), load_digits("train", seed=3)
    assert torch.equal(first.spikes, again.spikes)
    first.spikes.zero_()  # the caller owns the tensors: the next call is unaffected
    assert load_digits("train", seed=3).spikes.sum() > 0
    assert not torch.equal(load_digits("train", seed=4).spikes, again.spikes)
    train, test = load_digits("train"), load_digits("test")
    assert not set(train.index.tolist()) & set(test.index.tolist())


def test_28x28_variant_has_mnist_layout():
    images, labels, index = digit_images("test", size=28)
    assert images.shape == (355, 28, 28)
    assert float(images.min()) >= 0 and float(images.max()) <= 1
    border = torch.ones(28, 28, dtype=torch.bool)
    border[4:24, 4:24] = False
    assert float(images[:, border].abs().max()) == 0.0  # the 4-pixel frame is empty, as in MNIST
    small, small_labels, small_index = digit_images("test", size=8)
    assert torch.equal(labels, small_labels) and torch.equal(index, small_index)
    assert torch.equal(images, upsample_to_mnist(small))
    # Upsampling keeps where the ink is: a digit's mean intensity barely changes.
    assert torch.allclose(images[:, 4:24, 4:24].mean(dim=(1, 2)), small.mean(dim=(1, 2)), atol=0.03)
    spikes = load_digits("test", size=28, n_steps=25).spikes
    assert spikes.shape == (355, 25, 784)


def test_latency_option():
    test = load_digits("test", n_steps=10, encoding="latency")
    assert test.spikes.shape == (355, 10, 64)
    lit = (test.images.reshape(355, 64) > 0)
    assert torch.equal(test.spikes.sum(dim=1), lit.to(torch.float32))


def test_load_digits_rejects_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        load_digits("validation")
    with pytest.raises(ValueError, match="size"):
        load_digits("test", size=16)
    with pytest.raises(ValueError, match="seed"):
        load_digits("test", seed=-1)
    with pytest.raises(ValueError, match="n_steps"):
        load_digits("test", n_steps=0)
    with pytest.raises(ValueError, match="encoding"):
        load_digits("test", encoding="phase")
