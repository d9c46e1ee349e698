"""The training script: a couple of steps run end to end, reproducibly, and write loadable files."""

import json

import torch

from conftest import require_module
from sc_neurocore.data import load_digits
from sc_neurocore.data.digits import digit_images
from sc_neurocore.data.train import main, round_to_grid, train
from sc_neurocore.loading import load_state_dict
from sc_neurocore.models import LIFNetwork


def test_round_to_grid():
    assert round_to_grid(torch.tensor([0.1, -0.3, 0.126]), 3).tolist() == [0.125, -0.25, 0.125]


def test_two_training_steps_are_reproducible_and_learn():
    require_module("snntorch", "snntorch")
    images, labels, _ = digit_images("train")
    test = load_digits("test")
    runs = [train(images, labels, (test.spikes, test.labels), epochs=2, max_batches=3, seed=7) for _ in range(2)]
    for first, second in zip(runs[0].network.linear_weights(), runs[1].network.linear_weights(), strict=True):
        assert torch.equal(first, second)
    assert runs[0].losses == runs[1].losses and runs[0].test_accuracy == runs[1].test_accuracy
    assert runs[0].losses[1] < runs[0].losses[0]  # the loss falls over the first few steps
    state = torch.get_rng_state()
    initial = train(images, labels, (test.spikes, test.labels), epochs=1, max_batches=1, seed=8)
    assert torch.equal(state, torch.get_rng_state())  # the caller's random state is left alone
    assert not torch.equal(initial.network.linear_weights()[0], runs[0].network.linear_weights()[0])


def test_command_line_writes_loadable_weights(tmp_path, capsys):
    require_module("snntorch", "snntorch")
    assert main(["--size", "8", "--epochs", "1", "--max-batches", "2", "--steps", "10",
                 "--out", str(tmp_path)]) == 0
    assert "test accuracy" in capsys.readouterr().out
    state = load_state_dict(tmp_path / "digits8.safetensors")
    record = json.loads((tmp_path / "digits8.json").read_text())
    assert record["layers"] == [64, 32, 10] and record["n_steps"] == 10 and record["epochs"] == 1
    assert record["command"] == ("python -m sc_neurocore.data.train --size 8 --epochs 1 --max-batches 2 --steps 10 "
                                 f"--out {tmp_path}")
    network = LIFNetwork([state["weights.0"], state["weights.1"]], beta=record["beta"],
                         threshold=record["threshold"])
    test = load_digits("test", n_steps=10)
    accuracy = float((network(test.spikes).argmax(dim=1) == test.labels).to(torch.float64).mean())
    assert abs(accuracy - record["test_accuracy"]) < 1e-6  # the record is measured, not typed
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, nothing left behind


def test_train_rejects_bad_arguments():
    import pytest

    images, labels, _ = digit_images("train")
    test = load_digits("test", n_steps=5)
    with pytest.raises(ValueError, match="train_labels"):
        train(images, labels[:-1], (test.spikes, test.labels))
    with pytest.raises(ValueError, match="learning_rate"):
        train(images, labels, (test.spikes, test.labels), learning_rate=0.0)
    with pytest.raises(ValueError, match="encoding"):
        train(images, labels, (test.spikes, test.labels), encoding="phase")
    with pytest.raises(ValueError, match="epochs"):
        train(images, labels, (test.spikes, test.labels), epochs=0)


def test_command_line_trains_on_your_own_mnist_files(tmp_path, capsys):
    require_module("snntorch", "snntorch")
    import gzip

    import numpy as np

    rng = np.random.default_rng(0)
    for split, n in (("train", 48), ("t10k", 16)):
        for kind, values in (("images-idx3", rng.integers(0, 256, size=(n, 28, 28))),
                             ("labels-idx1", rng.integers(0, 10, size=n))):
            header = bytes([0, 0, 8, values.ndim]) + b"".join(d.to_bytes(4, "big") for d in values.shape)
            content = header + values.astype(np.uint8).tobytes()
            (tmp_path / f"{split}-{kind}-ubyte.gz").write_bytes(gzip.compress(content))
    out = tmp_path / "my-mnist"
    assert main(["--out", str(out), "--epochs", "1", "--max-batches", "1", "--steps", "5",
                 "--mnist-images", str(tmp_path / "train-images-idx3-ubyte.gz"),
                 "--mnist-labels", str(tmp_path / "train-labels-idx1-ubyte.gz"),
                 "--mnist-test-images", str(tmp_path / "t10k-images-idx3-ubyte.gz"),
                 "--mnist-test-labels", str(tmp_path / "t10k-labels-idx1-ubyte.gz")]) == 0
    assert "user MNIST" in capsys.readouterr().out
    state = load_state_dict(out / "mnist.safetensors")
    assert state["weights.0"].shape == (784, 32) and state["weights.1"].shape == (32, 10)
    assert json.loads((out / "mnist.json").read_text())["data"] == "user MNIST (IDX files)"


def test_mnist_options_go_together(tmp_path):
    import pytest

    with pytest.raises(ValueError, match="--mnist-images"):
        main(["--out", str(tmp_path), "--mnist-images", "x"])
