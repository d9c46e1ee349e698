"""The test zoo's entry type: one model built the way its framework's documentation builds it.

Each `models_<framework>.py` module of this folder lists `MODELS: list[ZooModel]`; `ZOO` in
`tests/zoo/__init__.py` collects them. The harness (`test_zoo.py`) runs every explainer on every entry
against brute force through `raw_forward`, the framework's own forward with nothing of sc-neurocore in
it, and `docs/adapters.md`'s support matrix is generated from the same entries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from torch import Tensor, nn


class Built(NamedTuple):
    """A zoo model, built.

    Attributes:
        model: what a user passes to the explainers (an adapter, a bare framework model, a NIR graph).
        raw_forward: `raw_forward(spikes (B, T, N)) -> (B, C)`: the framework's own forward, reset and
            read out as the framework's docs do it, with nothing of sc-neurocore in it.
        spikes: `(B, T, N)` input spikes that make the model fire.
        hidden: `{layer name: (module, n_neurons)}`: the hidden neuron layers, with the module whose
            output a brute-force silencing hook zeroes (via `silence_hook` below), for CausalImportance.
        silence_hook: `silence_hook(module, neuron)`: a forward hook for `module` that silences neuron
            `neuron` at every timestep (the framework's own output form kept), or the handle of one it
            registered itself; `None` when the generic one (`zoo.common.zero_neuron_hook`) applies.
    """

    model: Any
    raw_forward: Callable[[Tensor], Tensor]
    spikes: Tensor
    hidden: dict[str, tuple[nn.Module, int]]
    silence_hook: Callable[[nn.Module, int], Any] | None = None


class ZooModel(NamedTuple):
    """One zoo entry.

    Attributes:
        name: unique, e.g. `"snntorch-tutorial7-csnn"`.
        framework: `"snntorch"`, `"norse"`, `"spikingjelly"`, `"nir"`, `"sinabs"`, `"torch"`, `"sc_neurocore"`.
        layers: the layer types it holds, for the support matrix (e.g. `("Conv2d", "MaxPool2d", "Leaky")`).
        build: builds it (seeded; trained briefly on the bundled digits or scaled so that it fires).
        extra: the pip extra it needs (`"snntorch"`, `"norse"`, `"spikingjelly"`, `"nir"`), or `None`.
        refused: `None` when every explainer must be exact; else `{explainer: reason fragment}` for the
            explainers that must refuse with a `ValueError`/`TypeError` containing that fragment
            (explainers: `"saliency"`, `"causal_input"`, `"causal_hidden"`, `"attribution_linear"`,
            `"attribution_gated"`, `"captum"`).
        engine: the graph path expected, `"graph"` (traced and verified) or `"generic"` (runs through
            the model's own forward), checked by the harness.
    """

    name: str
    framework: str
    layers: tuple[str, ...]
    build: Callable[[], Built]
    extra: str | None = None
    refused: dict[str, str] | None = None
    engine: str = "graph"
