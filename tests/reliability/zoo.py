"""Every kind of model an explainer accepts, built small and seeded, for the state tests (mutation,
leaked state, determinism).

Each :class:`Entry` builds a fresh model and says which layers its explanations may silence. Framework
entries name their extra in ``needs`` (the tests call ``require_module``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from sc_neurocore.models import LIFNetwork

N_INPUTS, N_HIDDEN, N_OUTPUTS = 8, 6, 3


class Entry(NamedTuple):
    name: str
    build: Callable[[], Any]
    layers: tuple[str, ...]
    needs: tuple[tuple[str, str], ...] = ()
    explainer_kwargs: dict = {}
    records: bool = False  # supports gated attribution (record + linear_weights)


def _weights(seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(N_INPUTS, N_HIDDEN, generator=generator), torch.randn(N_HIDDEN, N_OUTPUTS, generator=generator)]


def lif() -> LIFNetwork:
    return LIFNetwork(_weights(), beta=0.9, threshold=0.5)


class LIFSubclass(LIFNetwork):
    """Same network; a subclass is not compiled, so it runs through the generic batched engine."""


def lif_generic() -> LIFNetwork:
    return LIFSubclass(_weights(), beta=0.9, threshold=0.5)


class StatefulUserModule(nn.Module):
    """A user's batch-first module with its own time loop that keeps its membrane in a buffer between
    steps (reset at the start of each call), the way many hand-written SNNs do."""

    def __init__(self) -> None:
        super().__init__()
        weights = _weights(1)
        self.fc1 = nn.Linear(N_INPUTS, N_HIDDEN, bias=False)
        self.fc2 = nn.Linear(N_HIDDEN, N_OUTPUTS, bias=False)
        with torch.no_grad():
            self.fc1.weight.copy_(weights[0].T)
            self.fc2.weight.copy_(weights[1].T)
        self.register_buffer("membrane", torch.zeros(0))
        self.dropout = nn.Dropout(0.5)  # active if the model is left in training mode

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        self.membrane = torch.zeros(spikes.shape[0], N_OUTPUTS)
        hidden = torch.zeros(spikes.shape[0], N_HIDDEN)
        counts = torch.zeros(spikes.shape[0], N_OUTPUTS)
        for t in range(spikes.shape[1]):
            hidden = 0.9 * hidden + self.dropout(self.fc1(spikes[:, t]))
            fired = (hidden > 0.5).float()
            hidden = hidden - 0.5 * fired
            self.membrane = 0.9 * self.membrane + self.fc2(fired)
            out = (self.membrane > 0.5).float()
            self.membrane = self.membrane - 0.5 * out
            counts = counts + out
        return counts


def batched_function():
    net = lif()
    return lambda spikes: net(spikes)


def numpy_function():
    """The tutorial's form: one (T, N) NumPy sample in, (C,) NumPy out."""
    net = lif()
    return lambda sample: net(torch.as_tensor(sample, dtype=torch.float32)[None])[0].numpy()


def snntorch_adapter():
    from sc_neurocore.adapters import from_snntorch
    from toy_models import snntorch_mlp

    return from_snntorch(snntorch_mlp([N_INPUTS, N_HIDDEN, N_OUTPUTS], seed=0))


def snntorch_bare():
    from toy_models import snntorch_mlp

    return snntorch_mlp([N_INPUTS, N_HIDDEN, N_OUTPUTS], seed=0)


def snntorch_loop_adapter():
    from sc_neurocore.adapters import from_module
    from toy_models import SnnTorchLoop

    return from_module(SnnTorchLoop([N_INPUTS, N_HIDDEN, N_OUTPUTS], seed=0), time_first=True)


def norse_adapter():
    from sc_neurocore.adapters import from_norse
    from toy_models import norse_mlp

    return from_norse(norse_mlp([N_INPUTS, N_HIDDEN, N_OUTPUTS], seed=0))


SNNTORCH = (("snntorch", "snntorch"),)
NORSE = (("norse", "norse"),)

ZOO = [
    Entry("lif", lif, ("input", "0"), records=True),
    Entry("lif-generic", lif_generic, ("input", "0"), records=True),
    Entry("stateful-module", StatefulUserModule, ("input",)),
    Entry("batched-function", batched_function, ("input",), explainer_kwargs={"batched": True}),
    Entry("numpy-function", numpy_function, ("input",)),
    Entry("snntorch", snntorch_adapter, ("input", "1"), SNNTORCH),
    Entry("snntorch-bare", snntorch_bare, ("input", "1"), SNNTORCH),
    Entry("snntorch-own-loop", snntorch_loop_adapter, ("input", "lif1"), SNNTORCH),
    Entry("norse", norse_adapter, ("input", "1"), NORSE),
]
ZOO_IDS = [entry.name for entry in ZOO]


def spikes(batch: int, steps: int = 12, seed: int = 0, rate: float = 0.3) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, steps, N_INPUTS, generator=generator) < rate).float()


def as_input(entry: Entry, batch_spikes: torch.Tensor):
    """What the entry's callable takes: NumPy for the NumPy function, tensors otherwise."""
    return batch_spikes.numpy() if entry.name == "numpy-function" else batch_spikes


def explanations(entry: Entry, model, batch_spikes, targets=0) -> dict[str, torch.Tensor]:
    """Every explanation of ``batch_spikes`` the entry supports, as tensors keyed by name."""
    from sc_neurocore.explain import CausalImportance, SpikeAttributor, TemporalSaliency

    x = as_input(entry, batch_spikes)
    results = {"saliency": TemporalSaliency(model, **entry.explainer_kwargs).explain(x, output_neuron=targets)
               .saliency_map()}
    for layer in entry.layers:
        causal = CausalImportance(model, **entry.explainer_kwargs).explain(x, output_neuron=targets, layer=layer)
        results[f"causal[{layer}]"] = causal.importance_map()
        results[f"curve[{layer}]"] = causal.robustness_curve()
    if entry.records:
        results["attribution[gated]"] = SpikeAttributor(mode="gated").attribute(x, model, targets).attribution_map()
        results["attribution[linear]"] = SpikeAttributor().attribute(x, model, targets).attribution_map()
    return {name: torch.as_tensor(np.asarray(value)) if isinstance(value, np.ndarray) else value
            for name, value in results.items()}
