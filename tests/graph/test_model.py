"""The model graph's own behaviour: shapes are checked when it is built, silencing and recording follow
the protocol, sequence-applied and per-step maps give the same results, and a membrane readout of a
leaky integrator is the only one it accepts."""

from __future__ import annotations

import pytest
import torch

from sc_neurocore.adapters.lif_network import lif_network_graph
from sc_neurocore.dynamics import LIFParameters, LIState, li_step, lif_initial_state, lif_step
from sc_neurocore.graph import Dense, ModelGraph, NeuronNode, Reshape, Segment
from sc_neurocore.models import LIFNetwork


def _leaky(name, n):
    return NeuronNode(name, "leaky", (n,), lif_step, LIFParameters(0.9, 1.0), lif_initial_state)


def _graph(readout="count", whole=False):
    torch.manual_seed(0)
    first = Dense((6,), (4,), torch.randn(4, 6) * 2, torch.zeros(4))
    second = Dense((4,), (3,), torch.randn(3, 4) * 2)
    return ModelGraph((6,), [Segment((first,), _leaky("a", 4), (whole,)), Segment((second,), _leaky("b", 3), (whole,))],
                      readout)


def test_shapes_are_checked_when_the_graph_is_built():
    with pytest.raises(ValueError, match="takes"):
        ModelGraph((5,), [Segment((Dense((6,), (4,), torch.ones(4, 6)),), _leaky("a", 4))])
    with pytest.raises(ValueError, match="neuron layer 'a' has shape"):
        ModelGraph((6,), [Segment((Dense((6,), (4,), torch.ones(4, 6)),), _leaky("a", 3))])
    with pytest.raises(ValueError, match="unique"):
        ModelGraph((4,), [Segment((), _leaky("a", 4)), Segment((), _leaky("a", 4))])
    with pytest.raises(ValueError, match="at least one"):
        ModelGraph((4,), [])


def test_per_step_and_whole_sequence_maps_agree():
    spikes = (torch.rand(3, 9, 6) < 0.4).float()
    assert torch.equal(_graph(whole=False).run(spikes), _graph(whole=True).run(spikes))


def test_silencing_a_neuron_removes_its_spikes_everywhere_downstream():
    graph = _graph()
    spikes = (torch.rand(2, 9, 6) < 0.5).float()
    mask = torch.zeros(2, 4, dtype=torch.bool)
    mask[:, 1] = True
    recording = graph.record(spikes, silence={"a": mask})
    assert recording.layers[0].spikes[:, :, 1].sum() == 0
    assert torch.equal(recording.outputs, graph.run(spikes, silence={"a": mask}))
    with pytest.raises(ValueError, match="unknown layer"):
        graph.run(spikes, silence={"c": mask})
    with pytest.raises(ValueError, match="bool tensor"):
        graph.run(spikes, silence={"a": mask.float()})


def test_the_graph_of_an_lif_network_is_the_network():
    torch.manual_seed(1)
    net = LIFNetwork([torch.randn(10, 6) * 1.5, torch.randn(6, 4) * 1.5], beta=[0.8, 0.9], threshold=0.7,
                     reset="zero")
    graph = lif_network_graph(net)
    spikes = (torch.rand(3, 15, 10) < 0.4).float()
    assert torch.equal(graph.run(spikes), net.run(spikes))
    for ours, theirs in zip(graph.record(spikes).layers, net.record(spikes).layers, strict=True):
        assert torch.equal(ours.spikes, theirs.spikes) and torch.equal(ours.membrane, theirs.membrane)
    assert [w.shape for w in graph.linear_weights()] == [torch.Size([10, 6]), torch.Size([6, 4])]


def test_a_leaky_integrator_output_takes_only_membrane_readouts():
    integrator = NeuronNode("out", "li", (3,), lambda current, state, beta: li_step(current, state, beta), 0.9,
                            lambda like: LIState(torch.zeros_like(like)), spiking=False)
    segments = [Segment((Dense((4,), (3,), torch.ones(3, 4)),), integrator)]
    with pytest.raises(ValueError, match="max_membrane"):
        ModelGraph((4,), segments, "count")
    graph = ModelGraph((4,), segments, "max_membrane")
    assert torch.allclose(graph.run(torch.ones(1, 3, 4)), torch.full((1, 3), 4 * (1 + 0.9 + 0.81)))


def test_a_reshape_between_layers_keeps_the_values():
    graph = ModelGraph((2, 3), [Segment((Reshape((2, 3), (6,)), Dense((6,), (2,), torch.ones(2, 6))), _leaky("a", 2))])
    spikes = torch.ones(1, 4, 6)
    assert graph.run(spikes).shape == (1, 2)
    assert graph.linear_weights() is None  # a reshape of an image is not a flat weight chain


def test_the_graph_computes_in_its_weights_dtype_behind_a_leading_reshape():
    dense = Dense((6,), (2,), torch.ones(2, 6, dtype=torch.float64))
    graph = ModelGraph((2, 3), [Segment((Reshape((2, 3), (6,)), dense), _leaky("a", 2))])
    assert graph._dtype() == torch.float64
    assert graph.record(torch.ones(1, 4, 6)).layers[0].membrane.dtype == torch.float64
