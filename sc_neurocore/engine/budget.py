"""How many perturbed copies fit in a forward pass: the memory budget and the chunk size it implies."""

from __future__ import annotations

import numbers

import torch

#: Default budget on CPU (bytes): large enough to batch thousands of perturbations of an MNIST-sized
#: network, small enough to leave room on a laptop or a 2-core CI runner.
DEFAULT_CPU_BUDGET = 512 * 2**20
#: Fraction of the free device memory used by default on CUDA.
CUDA_FREE_FRACTION = 0.5


def default_max_memory(device: torch.device) -> int:
    """The budget used when ``max_memory`` is ``None``: half the free memory on CUDA, 512 MiB on CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * CUDA_FREE_FRACTION)
    return DEFAULT_CPU_BUDGET


def check_max_memory(max_memory) -> int | None:
    """Validate a ``max_memory`` argument (bytes, or ``None`` for automatic)."""
    if max_memory is None:
        return None
    if not isinstance(max_memory, numbers.Integral) or isinstance(max_memory, bool) or max_memory <= 0:
        raise ValueError(f"max_memory: expected a positive number of bytes or None, got {max_memory!r}")
    return int(max_memory)


def bytes_per_row(n_steps: int, n_inputs: int, layer_sizes, itemsize: int) -> int:
    """Peak bytes one perturbed copy costs in a forward pass.

    Counted: the materialised input ``T x N``, and per neuron layer ``T x n`` input currents, ``2 x T x n``
    spikes (the per-step outputs and their stacked copy, both alive while stacking) and a membrane of
    ``n`` -- what a layer-by-layer simulation such as `LIFNetwork` keeps
    alive (measured by ``tests/reliability/test_memory.py``). Models without known layers count as one
    extra input-sized layer.
    """
    sizes = list(layer_sizes) or [n_inputs]
    return itemsize * (n_steps * n_inputs + sum(3 * n_steps * n + n for n in sizes))


def rows_per_chunk(max_memory: int, row_bytes: int, n_rows: int) -> int:
    """How many rows to run in one forward pass under ``max_memory`` (at least 1, at most ``n_rows``)."""
    if max_memory < row_bytes:
        raise ValueError(f"max_memory: {max_memory} bytes is too small for a single perturbation, which needs "
                         f"about {row_bytes} bytes; raise it or pass None for the automatic budget")
    return max(1, min(n_rows, max_memory // row_bytes))
