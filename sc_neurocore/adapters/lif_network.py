"""The reference `LIFNetwork` as a model graph: one `MatMul` and one leaky layer per weight matrix, its
matrix products applied to all timesteps at once, as the network itself computes them."""

from __future__ import annotations

from ..dynamics import lif_initial_state, lif_step
from ..graph.maps import MatMul
from ..graph.model import ModelGraph, Segment
from ..graph.neurons import NeuronNode


def lif_network_graph(net) -> ModelGraph:
    """The graph of an `LIFNetwork` (read from its weights, biases and per-layer parameters).

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> net = LIFNetwork([torch.randn(8, 4), torch.randn(4, 2)])
        >>> spikes = (torch.rand(3, 10, 8) < 0.3).float()
        >>> torch.equal(lif_network_graph(net).run(spikes), net.run(spikes))
        True
    """
    segments = []
    for index, weight in enumerate(net.weights):
        bias = net._bias(index)
        n_in, n_out = weight.shape
        dense = MatMul((n_in,), (n_out,), weight.detach(), None if bias is None else bias.detach())
        neuron = NeuronNode(str(index), "leaky", (n_out,), lif_step, net.layer_params(index), lif_initial_state)
        segments.append(Segment((dense,), neuron, (True,)))
    return ModelGraph((net.weights[0].shape[0],), segments, "count", source="LIFNetwork")
