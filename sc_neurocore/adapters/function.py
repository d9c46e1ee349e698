"""Plain callables as spiking models: the tutorial's ``run_fn``.

A callable knows nothing of neuron layers, so only its inputs can be silenced (by zeroing their spike
trains, which the engine does itself). Two forms:

* batched: ``fn(spikes (B, T, N)) -> (B, C)``, called once per chunk of perturbations;
* unbatched: ``fn(spikes (T, N)) -> (C,)``, the tutorial's NumPy form, called once per row.

Which one a callable is is said explicitly (``batched=``), never guessed by calling it and catching errors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping

import numpy as np
import torch
from torch import Tensor, nn


class FunctionModel:
    """A `SpikingModel` around a plain callable (input layer only).

    Args:
        fn: the callable.
        batched: ``True`` for ``(B, T, N) -> (B, C)``, ``False`` for ``(T, N) -> (C,)``.
        n_inputs: the number of input neurons ``N`` it takes.
        numpy_io: pass NumPy arrays to ``fn`` instead of tensors (for callables written for NumPy).
    """

    #: Unbatched callables run row by row anyway; small chunks keep a progress bar moving.
    max_rows_per_call: int | None

    def __init__(self, fn: Callable, *, batched: bool, n_inputs: int, numpy_io: bool = False) -> None:
        self.fn = fn
        self.batched = batched
        self._n_inputs = n_inputs
        self.numpy_io = numpy_io
        self.max_rows_per_call = None if batched else 64

    @property
    def neuron_layers(self) -> dict[str, int]:
        return {}

    @property
    def n_inputs(self) -> int:
        return self._n_inputs

    def linear_weights(self) -> None:
        return None

    def record(self, spikes: Tensor):
        raise TypeError("model: a plain callable cannot record its neurons' activity; wrap the network with "
                        "sc_neurocore.adapters (from_snntorch, from_norse, from_module) or use an LIFNetwork")

    def run(self, spikes: Tensor, silence: Mapping[str, Tensor] | None = None) -> Tensor:
        if silence:
            raise ValueError(f"layer: a plain callable exposes no neuron layers to silence (asked for "
                             f"{sorted(silence)}); wrap the network with sc_neurocore.adapters")
        with _module_session(self.fn):
            if self.batched:
                return self.fn(self._convert(spikes))
            rows = [_as_row_output(self.fn(self._convert(row)), index) for index, row in enumerate(spikes)]
        shapes = sorted({tuple(row.shape) for row in rows})
        if len(shapes) > 1:
            raise ValueError(f"run_fn: expected the same output shape for every sample, got {shapes}")
        return torch.stack(rows) if rows else torch.empty(0, 0)

    def _convert(self, spikes: Tensor):
        return spikes.detach().cpu().numpy() if self.numpy_io else spikes


@contextlib.contextmanager
def _module_session(fn: Callable) -> Iterator[None]:
    """For an ``nn.Module``: eval mode during the call, and its flags, buffers and tensor attributes put
    back afterwards.

    Explaining runs a model thousands of times. A module that keeps state between timesteps in a buffer or
    attribute, or one left in training mode (dropout, BatchNorm updating its running statistics), must
    neither change its results from call to call nor come back changed to its owner.
    """
    if not isinstance(fn, nn.Module):
        yield
        return
    modules = list(fn.modules())
    training = [module.training for module in modules]
    buffers = [(module, name, value, value.clone()) for module in modules
               for name, value in module._buffers.items() if value is not None]
    attributes = [(module, name, value) for module in modules for name, value in vars(module).items()
                  if isinstance(value, Tensor)]
    try:
        fn.eval()
        yield
    finally:
        for module, flag in zip(modules, training, strict=True):
            module.training = flag
        for module, name, original, values in buffers:
            if original.shape == values.shape:  # undo in-place updates too (BatchNorm's running statistics)
                original.copy_(values)
            module._buffers[name] = original
        for module, name, original in attributes:
            setattr(module, name, original)


def _as_row_output(value, index: int) -> Tensor:
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"run_fn: expected numeric outputs, got dtype {value.dtype}")
        value = torch.from_numpy(np.array(value))
    elif isinstance(value, (list, tuple)):
        value = torch.as_tensor(value)
    if not isinstance(value, Tensor):
        raise TypeError(f"run_fn: expected an array of shape (C,) per sample, got {type(value).__name__}")
    if value.ndim != 1:
        raise ValueError(f"run_fn: an unbatched run_fn must return shape (C,) for one (T, N) sample, got "
                         f"{tuple(value.shape)} for row {index}")
    return value
