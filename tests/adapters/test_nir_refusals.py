"""from_nir refuses what a chain cannot hold or what it would read wrongly, naming the node and why; its
docstring examples run; its recurrent edges, delays and dt handling do what the discretisation says."""

from __future__ import annotations

import doctest
import importlib
import warnings

import numpy as np
import pytest
import torch
from conftest import require_module

from sc_neurocore.adapters import from_nir


@pytest.fixture(autouse=True)
def _nir():
    require_module("nir", "nir")


def _f(*shape, value=1.0):
    return np.full(shape, value, dtype=np.float32)


def _lif(n):
    import nir

    return nir.LIF(tau=_f(n, value=0.01), r=_f(n), v_leak=_f(n, value=0.0), v_threshold=_f(n, value=0.5))


def _graph(nodes, edges, **kwargs):
    import nir

    return nir.NIRGraph(nodes=nodes, edges=edges, **kwargs)


def _chain_nodes():
    import nir

    return {"input": nir.Input(input_type=np.array([3])), "a": nir.Linear(_f(2, 3)), "lif": _lif(2),
            "output": nir.Output(output_type=np.array([2]))}


def test_a_branch_is_refused_naming_the_node():
    import nir

    nodes = _chain_nodes() | {"b": nir.Linear(_f(2, 3))}
    graph = _graph(nodes, [("input", "a"), ("input", "b"), ("a", "lif"), ("b", "lif"), ("lif", "output")],
                   type_check=False)
    with pytest.raises(ValueError, match=r"node 'input' has output edges to \['a', 'b'\] \(a branch\)"):
        from_nir(graph, dt=1e-3)


def test_a_merge_is_refused_naming_the_node():
    import nir

    nodes = _chain_nodes() | {"skip": nir.Linear(_f(2, 2)), "lif2": _lif(2)}
    edges = [("input", "a"), ("a", "lif"), ("lif", "lif2"), ("lif", "skip"), ("skip", "lif2"), ("lif2", "output")]
    with pytest.raises(ValueError, match=r"node 'lif' has output edges to \['lif2', 'skip'\] \(a branch\)"):
        from_nir(_graph(nodes, edges, type_check=False), dt=1e-3)


def test_recurrence_across_neuron_nodes_is_refused():
    import nir

    nodes = _chain_nodes() | {"lif2": _lif(2), "back": nir.Linear(_f(2, 2))}
    edges = [("input", "a"), ("a", "lif"), ("lif", "lif2"), ("lif2", "back"), ("back", "lif"), ("lif2", "output")]
    with pytest.raises(ValueError, match="recurrent edge into node 'lif' passes through 'lif2'.*across neuron nodes"):
        from_nir(_graph(nodes, edges, type_check=False), dt=1e-3)


def test_an_unconverted_layer_and_a_chain_ending_in_a_map_are_refused():
    import nir

    nodes = _chain_nodes()
    nodes["a"] = None
    with pytest.raises(ValueError, match="node 'a' is None: the exporter could not convert"):
        from_nir(_graph(nodes, [("input", "a"), ("a", "lif"), ("lif", "output")], type_check=False), dt=1e-3)
    graph = nir.NIRGraph.from_list(_lif(3), nir.Linear(_f(2, 3)))
    with pytest.raises(ValueError, match="ends in node 'linear' .*not in a neuron node"):
        from_nir(graph, dt=1e-3)


def test_two_inputs_and_unknown_nodes_are_refused():
    import nir

    nodes = _chain_nodes() | {"input2": nir.Input(input_type=np.array([3]))}
    with pytest.raises(ValueError, match="inputs \\['input', 'input2'\\]"):
        from_nir(_graph(nodes, [("input", "a"), ("input2", "a"), ("a", "lif"), ("lif", "output")],
                        type_check=False), dt=1e-3)

    class Odd(nir.NIRNode):
        def __init__(self):
            self.input_type = {"input": np.array([3])}
            self.output_type = {"output": np.array([3])}

    nodes = _chain_nodes()
    nodes["a"] = Odd()
    with pytest.raises(ValueError, match="node 'a' is a Odd, which from_nir does not read"):
        from_nir(_graph(nodes, [("input", "a"), ("a", "lif"), ("lif", "output")], type_check=False), dt=1e-3)


def test_shape_mismatches_are_refused():
    import nir

    graph = nir.NIRGraph.from_list(nir.Linear(_f(2, 3)), _lif(4), type_check=False)
    with pytest.raises(ValueError, match="node 'lif' declares its input shape \\(4,\\)|field tau has shape"):
        from_nir(graph, dt=1e-3)
    graph = nir.NIRGraph.from_list(nir.Linear(_f(2, 3)), _lif(2))
    with pytest.raises(ValueError, match=r"node 'linear' declares its input shape \(3,\), but the chain gives it "
                                         r"\(5,\)"):
        from_nir(graph, dt=1e-3, input_shape=(5,))


def test_a_delay_must_be_a_whole_number_of_steps():
    import nir

    graph = nir.NIRGraph.from_list(nir.Delay(np.array([1e-3, 1.5e-3])), nir.Threshold(_f(2, value=0.5)))
    with pytest.raises(ValueError, match="not a whole number of steps of dt=0.001"):
        from_nir(graph, dt=1e-3)
    model = from_nir(graph, dt=5e-4)  # 2 and 3 steps
    spikes = torch.zeros(1, 6, 2)
    spikes[0, 0] = 1
    recording = model.record(spikes)
    assert recording.layers[0].spikes[0, :, 0].tolist() == [0, 0, 1, 0, 0, 0]
    assert recording.layers[0].spikes[0, :, 1].tolist() == [0, 0, 0, 1, 0, 0]


def test_dt_comes_from_the_argument_the_metadata_or_the_documented_default():
    import nir

    from sc_neurocore.adapters.nir import DEFAULT_DT

    graph = nir.NIRGraph.from_list(nir.Linear(_f(2, 3)), _lif(2))
    with pytest.warns(UserWarning, match="dt not given"):
        assert f"dt={DEFAULT_DT:g}" in from_nir(graph).source
    graph.metadata["dt"] = 2e-3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "dt=0.002" in from_nir(graph).source
        assert "dt=0.0005" in from_nir(graph, dt=5e-4).source
    for bad in (0, -1e-3, float("nan"), "1e-3", True):
        with pytest.raises(ValueError, match="dt: expected a positive finite number"):
            from_nir(graph, dt=bad)
    graph.metadata["dt"] = -1
    with pytest.raises(ValueError, match=r"graph.metadata\['dt'\]: expected a positive finite number"):
        from_nir(graph)


def test_bad_arguments_name_themselves():
    import nir

    with pytest.raises(TypeError, match="graph_or_path: expected a nir.NIRGraph"):
        from_nir(42, dt=1e-3)
    graph = nir.NIRGraph.from_list(nir.Linear(_f(2, 3)), nir.LI(_f(2, value=0.01), _f(2), _f(2, value=0.0)))
    with pytest.raises(TypeError, match="dtype: expected a floating torch dtype"):
        from_nir(graph, dt=1e-3, dtype=torch.int32)
    with pytest.raises(ValueError, match="output layer 'li' is a leaky integrator"):
        from_nir(graph, dt=1e-3, readout="count")
    assert from_nir(graph, dt=1e-3).readout == "max_membrane"
    with pytest.raises(ValueError, match="input_shape: expected positive sizes"):
        from_nir(graph, dt=1e-3, input_shape=(0,))
    with pytest.raises(TypeError, match="device: expected a torch device"):
        from_nir(graph, dt=1e-3, device="nowhere")


def test_dtype_and_device_place_every_tensor():
    import nir

    graph = nir.NIRGraph.from_list(nir.Affine(_f(2, 3, value=0.4), _f(2, value=0.1)), _lif(2),
                                   nir.Delay(np.array([1e-3, 0.0])), nir.Linear(_f(2, 2)),
                                   nir.CubaLIF(tau_syn=_f(2, value=0.005), tau_mem=_f(2, value=0.01), r=_f(2),
                                               v_leak=_f(2, value=0.0), v_threshold=_f(2, value=0.05)))
    spikes = torch.ones(2, 8, 3)
    single = from_nir(graph, dt=1e-3, device="cpu").run(spikes)
    double = from_nir(graph, dt=1e-3, dtype=torch.float64, device=torch.device("cpu")).run(spikes.double())
    assert single.dtype == torch.float32 and double.dtype == torch.float64
    assert single.sum() > 0
    assert torch.equal(single.double(), double)  # spike counts, far from any threshold here


def test_a_self_loop_and_a_mapped_recurrent_edge_feed_back_the_previous_output():
    import nir

    # IF with r = 1, dt = 1: v += x + w * z[t-1]; a spike at t = 0 feeds back w at t = 1.
    n = 1
    for loop_nodes, loop_edges, weight in (({}, [("if", "if")], 1.0),
                                           ({"w": nir.Scale(_f(n, value=0.25))}, [("if", "w"), ("w", "if")], 0.25)):
        nodes = {"input": nir.Input(input_type=np.array([n])),
                 "if": nir.IF(r=_f(n), v_threshold=_f(n, value=0.5), v_reset=_f(n, value=0.0)),
                 "output": nir.Output(output_type=np.array([n])), **loop_nodes}
        model = from_nir(_graph(nodes, [("input", "if"), ("if", "output"), *loop_edges], type_check=False), dt=1.0)
        recording = model.record(torch.tensor([[[1.0], [0.3], [0.0]]]))
        membrane = recording.layers[0].membrane[0, :, 0]
        # t0: 1 > 0.5 fires, reset 0; t1: 0 + 0.3 + weight; t2: that + weight if t1 fired
        after_t1 = 0.3 + weight
        fired = after_t1 > 0.5
        assert recording.layers[0].spikes[0, :, 0].tolist() == [1.0, float(fired), 0.0 if not fired else
                                                                 float(weight > 0.5)]
        assert membrane[1].item() == pytest.approx(0.0 if fired else after_t1)


@pytest.mark.parametrize("name", ["sc_neurocore.adapters.nir", "sc_neurocore.adapters.nir_structure",
                                  "sc_neurocore.dynamics.nir_euler"])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
