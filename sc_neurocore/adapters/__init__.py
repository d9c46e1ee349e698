"""Adapters: anything a user calls a spiking network -> the `sc_neurocore.protocol.SpikingModel` protocol.

- `from_snntorch`: snnTorch `nn.Sequential` stacks (`Leaky`, `Synaptic`, `Alpha`, `RLeaky`,
  `LeakyParallel`) and modules with their own time loop;
- `from_norse`: Norse `SequentialState` stacks (`LIF`, `LIFCell`, `LIFBoxCell`, `LI`, `LICell`,
  `LILinearCell`) and other Norse modules;
- `from_spikingjelly`: SpikingJelly networks in single-step or multi-step mode (`IFNode`, `LIFNode`,
  `ParametricLIFNode`, ...), reset as `functional.reset_net` would before every call;
- `from_nir`: a NIR graph (`nir.NIRGraph` or a NIR file) read directly as a `ModelGraph`, under the
  discretisation `sc_neurocore.adapters.nir` documents;
- `from_module`: any module mapping a whole spike sequence to outputs;
- `FunctionModel`: the tutorial's plain `run_fn` callables.

Every adapter is batch-first `(B, T, N)`, resets all neuron state on every call, silences and records
neuron layers through forward hooks, and is itself a differentiable `nn.Module` (a Captum
`forward_func`). snnTorch and Norse are imported only when one of their adapters is used.
"""

from __future__ import annotations

import sys
from typing import Any

from torch import nn

from ..protocol import SpikingModel
from .function import FunctionModel
from .hooked import HookedModel, model_input_shape
from .module import ModuleModel, from_module
from .nir import from_nir
from .norse import NorseSequential, from_norse
from .readout import READOUTS
from .registry import Framework, frameworks_in, loaded_frameworks
from .snntorch import SnnTorchSequential, from_snntorch
from .spikingjelly import SpikingJellyModel, from_spikingjelly
from .stack import StackLayer

__all__ = ["READOUTS", "FunctionModel", "HookedModel", "ModuleModel", "NorseSequential", "SnnTorchSequential",
           "Framework", "SpikingJellyModel", "StackLayer", "as_spiking_model", "frameworks_in", "loaded_frameworks",
           "from_module", "from_nir", "from_norse", "from_snntorch", "from_spikingjelly"]


def as_spiking_model(run_fn: Any, *, batched: bool | None, n_inputs: int, numpy_io: bool,
                     name: str = "run_fn", input_shape: tuple[int, ...] = ()) -> SpikingModel:
    """Normalise an explainer's `run_fn` argument.

    - a `SpikingModel` (an adapter, an `LIFNetwork`, a `ModelGraph`) is used as it is;
    - a bare model built from one framework's neurons (snnTorch, Norse, SpikingJelly, sinabs) is wrapped
      by that framework's front end (`from_snntorch`, `from_norse`, ...) with its defaults, from the one
      registry of frameworks (wrap it yourself to choose a readout or a layout); image-shaped spikes give
      it its `input_shape`, and so do flat ones where the model does not tell its input size (a convolution
      or an ``Unflatten`` before its first Linear, `sc_neurocore.adapters.hooked.model_input_shape`);
    - any other `nn.Module` is a batched callable `(B, T, N) -> (B, C)` unless `batched=False`;
    - any other callable is the tutorial's unbatched `(T, N) -> (C,)` form unless `batched=True`.

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> net = LIFNetwork([torch.randn(4, 2)])
        >>> as_spiking_model(net, batched=None, n_inputs=4, numpy_io=False) is net
        True
    """
    if isinstance(run_fn, SpikingModel):
        if batched is False:
            raise ValueError(f"batched: {type(run_fn).__name__} is a batched SpikingModel; batched=False "
                             "applies to plain callables only")
        return run_fn
    nir_graph = _as_nir_graph(run_fn)
    if nir_graph is not None:
        return nir_graph
    if not callable(run_fn):
        raise TypeError(f"{name}: expected a SpikingModel, an nn.Module or a callable, got {type(run_fn).__name__}")
    if isinstance(run_fn, nn.Module) and batched is None:
        frameworks = frameworks_in(run_fn)
        if len(frameworks) > 1:
            raise TypeError(f"{name}: {type(run_fn).__name__} mixes neurons of {[f.name for f in frameworks]}; wrap it "
                            "with from_module(model, time_first=..., neuron_layers=[...])")
        if frameworks:
            told = len(input_shape) > 1 or (input_shape and model_input_shape(run_fn) is None)
            options = {"input_shape": input_shape} if told else {}
            return frameworks[0].wrap(run_fn, **options)
    if batched is None:
        batched = isinstance(run_fn, nn.Module)
    if not isinstance(batched, bool):
        raise TypeError(f"batched: expected True, False or None, got {batched!r}")
    return FunctionModel(run_fn, batched=batched, n_inputs=n_inputs,
                         numpy_io=numpy_io and not isinstance(run_fn, nn.Module))


def _as_nir_graph(value: Any) -> SpikingModel | None:
    """A NIR graph passed straight to an explainer, through `from_nir`; `None` for anything else."""
    nir = sys.modules.get("nir")
    if nir is None or not isinstance(value, nir.NIRGraph):
        return None
    from .nir import from_nir

    return from_nir(value)
