"""Every executor on random traced graphs of every node type equals the naive loop: the framework's own
forward on one perturbed copy at a time, bit for bit outside the reported tie mask (and the event engine's
rows, tie rows included, equal the graph's own naive loop, whose ops its tight test and replays follow).

Graphs are snnTorch Sequentials traced by `from_snntorch`: Linear, Conv2d, AvgPool2d, MaxPool2d,
BatchNorm2d, Flatten; Leaky (every reset mode, beta 0 / 0.7 / 1) and Synaptic neurons. The float64 dtype is
covered on `LIFNetwork` (tests/engine/test_event.py): snnTorch's own forward mixes dtypes in float64."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sc_neurocore.engine import execute
from sc_neurocore.engine.batched import materialise
from sc_neurocore.engine.plans import remove_each_spike, silence_each_neuron

GRAPHS = settings(max_examples=20, deadline=None, derandomize=True, database=None)


def neuron(draw, snn, output: bool):
    kind = draw(st.sampled_from(["leaky", "leaky", "synaptic"]))
    beta = draw(st.sampled_from([0.0, 0.7, 1.0]))
    reset = draw(st.sampled_from(["subtract", "zero", "none"]))
    threshold = draw(st.sampled_from([0.5, 1.0]))
    if kind == "synaptic":
        return snn.Synaptic(alpha=0.6, beta=beta, threshold=threshold, reset_mechanism=reset, init_hidden=True,
                            output=output)
    return snn.Leaky(beta=beta, threshold=threshold, reset_mechanism=reset, init_hidden=True, output=output)


@st.composite
def graphs(draw):
    """A random snnTorch stack on 1x8x8 inputs and its spikes."""
    import snntorch as snn

    torch.manual_seed(draw(st.integers(0, 2**16)))
    layers: list[torch.nn.Module] = []
    convolutional = draw(st.booleans())
    if convolutional:
        channels = draw(st.integers(2, 4))
        layers.append(torch.nn.Conv2d(1, channels, 3, padding=draw(st.sampled_from([0, 1]))))
        size = 8 if layers[-1].padding[0] == 1 else 6
        if draw(st.booleans()):
            norm = torch.nn.BatchNorm2d(channels).eval()
            with torch.no_grad():
                norm.running_mean.uniform_(-0.2, 0.2)
                norm.running_var.uniform_(0.5, 1.5)
            layers.append(norm)
        pool = draw(st.sampled_from(["none", "avg", "max"]))
        if pool != "none":
            layers.append(torch.nn.AvgPool2d(2) if pool == "avg" else torch.nn.MaxPool2d(2))
            size //= 2
        layers += [neuron(draw, snn, False), torch.nn.Flatten()]
        width = channels * size * size
    else:
        layers.append(torch.nn.Flatten())
        width = 64
    for index in range(draw(st.integers(1, 2))):
        out = 3 if index == 1 or draw(st.booleans()) else draw(st.integers(4, 10))
        layers += [torch.nn.Linear(width, out, bias=draw(st.booleans())), neuron(draw, snn, False)]
        width = out
    layers[-1] = neuron(draw, snn, True)
    gain = draw(st.sampled_from([1.5, 2.5]))
    with torch.no_grad():
        for layer in layers:
            if isinstance(layer, (torch.nn.Linear, torch.nn.Conv2d)):
                layer.weight.mul_(gain)
    steps = draw(st.integers(3, 8))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    spikes = (torch.rand(1, steps, 64, generator=generator) < 0.3).float()
    return torch.nn.Sequential(*layers).eval(), spikes


def naive(run, spikes: torch.Tensor, plan) -> torch.Tensor:
    rows, _ = materialise(spikes, plan)
    return torch.cat([run(rows[p:p + 1].clone()) for p in range(rows.shape[0])])  # each copy its own tensor


@pytest.mark.slow
@GRAPHS
@given(graphs())
def test_every_executor_equals_the_naive_loop_on_random_graphs(problem):
    from conftest import require_module

    require_module("snntorch", "snntorch")
    from sc_neurocore.adapters import from_snntorch

    sequential, spikes = problem
    model = from_snntorch(sequential, input_shape=(1, 8, 8))
    graph = model.graph_for(spikes)
    assert graph is not None, model.graph_reason
    for plan in (remove_each_spike(spikes), silence_each_neuron("input", 64, 1, spikes.device)):
        if len(plan) == 0:
            continue
        framework = naive(model.run, spikes, plan)
        own = naive(graph.run, spikes, plan)
        for engine in ("auto", "event", "incremental", "batched"):
            try:
                outputs, info = execute(graph, spikes, plan, engine=engine, return_info=True)
            except ValueError as error:
                assert engine in ("event", "incremental") and "cannot run this call" in str(error)
                continue
            keep = torch.ones(len(plan), dtype=torch.bool) if info.tie_mask is None else ~info.tie_mask
            assert torch.equal(outputs[keep], framework[keep]), (engine, info.engine, info.reason)
            if info.engine == "event":
                assert torch.equal(outputs, own), info.reason


def test_a_convolutional_graphs_tie_rows_are_replayed_as_the_naive_loop():
    from conftest import require_module

    require_module("snntorch", "snntorch")
    import snntorch as snn

    from sc_neurocore.adapters import from_snntorch

    torch.manual_seed(2)
    sequential = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), snn.Leaky(beta=0.9, init_hidden=True),
                                     torch.nn.Flatten(), torch.nn.Linear(8 * 14 * 14, 10),
                                     snn.Leaky(beta=0.9, init_hidden=True, output=True)).eval()
    with torch.no_grad():
        sequential[0].weight.mul_(2.0)
        sequential[3].weight.mul_(6.0)
    model = from_snntorch(sequential, input_shape=(1, 16, 16))
    spikes = (torch.rand(1, 20, 256) < 0.15).float()
    graph = model.graph_for(spikes)
    plan = remove_each_spike(spikes)
    outputs, info = execute(graph, spikes, plan, engine="event", return_info=True)
    assert bool(info.recomputed.any()) and model.run(spikes).sum() > 0  # replays ran, the output fires
    assert torch.equal(outputs, naive(graph.run, spikes, plan))
    keep = ~info.tie_mask  # the framework's own ops are checked on its outputs only: equal outside the mask
    assert torch.equal(outputs[keep], naive(model.run, spikes, plan)[keep])
