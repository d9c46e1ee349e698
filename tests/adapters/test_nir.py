"""from_nir on the NIR zoo: the model graph equals the independent reference loop bit for bit, silenced
and not, and every explainer given the bare NIR graph equals brute force through that loop."""

from __future__ import annotations

import pytest
import torch
from brute_force import input_causal_loop, saliency_loop
from conftest import require_module

from sc_neurocore.adapters import as_spiking_model, from_nir
from sc_neurocore.explain import CausalImportance, TemporalSaliency
from sc_neurocore.graph import ModelGraph


@pytest.fixture(autouse=True)
def _nir():
    require_module("nir", "nir")


def _zoo():
    from zoo.models_nir import MODELS

    return MODELS


def _entries(*names):
    return [entry for entry in _zoo() if not names or entry.name in names]


ALL = [entry.name for entry in _entries()] if __import__("importlib").util.find_spec("nir") else []


def _build(name: str):
    """The zoo entry `name`, built (its framework required first)."""
    entry = _entries(name)[0]
    for framework in ("snntorch", "norse"):
        if framework in entry.name:
            require_module(framework, framework)
    return entry.build()


def _graph(built) -> ModelGraph:
    model = as_spiking_model(built.model, batched=None, n_inputs=built.spikes.shape[2], numpy_io=False)
    assert isinstance(model, ModelGraph)
    return model


def _busiest(reference, spikes) -> int:
    """The output with the largest readout summed over the batch."""
    return int(reference(spikes).sum(0).argmax())


def _single(reference):
    return lambda spikes: reference(spikes[None])[0]


@pytest.mark.parametrize("name", ALL)
def test_graph_equals_reference_loop(name):
    built = _build(name)
    graph = _graph(built)
    expected = built.raw_forward(built.spikes)
    assert torch.equal(graph.run(built.spikes), expected)
    assert expected.abs().sum() > 0
    recording = graph.record(built.spikes)
    assert torch.equal(recording.outputs, expected)
    for layer in recording.layers:
        if layer.name in built.hidden:
            assert layer.spikes.abs().sum() > 0, f"hidden layer {layer.name!r} never fires"


@pytest.mark.parametrize("name", ALL)
def test_silencing_equals_reference_hook(name):
    built = _build(name)
    graph = _graph(built)
    batch = built.spikes.shape[0]
    for layer, (module, size) in built.hidden.items():
        for neuron in sorted({0, size // 2, size - 1}):
            mask = torch.zeros(batch, size, dtype=torch.bool)
            mask[:, neuron] = True
            handle = built.silence_hook(module, neuron)
            try:
                expected = built.raw_forward(built.spikes)
            finally:
                handle.remove()
            assert torch.equal(graph.run(built.spikes, silence={layer: mask}), expected), (layer, neuron)


@pytest.mark.parametrize("name", ["nir-affine-lif-affine-li", "nir-cubalif-delay-if", "nir-snntorch-rleaky-export"])
def test_explainers_on_the_bare_graph_equal_brute_force(name):
    built = _build(name)
    spikes = built.spikes[:2]
    forward = _single(built.raw_forward)
    target = _busiest(built.raw_forward, spikes)
    saliency = TemporalSaliency(built.model).explain(spikes, output_neuron=target).saliency_map()
    importance = CausalImportance(built.model).explain(spikes, output_neuron=target).importance_map()
    moved = 0.0
    for b in range(2):
        expected = saliency_loop(forward, spikes[b], target=target)
        moved += float(expected.abs().sum())
        # A batch of perturbations and one forward per perturbation may round a product's last bit apart.
        torch.testing.assert_close(saliency[b].double(), expected)
        torch.testing.assert_close(importance[b].double(), input_causal_loop(forward, spikes[b], target=target))
    assert moved > 0, "no input spike changes the output: the comparison would be vacuous"


@pytest.mark.parametrize("name", ["nir-conv-sumpool-flatten", "nir-cubalif-delay-if", "nir-snntorch-rleaky-export"])
def test_hidden_importance_equals_reference_hook_loop(name):
    built = _build(name)
    spikes = built.spikes
    target = _busiest(built.raw_forward, spikes)
    for layer, (module, size) in built.hidden.items():
        result = CausalImportance(built.model).explain(spikes, output_neuron=target, layer=layer).importance_map()
        base = built.raw_forward(spikes)[:, target]
        columns = []
        for neuron in range(size):
            handle = built.silence_hook(module, neuron)
            try:
                columns.append(base - built.raw_forward(spikes)[:, target])
            finally:
                handle.remove()
        torch.testing.assert_close(result.double(), torch.stack(columns, dim=1).double())


def test_a_file_reads_as_the_graph_it_holds(tmp_path):
    import nir
    from zoo.models_nir import DT, cubalif_delay_if

    built = cubalif_delay_if()
    path = tmp_path / "net.nir"
    nir.write(path, built.model)
    for source in (path, str(path)):
        assert torch.equal(from_nir(source, dt=DT).run(built.spikes), built.raw_forward(built.spikes))
    assert from_nir(path).source == f"NIR graph (dt={DT:g})"  # the step written in the file's metadata


def test_the_graph_is_left_as_it_was():
    import numpy as np
    from zoo.models_nir import affine_lif_affine_li

    graph = affine_lif_affine_li().model
    before = {name: {k: np.array(v, copy=True) for k, v in vars(node).items() if isinstance(v, np.ndarray)}
              for name, node in graph.nodes.items()}
    edges = list(graph.edges)
    model = from_nir(graph)
    model.run(torch.ones(2, 5, 64))
    assert graph.edges == edges
    for name, node in graph.nodes.items():
        for key, value in before[name].items():
            assert np.array_equal(getattr(node, key), value)


def test_nested_graphs_conv1d_same_padding_and_padded_pools_equal_reference():
    import nir
    import numpy as np
    from zoo.nir_reference import NirReference

    def full(*shape, value=1.0):
        return np.full(shape, value, np.float32)

    rng = np.random.default_rng(0)
    inner = nir.NIRGraph(nodes={"in": nir.Input(input_type=np.array([5])),
                                "lif": nir.LIF(tau=full(5, value=0.01), r=full(5), v_leak=full(5, value=0.0),
                                               v_threshold=full(5, value=0.3)),
                                "w": nir.Affine((rng.standard_normal((5, 5)) * 0.5).astype(np.float32),
                                                full(5, value=0.05)),
                                "out": nir.Output(output_type=np.array([5]))},
                         edges=[("in", "lif"), ("lif", "w"), ("w", "lif"), ("lif", "out")])
    conv = nir.Conv1d(input_shape=8, weight=rng.standard_normal((3, 2, 3)).astype(np.float32), stride=1, padding=1,
                      dilation=1, groups=1, bias=full(3, value=0.1))
    outer = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([2, 8])), "conv": conv,
                                "flat": nir.Flatten(input_type={"input": np.array([3, 8])}, start_dim=0),
                                "aff": nir.Affine(rng.standard_normal((5, 24)).astype(np.float32), full(5, value=0.3)),
                                "rnn": inner, "output": nir.Output(output_type=np.array([5]))},
                         edges=[("input", "conv"), ("conv", "flat"), ("flat", "aff"), ("aff", "rnn"),
                                ("rnn", "output")])
    pooled = nir.NIRGraph.from_list(
        nir.Conv2d(input_shape=(6, 6), weight=rng.standard_normal((2, 1, 3, 3)).astype(np.float32), stride=1,
                   padding="same", dilation=1, groups=1, bias=full(2, value=0.1)),
        nir.AvgPool2d(kernel_size=np.array([3, 3]), stride=np.array([2, 2]), padding=np.array([1, 1])),
        nir.LIF(tau=full(2, 3, 3, value=0.01), r=full(2, 3, 3), v_leak=full(2, 3, 3, value=0.0),
                v_threshold=full(2, 3, 3, value=0.1)))
    generator = torch.Generator().manual_seed(3)
    for graph, shape, layers in ((outer, (2, 8), ["rnn.lif"]), (pooled, (1, 6, 6), ["lif"])):
        model = from_nir(graph, dt=1e-3)
        assert list(model.neuron_layers) == layers
        spikes = (torch.rand(3, 15, int(np.prod(shape)), generator=generator) < 0.4).float()
        expected = NirReference(graph, 1e-3, shape)(spikes)
        assert expected.sum() > 0
        assert torch.equal(model.run(spikes), expected)


#: nirtorch feeds a recurrent edge zeros on the first step, from_nir the loop's map of the resting output
#: (W 0 + b, as snnTorch's RLeaky does): they part where a loop has a bias, so only feed-forward graphs here.
FEED_FORWARD = [name for name in ALL if "rleaky" not in name]


@pytest.mark.parametrize("name", FEED_FORWARD)
def test_reference_loop_equals_nirtorch_wiring(name):
    """nirtorch (NIR's own PyTorch executor) maps no neuron node, so it runs the reference's neuron modules,
    wired by its own torch.fx graph, with its own Linear, Conv2d and AvgPool2d modules (its Affine map
    leaves the bias unset and its Flatten counts the batch dimension, so those come from the reference)."""
    import nir
    import nirtorch

    built = _build(name)
    reference = built.raw_forward
    graph = reference.graph
    names = {id(node): node_name for node_name, node in graph.nodes.items()}
    kinds = (nir.LIF, nir.CubaLIF, nir.LI, nir.CubaLI, nir.IF, nir.I, nir.Threshold, nir.Delay, nir.Affine,
             nir.Flatten, nir.SumPool2d, nir.Scale)
    module = nirtorch.nir_to_torch(graph, {kind: lambda node: reference.nodes[names[id(node)]] for kind in kinds})
    for node in reference.nodes.values():
        node.reset()
    spikes = built.spikes
    steps, state = [], None
    with torch.no_grad():
        for t in range(spikes.shape[1]):
            x = spikes[:, t].reshape(spikes.shape[0], *reference.input_shape)
            out, state = module(x) if state is None else module(x, state)
            steps.append(out.reshape(spikes.shape[0], -1))
    outputs = torch.stack(steps)
    got = outputs.sum(0) if reference.spiking_output else outputs.amax(0)
    assert torch.equal(got, reference(spikes))


def test_linear_attribution_reads_the_graph_weights():
    import nir

    from sc_neurocore.explain import SpikeAttributor

    built = _build("nir-snntorch-export")
    graph = built.raw_forward.graph
    weights = [torch.as_tensor(node.weight).T for node in graph.nodes.values() if isinstance(node, nir.Affine)]
    model = built.model
    chain = model.linear_weights()
    assert [tuple(w.shape) for w in chain] == [(64, 16), (16, 4)]
    for got, want in zip(chain, weights, strict=True):
        assert torch.equal(got, want)
    by_model = SpikeAttributor(decay=0.9).attribute(built.spikes, model, output_neuron=1)
    by_hand = SpikeAttributor(decay=0.9).attribute(built.spikes, weights, output_neuron=1)
    assert torch.equal(by_model.attribution_map(), by_hand.attribution_map())
