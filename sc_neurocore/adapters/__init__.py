"""Adapters: anything a user calls a spiking network -> the `SpikingModel` protocol.

* `from_snntorch`: snnTorch ``nn.Sequential`` stacks (``Leaky``, ``Synaptic``, ``Alpha``,
  ``RLeaky``, ``LeakyParallel``) and modules with their own time loop;
* `from_norse`: Norse ``SequentialState`` stacks (``LIF``, ``LIFCell``, ``LIFBoxCell``, ``LI``,
  ``LICell``, ``LILinearCell``) and other Norse modules;
* `from_module`: any module mapping a whole spike sequence to outputs;
* `FunctionModel`: the tutorial's plain ``run_fn`` callables.

Every adapter is batch-first ``(B, T, N)``, resets all neuron state on every call, silences and records
neuron layers through forward hooks, and is itself a differentiable ``nn.Module`` (a Captum
``forward_func``). snnTorch and Norse are imported only when one of their adapters is used.
"""

from __future__ import annotations

import sys
from typing import Any

from torch import nn

from ..protocol import SpikingModel
from .function import FunctionModel
from .hooked import HookedModel
from .module import ModuleModel, from_module
from .norse import NorseSequential, from_norse
from .readout import READOUTS
from .snntorch import SnnTorchSequential, from_snntorch
from .stack import StackLayer

__all__ = ["READOUTS", "FunctionModel", "HookedModel", "ModuleModel", "NorseSequential", "SnnTorchSequential",
           "StackLayer", "as_spiking_model", "from_module", "from_norse", "from_snntorch"]


def as_spiking_model(run_fn: Any, *, batched: bool | None, n_inputs: int, numpy_io: bool,
                     name: str = "run_fn") -> SpikingModel:
    """Normalise an explainer's ``run_fn`` argument.

    * a `SpikingModel` (an adapter, an ``LIFNetwork``) is used as it is;
    * a bare snnTorch ``nn.Sequential`` or Norse ``SequentialState`` is wrapped with
      `from_snntorch` / `from_norse` and their default readout (wrap it yourself to choose
      another);
    * another module built from snnTorch or Norse neurons raises a ``TypeError`` asking which layout it
      takes (``from_snntorch``, ``from_norse`` or ``from_module(model, time_first=...)``), unless
      ``batched=True`` says it is a batch-first ``(B, T, N) -> (B, C)`` callable;
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
    if isinstance(run_fn, nn.Module) and batched is None:
        framework = _framework_of(run_fn)
        if framework == "norse" and isinstance(run_fn, sys.modules["norse.torch"].SequentialState):
            return from_norse(run_fn)
        if framework == "snntorch" and isinstance(run_fn, nn.Sequential):
            return from_snntorch(run_fn)
        if framework is not None:
            raise TypeError(f"{name}: {type(run_fn).__name__} is built from {framework} neurons but is not a plain "
                            f"stack, so its input layout is unknown; wrap it with sc_neurocore.adapters."
                            f"from_{framework}(model) (time-first (T, B, N) forward) or from_module(model, "
                            "time_first=False), or pass batched=True if it maps (B, T, N) to (B, C) itself")
    if batched is None:
        batched = isinstance(run_fn, nn.Module)
    if not isinstance(batched, bool):
        raise TypeError(f"batched: expected True, False or None, got {batched!r}")
    return FunctionModel(run_fn, batched=batched, n_inputs=n_inputs,
                         numpy_io=numpy_io and not isinstance(run_fn, nn.Module))


def _framework_of(module: nn.Module) -> str | None:
    """``"snntorch"`` or ``"norse"`` if ``module`` contains that framework's neurons (loaded ones only)."""
    from .norse import neuron_candidates as norse_candidates
    from .snntorch import is_snntorch_neuron

    if "snntorch" in sys.modules and any(is_snntorch_neuron(m) for m in module.modules()):
        return "snntorch"
    if "norse.torch" in sys.modules and norse_candidates(module):
        return "norse"
    return None
