"""Adapters: anything a user calls a spiking network -> the :class:`~sc_neurocore.protocol.SpikingModel` protocol."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..protocol import SpikingModel
from .function import FunctionModel

__all__ = ["FunctionModel", "as_spiking_model"]


def as_spiking_model(run_fn, *, batched: bool | None, n_inputs: int, numpy_io: bool,
                     name: str = "run_fn") -> SpikingModel:
    """Normalise an explainer's ``run_fn`` argument.

    * a :class:`~sc_neurocore.protocol.SpikingModel` (an adapter, an ``LIFNetwork``) is used as it is;
    * any other ``nn.Module`` is a batched callable ``(B, T, N) -> (B, C)`` unless ``batched=False``;
    * any other callable is the tutorial's unbatched ``(T, N) -> (C,)`` form unless ``batched=True``.
    """
    if isinstance(run_fn, SpikingModel):
        if batched is False:
            raise ValueError(f"batched: {type(run_fn).__name__} is a batched SpikingModel; batched=False "
                             "applies to plain callables only")
        return run_fn
    if not callable(run_fn):
        raise TypeError(f"{name}: expected a SpikingModel, an nn.Module or a callable, got {type(run_fn).__name__}")
    if batched is None:
        batched = isinstance(run_fn, nn.Module)
    if not isinstance(batched, bool):
        raise TypeError(f"batched: expected True, False or None, got {batched!r}")
    return FunctionModel(run_fn, batched=batched, n_inputs=n_inputs,
                         numpy_io=numpy_io and not isinstance(run_fn, nn.Module))
