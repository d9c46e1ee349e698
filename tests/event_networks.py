"""Random LIF stacks and their plans, for the event engine's property tests (tests/engine)."""

from __future__ import annotations

import itertools

import torch
from hypothesis import settings
from hypothesis import strategies as st

from sc_neurocore.engine.batched import materialise
from sc_neurocore.engine.plans import remove_each_spike, silence_each_neuron, silence_prefixes
from sc_neurocore.models import LIFNetwork

EXAMPLES = settings(max_examples=25, deadline=None, derandomize=True, database=None)


@st.composite
def networks(draw):
    """A random LIF stack (1-3 layers), a batch of spikes, its reset, beta and dtype."""
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    n_layers = draw(st.integers(1, 3))
    sizes = [draw(st.integers(3, 24)) for _ in range(n_layers + 1)]
    seed = draw(st.integers(0, 2**16))
    generator = torch.Generator().manual_seed(seed)
    weights = [torch.randn(a, b, generator=generator, dtype=dtype) * draw(st.sampled_from([0.6, 1.0, 1.6]))
               for a, b in itertools.pairwise(sizes)]
    beta = draw(st.sampled_from([0.0, 0.7, 1.0]))
    reset = draw(st.sampled_from(["subtract", "zero", "none"]))
    threshold = draw(st.sampled_from([0.5, 1.0]))
    net = LIFNetwork(weights, beta=beta, threshold=threshold, reset=reset)
    steps = draw(st.integers(2, 16))
    batch = draw(st.integers(1, 3))
    spikes = (torch.rand(batch, steps, sizes[0], generator=generator) < 0.3).to(dtype)
    return net, spikes


def plans_of(net: LIFNetwork, spikes: torch.Tensor):
    batch = spikes.shape[0]
    plans = [remove_each_spike(spikes), silence_each_neuron("input", net.n_inputs, batch, spikes.device)]
    for name, size in net.neuron_layers.items():
        plans.append(silence_each_neuron(name, size, batch, spikes.device))
    first = next(iter(net.neuron_layers))
    plans.append(silence_prefixes(first, torch.arange(net.neuron_layers[first]), batch))
    return plans


def naive_loop(net: LIFNetwork, spikes: torch.Tensor, plan) -> torch.Tensor:
    """The model's own forward on one perturbed copy at a time."""
    return naive_rows(net.run, spikes, plan)


def naive_rows(run, spikes: torch.Tensor, plan) -> torch.Tensor:
    """``run(spikes, silence=None)`` on one perturbed copy at a time."""
    rows, silence = materialise(spikes, plan)
    outputs = []
    for p in range(rows.shape[0]):
        alone = {name: mask[p:p + 1] for name, mask in silence.items()} if silence else None
        copy = rows[p:p + 1].clone()  # each copy its own tensor, as a loop over copies makes them
        outputs.append(run(copy) if alone is None else run(copy, silence=alone))
    return torch.cat(outputs)


def graph_plans(spikes: torch.Tensor, graph) -> list:
    """Each spike removed, each input neuron silenced and, with a hidden layer, each first-hidden neuron silenced."""
    out = [remove_each_spike(spikes), silence_each_neuron("input", spikes.shape[2], spikes.shape[0], spikes.device)]
    first = graph.segments[0].neuron
    if len(graph.segments) > 1:
        out.append(silence_each_neuron(first.name, first.shape[0], spikes.shape[0], spikes.device))
    return [plan for plan in out if len(plan) > 0]


def gained_spikes(draw, layers: list, n_inputs: int, gains: list[float]) -> torch.Tensor:
    """Multiply the weights of the ``nn.Linear`` layers of ``layers`` (in place, on modules just built) by a gain drawn
    from ``gains``, and draw a batch of spikes ``(1-2, 3-14, n_inputs)`` for them."""
    gain = draw(st.sampled_from(gains))
    with torch.no_grad():
        for layer in layers:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.mul_(gain)
    steps = draw(st.integers(3, 14))
    batch = draw(st.integers(1, 2))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    return (torch.rand(batch, steps, n_inputs, generator=generator) < 0.3).float()


def linear_stack(draw, neurons, gains: list[float]) -> tuple[list[torch.nn.Module], torch.Tensor]:
    """1-3 random Linear layers (with or without a bias), each followed by ``neurons(draw)``, and spikes for them
    (`gained_spikes`)."""
    torch.manual_seed(draw(st.integers(0, 2**16)))
    n_layers = draw(st.integers(1, 3))
    sizes = [draw(st.integers(6, 24)) for _ in range(n_layers)] + [draw(st.integers(2, 5))]
    layers: list[torch.nn.Module] = []
    for index in range(n_layers):
        layers += [torch.nn.Linear(sizes[index], sizes[index + 1], bias=draw(st.booleans())), neurons(draw)]
    return layers, gained_spikes(draw, layers, sizes[0], gains)


def check_event_stack(model, spikes: torch.Tensor, tight: bool = False) -> None:
    """Every plan of `graph_plans` on ``model``'s traced graph through the event engine: the model's own naive loop
    outside the tie mask, the graph's own naive loop on every row (``tight``: the stack needs the tight test)."""
    from sc_neurocore.engine import event, execute
    from sc_neurocore.engine.lower import to_compiled_stack

    graph = model.graph_for(spikes)
    assert graph is not None, model.graph_reason
    stack = to_compiled_stack(graph)
    assert stack is not None and event.unsupported(stack, tight=tight) is None
    for plan in graph_plans(spikes, graph):
        outputs, info = execute(graph, spikes, plan, engine="event", return_info=True)
        assert info.engine == "event"
        keep = ~info.tie_mask
        assert torch.equal(outputs[keep], naive_rows(model.run, spikes, plan)[keep]), (type(plan).__name__, info.reason)
        assert torch.equal(outputs, naive_rows(graph.run, spikes, plan))


def float32_workload(seed: int = 3):
    generator = torch.Generator().manual_seed(seed)
    net = LIFNetwork([torch.randn(300, 96, generator=generator) * 0.25, torch.randn(96, 48, generator=generator) * 0.3,
                      torch.randn(48, 10, generator=generator) * 0.4])
    spikes = (torch.rand(1, 30, 300, generator=generator) < 0.1).float()
    return net, spikes
