"""An ordered, framework-neutral description of a layer stack, for compilers and weight-path methods.

When a wrapped model is a plain stack (an snnTorch ``nn.Sequential``, a Norse ``SequentialState``),
its adapter lists the stack as `StackLayer` entries: what each layer is (``kind``), its
submodule, and the numbers that define it (``params``: weights, biases, decays, thresholds, reset).
`linear_chain` turns a stack of linear layers and feed-forward neurons into the ``(n_in, n_out)``
weight chain `SpikeAttributor` attributes through.

Kinds: ``"linear"``, ``"conv2d"``, ``"flatten"``, ``"dropout"`` (structure); snnTorch ``"leaky"``,
``"synaptic"``, ``"alpha"``, ``"rleaky"``, ``"leaky_parallel"``; Norse ``"lif"`` (sequence-level
``LIF``), ``"lif_cell"``, ``"lif_box_cell"``, ``"li"``, ``"li_cell"``, ``"li_linear_cell"``; and
``"other"`` for anything else (which a compiler must refuse).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from torch import Tensor, nn

#: Neuron kinds whose layer has no recurrent or built-in input weights: a chain link is Linear + one of these.
FEED_FORWARD_NEURONS = frozenset({"leaky", "synaptic", "alpha", "lif", "lif_cell", "lif_box_cell", "li", "li_cell"})

#: Layers that pass spikes through unchanged in evaluation mode (a Flatten of flat spikes included).
PASS_THROUGH = frozenset({"dropout", "flatten"})


class StackLayer(NamedTuple):
    """One layer of a wrapped stack.

    Attributes:
        name: the submodule's name in ``model.named_modules()`` (``"0"``, ``"1"``, ... in a Sequential).
        kind: what it is (see the module docstring).
        module: the submodule itself (read it, never modify it).
        neuron: whether it is a neuron layer (listed in the adapter's ``neuron_layers``).
        params: the numbers that define it, e.g. ``{"weight": (out, in), "bias": (out,)}`` for a Linear,
            ``{"beta": ..., "threshold": ..., "reset_mechanism": "subtract", "reset_delay": True}`` for
            a Leaky, Norse's parameter NamedTuple fields plus ``dt`` for a Norse neuron.
    """

    name: str
    kind: str
    module: nn.Module
    neuron: bool
    params: Mapping[str, Any]


def linear_params(module: nn.Linear) -> dict[str, Any]:
    """``{"weight", "bias"}`` of a Linear (bias ``None`` when absent)."""
    return {"weight": module.weight.detach(), "bias": None if module.bias is None else module.bias.detach()}


def structure_params(module: nn.Module, kind: str) -> dict[str, Any] | None:
    """The params of a structural layer (``linear``, ``conv2d``, ``flatten``, ``dropout``), else ``None``."""
    if kind == "linear":
        return linear_params(module)  # type: ignore[arg-type]
    if kind == "conv2d":
        return {**linear_params(module), "stride": module.stride, "padding": module.padding,  # type: ignore[arg-type]
                "dilation": module.dilation, "groups": module.groups}
    if kind == "flatten":
        return {"start_dim": module.start_dim, "end_dim": module.end_dim}
    if kind == "dropout":
        return {"p": module.p}
    return None


def linear_chain(stack: Sequence[StackLayer]) -> list[Tensor] | None:
    """The ``(n_in, n_out)`` weights of ``Linear -> neuron -> Linear -> neuron ...``, or ``None``.

    Dropout and Flatten between them are allowed (identity in evaluation mode on flat spikes); a Norse
    ``LILinearCell`` counts as its own Linear plus a leaky integrator. Convolutions, recurrent neurons
    and sequence-level snnTorch layers make the stack something other than a linear chain: ``None``.

    Example:
        >>> import torch
        >>> layer = StackLayer("0", "linear", torch.nn.Linear(3, 2), False, {"weight": torch.ones(2, 3)})
        >>> [w.shape for w in linear_chain([layer, StackLayer("1", "leaky", torch.nn.Identity(), True, {})])]
        [torch.Size([3, 2])]
    """
    chain: list[Tensor] = []
    expecting_neuron = False
    for layer in stack:
        if layer.kind in PASS_THROUGH:
            continue
        if layer.kind == "linear" and not expecting_neuron:
            chain.append(layer.params["weight"].T)
            expecting_neuron = True
        elif layer.kind in FEED_FORWARD_NEURONS and expecting_neuron:
            expecting_neuron = False
        elif layer.kind == "li_linear_cell" and not expecting_neuron:
            chain.append(layer.params["input_weights"].T)
        else:
            return None
    return chain if chain and not expecting_neuron else None
