"""One registry of the frameworks sc-neurocore understands.

Each framework is one adapter module of `sc_neurocore.adapters` that defines a module-level
`FRAMEWORK = Framework(...)`: how to recognise its neurons, how a neuron module becomes a graph
`NeuronNode`, where it keeps state between calls, and its `from_*` wrapper. Adding a framework means
writing that module and adding one line to `_MODULES`. Frameworks are consulted only when their package
is already imported, so nothing here imports snnTorch, Norse, SpikingJelly or sinabs.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

from torch import nn

from .trace import MadeNode


class Framework(NamedTuple):
    """What the adapters need to know of one framework.

    Attributes:
        name: its name in messages and in `from_<name>`.
        package: the top-level package that must be imported for the framework to be in use.
        is_neuron: whether a module is one of its neuron layers.
        neuron_node: `neuron_node(name, module, shape) -> NeuronNode` (`shape`: what the layer emits), or
            `-> (pre_maps, NeuronNode)` for a layer that applies its own input weights first (maps run per
            step in front of the node, see `trace.build_graph`); raises `Untraceable` (with the reason) for
            a neuron the graph cannot represent exactly.
        wrap: its `from_<name>(model, **options)` front end.
        reset_hint: how a user resets its state, for messages.
        fresh_state: `fresh_state(model) -> context manager` giving the framework's neurons in `model`
            fresh state for one call and the user's own back after it, for frameworks that keep state on
            modules between calls (SpikingJelly's memories); `None` when the adapter's state buffers do.
        state_attributes: `state_attributes(model) -> [(module, attribute name)]`: where `fresh_state`
            finds that state, left out of `hooked.module_fingerprint` (a forward of the user's own between
            two explanations changes it, never what an adapter's call computes); `None` with `fresh_state`.
    """

    name: str
    package: str
    is_neuron: Callable[[nn.Module], bool]
    neuron_node: Callable[[str, nn.Module, tuple[int, ...]], MadeNode]
    wrap: Callable[..., Any]
    reset_hint: str = ""
    fresh_state: Callable[[nn.Module], Any] | None = None
    state_attributes: Callable[[nn.Module], list[tuple[nn.Module, str]]] | None = None


#: `(package, adapter module)`: one line per framework.
_MODULES: tuple[tuple[str, str], ...] = (
    ("snntorch", "sc_neurocore.adapters.snntorch"),
    ("norse", "sc_neurocore.adapters.norse"),
    ("spikingjelly", "sc_neurocore.adapters.spikingjelly"),
    ("sinabs", "sc_neurocore.adapters.sinabs"),
)


def loaded_frameworks() -> list[Framework]:
    """The registered frameworks whose package is imported (their adapter modules imported on demand)."""
    frameworks = []
    for package, adapter in _MODULES:
        if package not in sys.modules:
            continue
        try:
            frameworks.append(importlib.import_module(adapter).FRAMEWORK)
        except (ImportError, AttributeError):
            continue
    return frameworks


def framework_of_module(module: nn.Module) -> Framework | None:
    """The framework whose neuron `module` is, or `None`."""
    return next((framework for framework in loaded_frameworks() if framework.is_neuron(module)), None)


def frameworks_in(model: nn.Module) -> list[Framework]:
    """The frameworks whose neurons appear in `model`, in registry order.

    Example:
        >>> import torch
        >>> frameworks_in(torch.nn.Linear(2, 2))
        []
    """
    modules = list(model.modules())
    return [framework for framework in loaded_frameworks() if any(framework.is_neuron(m) for m in modules)]
