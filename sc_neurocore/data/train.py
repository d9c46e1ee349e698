"""Train the shipped digit networks: surrogate-gradient BPTT with fixed seeds, on the CPU in minutes.

Run ``python -m sc_neurocore.data.train --size 8 --out sc_neurocore/data`` (and ``--size 28``) to
reproduce the shipped ``digits{size}.safetensors`` / ``.json``. The network is built with
`snntorch_sequential` (snnTorch ``Leaky`` neurons, arctan surrogate
gradient) and trained through time (BPTT) on output spike counts with a cross-entropy loss
(snnTorch's ``ce_count_loss``):

    loss = CE(softmax(sum_t s_out[t]), label)

Each epoch draws fresh rate-coded spikes of the training images (a seeded generator per batch), so the
network cannot memorise one draw. After training the weights are rounded to a grid of ``1/256`` (see
`sc_neurocore.data.pretrained`), loaded into an `LIFNetwork` and
evaluated once on the test split, encoded with ``seed=0`` exactly as `load_digits` gives it; that
accuracy is what the ``.json`` records. The test split is never used to choose anything.

To train on your own copy of MNIST instead, pass ``--mnist-images`` / ``--mnist-labels`` (IDX files, see
`sc_neurocore.data.load_mnist`); the test accuracy is then measured on ``--mnist-test-images`` /
``--mnist-test-labels``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..atomic import atomic_path, atomic_write
from ..inputs import as_choice, as_positive_int
from ..models import LIFNetwork
from .digits import DEFAULT_STEPS, DigitSpikes, digit_images, load_digits
from .encoding import ENCODINGS, encode
from .pretrained import WEIGHT_FRACTION_BITS, snntorch_sequential, snntorch_spike_counts

#: Defaults of the shipped models (the command line exposes each).
HIDDEN = 32
BETA = 0.9
THRESHOLD = 1.0
EPOCHS = 30
BATCH_SIZE = 64
LEARNING_RATE = 5e-3
SEED = 0


class TrainingResult(NamedTuple):
    """What `train` returns.

    Attributes:
        network: the trained network with grid-rounded weights.
        test_accuracy: its accuracy on the test spikes.
        losses: mean training loss per epoch.
        seconds: wall-clock training time.
    """

    network: LIFNetwork
    test_accuracy: float
    losses: list[float]
    seconds: float


def round_to_grid(weight: Tensor, fraction_bits: int = WEIGHT_FRACTION_BITS) -> Tensor:
    """``weight`` rounded to the nearest multiple of ``2**-fraction_bits`` (a new tensor).

    Example:
        >>> round_to_grid(torch.tensor([0.1, -0.3]), 2).tolist()
        [0.0, -0.25]
    """
    scale = 2.0 ** fraction_bits
    return torch.round(weight.detach() * scale) / scale


def accuracy(network: Any, spikes: Tensor, labels: Tensor) -> float:
    """Share of samples whose largest output (ties: lowest index) is the label.

    Args:
        network: a batched model ``(B, T, N) -> (B, C)``.
        spikes: ``(B, T, N)`` inputs.
        labels: ``(B,)`` classes.

    Returns:
        The accuracy in ``[0, 1]``.

    Example:
        >>> from sc_neurocore.data import load_digits, pretrained_network
        >>> test = load_digits("test")
        >>> accuracy(pretrained_network(8), test.spikes, test.labels) >= 0.9
        True
    """
    with torch.no_grad():
        return float((network(spikes).argmax(dim=1) == labels).to(torch.float64).mean())


def train(train_images: Tensor, train_labels: Tensor, test: DigitSpikes | tuple[Tensor, Tensor], *,
          hidden: int = HIDDEN, n_steps: int = DEFAULT_STEPS, encoding: str = "rate", beta: float = BETA,
          threshold: float = THRESHOLD, epochs: int = EPOCHS, batch_size: int = BATCH_SIZE,
          learning_rate: float = LEARNING_RATE, seed: int = SEED, max_batches: int | None = None,
          log: Any = None) -> TrainingResult:
    """Train an ``N-hidden-10`` LIF network with surrogate-gradient BPTT (see the module docstring).

    Args:
        train_images: ``(B, ...)`` intensities in ``[0, 1]`` (flattened to ``(B, N)``).
        train_labels: ``(B,)`` integer classes.
        test: ``(spikes (B, T, N), labels (B,))`` to measure the final accuracy on.
        hidden: hidden layer size.
        n_steps: timesteps per sample.
        encoding: ``"rate"`` or ``"latency"``.
        beta, threshold: LIF parameters of every layer.
        epochs: passes over the training set.
        batch_size: samples per gradient step.
        learning_rate: Adam's step size.
        seed: seeds the initial weights, the batch order and the spike draws.
        max_batches: stop each epoch after this many batches (``None``: all); for smoke tests.
        log: a callable taking one line of progress text (``None``: silent).

    Returns:
        A `TrainingResult`.

    Example:
        >>> from sc_neurocore.data import load_digits
        >>> from sc_neurocore.data.digits import digit_images
        >>> images, labels, _ = digit_images("train")
        >>> result = train(images, labels, load_digits("test")[:2], epochs=1, max_batches=2)
        >>> 0.0 <= result.test_accuracy <= 1.0
        True
    """
    as_choice(encoding, ENCODINGS, "encoding")
    hidden, epochs, batch_size = (as_positive_int(hidden, "hidden"), as_positive_int(epochs, "epochs"),
                                  as_positive_int(batch_size, "batch_size"))
    if not isinstance(learning_rate, (int, float)) or isinstance(learning_rate, bool) or not 0 < learning_rate < 1e3:
        raise ValueError(f"learning_rate: expected a positive float, got {learning_rate!r}")
    if max_batches is not None:
        max_batches = as_positive_int(max_batches, "max_batches")
    intensities = torch.as_tensor(train_images).reshape(len(train_images), -1).to(torch.float32)
    labels = torch.as_tensor(train_labels, dtype=torch.long)
    if labels.shape != (len(intensities),):
        raise ValueError(f"train_labels: expected one label per image ({len(intensities)},), got shape "
                         f"{tuple(labels.shape)}")
    n_inputs, n_classes = intensities.shape[1], int(labels.max()) + 1
    test_spikes, test_labels = test[0], test[1]

    # nn.Linear's default initialisation draws from the global generator: seed it, and give the caller's
    # random state back afterwards.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        initial = [torch.nn.Linear(n_inputs, hidden, bias=False).weight.detach().T,
                   torch.nn.Linear(hidden, n_classes, bias=False).weight.detach().T]
    model = snntorch_sequential(initial, beta=beta, threshold=threshold)
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    order_generator = torch.Generator().manual_seed(seed)
    loss_function = torch.nn.CrossEntropyLoss()

    start = time.perf_counter()
    losses = []
    for epoch in range(epochs):
        order = torch.randperm(len(labels), generator=order_generator)
        batches = order.split(batch_size)[:max_batches]
        total = 0.0
        for batch in batches:
            draw_seed = int(torch.randint(2**31 - 1, (1,), generator=order_generator))
            spikes = encode(intensities[batch], n_steps, encoding, seed=draw_seed)
            counts = snntorch_spike_counts(model, spikes)
            loss = loss_function(counts, labels[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach())
        losses.append(total / len(batches))
        if log is not None:
            log(f"epoch {epoch + 1:>3d}/{epochs}: loss {losses[-1]:.4f} ({time.perf_counter() - start:.0f} s)")
    seconds = time.perf_counter() - start

    weights = [round_to_grid(module.weight.T) for module in model if isinstance(module, torch.nn.Linear)]
    network = LIFNetwork(weights, beta=beta, threshold=threshold, reset="subtract")
    return TrainingResult(network, accuracy(network, test_spikes, test_labels), losses, seconds)


def save(result: TrainingResult, folder: str | Path, name: str, config: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``folder/name.safetensors`` (the network's ``state_dict``) and ``folder/name.json``, atomically.

    Args:
        result: what `train` returned.
        folder: the output folder (created if missing).
        name: the file name stem (``digits8`` for the shipped 8x8 model).
        config: what to record beside the measured accuracy, loss and time (hyperparameters, command).

    Returns:
        The paths of the weights and of the record.

    Example:
        >>> import tempfile
        >>> from sc_neurocore.data import load_digits
        >>> from sc_neurocore.data.digits import digit_images
        >>> images, labels, _ = digit_images("train")
        >>> result = train(images, labels, load_digits("test")[:2], epochs=1, max_batches=1)
        >>> [path.name for path in save(result, tempfile.mkdtemp(), "digits8", {"seed": 0})]
        ['digits8.safetensors', 'digits8.json']
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights_path, config_path = folder / f"{name}.safetensors", folder / f"{name}.json"
    state = {key: value.detach().contiguous() for key, value in result.network.state_dict().items()}
    with atomic_path(weights_path) as temporary:
        save_file(state, str(temporary))
    record = dict(config, test_accuracy=round(result.test_accuracy, 6),
                  final_loss=round(result.losses[-1], 6), training_seconds=round(result.seconds, 1))
    with atomic_write(config_path) as handle:
        json.dump(record, handle, indent=2)
        handle.write("\n")
    return weights_path, config_path


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m sc_neurocore.data.train`` (every `train` option)."""
    parser = argparse.ArgumentParser(prog="python -m sc_neurocore.data.train", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, choices=(8, 28), default=8, help="8x8 digits or the 28x28 variant")
    parser.add_argument("--out", default=".", help="folder for digits{size}.safetensors and .json")
    parser.add_argument("--hidden", type=int, default=HIDDEN)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="timesteps per sample")
    parser.add_argument("--encoding", choices=ENCODINGS, default="rate")
    parser.add_argument("--beta", type=float, default=BETA)
    parser.add_argument("--threshold", type=float, default=THRESHOLD)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--lr", type=float, default=LEARNING_RATE)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--max-batches", type=int, default=None, help="batches per epoch (smoke tests)")
    parser.add_argument("--name", default=None, help="file name stem (default: digits{size}, or mnist)")
    parser.add_argument("--mnist-images", help="your MNIST training images (IDX, optionally .gz)")
    parser.add_argument("--mnist-labels", help="your MNIST training labels (IDX)")
    parser.add_argument("--mnist-test-images", help="your MNIST test images (IDX)")
    parser.add_argument("--mnist-test-labels", help="your MNIST test labels (IDX)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Train, evaluate once on the test split and write the weights and their record; returns 0."""
    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)  # small per-step ops: one thread is fastest and the result does not vary
    mnist = [args.mnist_images, args.mnist_labels, args.mnist_test_images, args.mnist_test_labels]
    if any(mnist):
        if not all(mnist):
            raise ValueError("--mnist-images, --mnist-labels, --mnist-test-images and --mnist-test-labels "
                             "go together")
        from .mnist import load_mnist, read_mnist

        images, labels = read_mnist(args.mnist_images, args.mnist_labels)
        test = load_mnist(args.mnist_test_images, args.mnist_test_labels, n_steps=args.steps,
                          encoding=args.encoding, seed=0)
        name, source = args.name or "mnist", "user MNIST (IDX files)"
    else:
        images, labels, _ = digit_images("train", args.size)
        test = load_digits("test", args.size, args.steps, args.encoding, seed=0)
        name, source = args.name or f"digits{args.size}", "sklearn digits"
    print(f"training {source}: {len(labels)} images of {images.shape[-1]}x{images.shape[-1]}, "
          f"T={args.steps}, {args.encoding} coding, {args.epochs} epochs", flush=True)
    result = train(images, labels, test, hidden=args.hidden, n_steps=args.steps, encoding=args.encoding,
                   beta=args.beta, threshold=args.threshold, epochs=args.epochs, batch_size=args.batch_size,
                   learning_rate=args.lr, seed=args.seed, max_batches=args.max_batches,
                   log=lambda line: print(line, flush=True))
    # The exact command line, so that the record says how to reproduce these weights.
    command = "python -m sc_neurocore.data.train " + shlex.join(sys.argv[1:] if argv is None else argv)
    config = {"layers": [images[0].numel(), args.hidden, int(labels.max()) + 1], "beta": args.beta,
              "threshold": args.threshold, "reset": "subtract", "n_steps": args.steps, "encoding": args.encoding,
              "data": source, "seed": args.seed, "epochs": args.epochs, "batch_size": args.batch_size,
              "learning_rate": args.lr, "weight_grid": f"2**-{WEIGHT_FRACTION_BITS}",
              "torch": torch.__version__, "command": command.strip()}
    weights_path, _ = save(result, args.out, name, config)
    print(f"test accuracy {result.test_accuracy:.4f} ({len(test[1])} images); wrote {weights_path} "
          f"in {result.seconds:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
