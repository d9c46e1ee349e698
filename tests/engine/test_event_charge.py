"""Charge-then-reset layers (SpikingJelly `IFNode` / `LIFNode` / `ParametricLIFNode`, Norse `LIFBoxCell`) in the
event engine equal the naive loop: the framework's own forward on one perturbed copy at a time, bit for bit outside
the reported tie mask, and every row, tie rows included, the traced graph's own naive loop.

Random stacks through the frameworks (float32), float64 graphs built by hand, a check of the rounding bound itself
(the framework's own float charged membrane of each perturbed copy lies within the loose radius at every step the
kernel scans), and the refusals of what the kernel does not model."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sc_neurocore.dynamics import (
    CurrentLIFBoxParameters,
    IntegrateFireParameters,
    current_box_initial_state,
    current_lif_box_step,
    integrate_fire_initial_state,
    integrate_fire_step,
)
from sc_neurocore.dynamics.nir_euler import EulerParameters, euler_initial_state, euler_step
from sc_neurocore.engine import event, event_kernels, event_tables, execute
from sc_neurocore.engine.charge_forms import charge_form, charged_membranes
from sc_neurocore.engine.lower import to_compiled_stack
from sc_neurocore.engine.plans import remove_each_spike
from sc_neurocore.graph import Dense, ModelGraph, NeuronNode, Segment

import bound_checks
from bound_checks import kernel_scan, logging_copy
from event_networks import check_event_stack, graph_plans, linear_stack, naive_rows

STACKS = settings(max_examples=25, deadline=None, derandomize=True, database=None)


@st.composite
def spikingjelly_stacks(draw):
    """A random SpikingJelly Linear + IF / LIF / PLIF stack (a hard reset to 0 or a soft one) and its spikes."""
    from conftest import require_module

    require_module("spikingjelly", "spikingjelly")
    from spikingjelly.activation_based import neuron

    def node(draw):
        kind = draw(st.sampled_from(["if", "lif", "plif"]))
        common = {"v_threshold": draw(st.sampled_from([0.5, 1.0])),
                  "v_reset": draw(st.sampled_from([0.0, None]))}  # a hard reset to 0, or a soft one
        if kind == "if":
            return neuron.IFNode(**common)
        if kind == "lif":
            return neuron.LIFNode(tau=draw(st.sampled_from([1.5, 2.0, 3.0, 10.0])), decay_input=draw(st.booleans()),
                                  **common)
        return neuron.ParametricLIFNode(init_tau=draw(st.sampled_from([1.5, 2.5, 8.0])),
                                        decay_input=draw(st.booleans()), **common)

    layers, spikes = linear_stack(draw, node, [1.5, 3.0, 5.0])
    return torch.nn.Sequential(*layers).eval(), spikes


@st.composite
def norse_stacks(draw):
    """A random Norse Linear + LIFBoxCell stack (a reset to 0 or by subtraction) and its spikes."""
    from conftest import require_module

    require_module("norse", "norse")
    import norse.torch as norse
    from norse.torch.functional.reset import reset_subtract, reset_value

    def cell(draw):
        return norse.LIFBoxCell(norse.LIFBoxParameters(
            tau_mem_inv=torch.as_tensor(draw(st.sampled_from([100.0, 200.0, 500.0]))),
            v_th=torch.as_tensor(draw(st.sampled_from([0.5, 1.0]))),
            reset_method=draw(st.sampled_from([reset_value, reset_subtract]))))

    layers, spikes = linear_stack(draw, cell, [10.0, 20.0, 40.0])
    return norse.SequentialState(*layers), spikes


@pytest.mark.slow
@STACKS
@given(spikingjelly_stacks())
def test_spikingjelly_stacks_equal_the_naive_loop(problem):
    from sc_neurocore.adapters import from_spikingjelly

    sequential, spikes = problem
    check_event_stack(from_spikingjelly(sequential), spikes)


@pytest.mark.slow
@STACKS
@given(norse_stacks())
def test_norse_box_stacks_equal_the_naive_loop(problem):
    from sc_neurocore.adapters import from_norse

    sequential, spikes = problem
    check_event_stack(from_norse(sequential), spikes)


def hand_graph(dtype: torch.dtype, sizes: list[int], kind: str, seed: int, gain: float = 3.0) -> ModelGraph:
    """Dense + charge-then-reset layers built by hand (their own reference: `graph.run`)."""
    generator = torch.Generator().manual_seed(seed)
    segments = []
    for index, (a, b) in enumerate(itertools.pairwise(sizes)):
        weight = torch.randn(b, a, generator=generator, dtype=dtype) * (gain / a ** 0.5)
        bias = torch.randn(b, generator=generator, dtype=dtype) * 0.1
        soft = kind.endswith("-soft")
        kind = kind.removesuffix("-soft")
        if kind.startswith("nir"):
            gain, r, zero, threshold = (torch.tensor(v, dtype=dtype) for v in (0.2 if kind == "nir-lif" else 0.5,
                                                                                1.5, 0.0, 0.9))
            euler = EulerParameters(gain, r, zero, threshold, zero, leaky=kind == "nir-lif")
            weight = weight * (6 if kind == "nir-lif" else 3)
            neuron = NeuronNode(str(index), kind, (b,), euler_step, euler,
                                lambda like, euler=euler: euler_initial_state(like, euler))
        elif kind == "box":
            box = CurrentLIFBoxParameters(torch.tensor(200.0, dtype=dtype), 0.0, torch.tensor(0.8, dtype=dtype),
                                          reset="subtract" if soft else "value")
            weight = weight * 5
            neuron = NeuronNode(str(index), "box", (b,), current_lif_box_step, box,
                                lambda like, box=box: current_box_initial_state(like, box))
        else:
            v_reset = None if soft else 0.0
            params = {"if": IntegrateFireParameters(1.0, v_reset),
                      "lif": IntegrateFireParameters(1.0, v_reset, tau=2.0),
                      "lif-no-decay-input": IntegrateFireParameters(1.0, v_reset, tau=3.0, decay_input=False),
                      "plif": IntegrateFireParameters(1.0, v_reset, decay=torch.tensor(0.4, dtype=dtype))}[kind]
            neuron = NeuronNode(str(index), kind, (b,), integrate_fire_step, params,
                                lambda like, params=params: integrate_fire_initial_state(like, params))
        segments.append(Segment((Dense((a,), (b,), weight, bias),), neuron))
    return ModelGraph((sizes[0],), segments, "count")


KINDS = ["if", "lif", "lif-no-decay-input", "plif", "box", "nir-lif", "nir-if", "if-soft", "lif-soft",
         "lif-no-decay-input-soft", "plif-soft", "box-soft"]


@pytest.mark.parametrize("kind", KINDS)
def test_float64_graphs_equal_their_naive_loop(kind):
    graph = hand_graph(torch.float64, [20, 12, 4], kind, seed=1, gain=4.0)
    spikes = (torch.rand(2, 12, 20, generator=torch.Generator().manual_seed(5)) < 0.3).double()
    assert graph.run(spikes).sum() > 0  # not vacuous: the output fires
    changed = 0
    for plan in graph_plans(spikes, graph):
        outputs, info = execute(graph, spikes, plan, engine="event", return_info=True)
        assert info.engine == "event"
        expected = naive_rows(graph.run, spikes, plan)
        assert torch.equal(outputs, expected)
        changed += int((expected != graph.run(spikes)[plan.sample]).any(dim=1).sum())
    assert changed > 0  # not vacuous: some perturbations change the output


# The line of `_scan_row` after which the logging copy logs (the test fails loudly if the kernel no longer has it).
STEP = "                d = new\n                dt = new_t\n"
LOGGED = "                LOG.append((ROW[0], j, t, d + membrane[b, j, t], spread * bound[b, j, t] + rx))\n"


def _charged(layer, currents: torch.Tensor, states) -> np.ndarray:
    return charged_membranes(layer, currents, states.membrane)[0].double().numpy()


def worst_error(graph: ModelGraph, x: torch.Tensor) -> tuple[int, float]:
    """``(steps checked, the largest |true - estimate| / radius)`` over every step the kernel scans for the spike
    removals of ``x`` (`bound_checks.worst_error`): the true value is the charged membrane of the perturbed copy's
    own float forward. No tight tables for these layers: a loose tie goes to the model's forward."""
    return bound_checks.worst_error(graph, x, _charged, kernel_scan(logging_copy(event_kernels, {STEP: LOGGED}),
                                                                     "propagate_layer"))


@pytest.mark.parametrize("kind", KINDS)
def test_the_true_float_charge_lies_within_the_loose_radius(kind):
    gain = 1.5 if kind.removesuffix("-soft") in ("if", "box", "nir-if") else 4.0
    graph = hand_graph(torch.float32, [160, 48, 6], kind, seed=11, gain=gain)
    checked, worst = worst_error(graph, (torch.rand(1, 20, 160, generator=torch.Generator().manual_seed(12)) < 0.12)
                                 .float())
    assert checked > 1000  # not vacuous: many scanned steps
    assert worst <= 1.0, "the loose bound fails"
    assert worst > 1e-3  # and the radius is of the size of the rounding, not far above it


def test_the_bound_check_fails_without_the_charges_rounding(monkeypatch):
    """The check above has teeth: with the charge's own rounding left out of the tables, true values fall outside.

    A membrane that drifts on a constant bias (0.1, not a float) rounds the same way at every step, an error the
    product's bound (the bias alone, added exactly) does not cover."""
    from sc_neurocore.engine import charge_forms

    def unrounded(layer):
        form = charge_form(layer)
        return form._replace(k_prev=form.k_prev * 0, k_current=form.k_current * 0, k_charged=0.0)

    monkeypatch.setattr(event_tables, "charge_form", unrounded)
    assert charge_forms.charge_form is charge_form  # only the tables lose it
    generator = torch.Generator().manual_seed(3)
    weight, bias = torch.randn(8, 20, generator=generator) * 0.05, torch.full((8,), 0.1)
    params = IntegrateFireParameters(7.9, 0.0)
    node = NeuronNode("1", "if", (8,), integrate_fire_step, params,
                      lambda like: integrate_fire_initial_state(like, params))
    graph = ModelGraph((20,), [Segment((Dense((20,), (8,), weight, bias),), node)], "count")
    x = (torch.rand(1, 80, 20, generator=generator) < 0.02).float()
    checked, worst = worst_error(graph, x)
    assert checked > 100 and worst > 1.0
    monkeypatch.undo()
    assert worst_error(graph, x)[1] <= 1.0  # with it, the same steps are covered


def test_framework_roundings_are_bounded_on_trained_like_weights():
    """The bound on a layer whose float charge rounds often (many inputs, small weights, a long window)."""
    graph = hand_graph(torch.float32, [400, 64, 10], "lif", seed=21, gain=4.0)
    spikes = (torch.rand(1, 30, 400, generator=torch.Generator().manual_seed(22)) < 0.08).float()
    plan = remove_each_spike(spikes)
    outputs, info = execute(graph, spikes, plan, engine="event", return_info=True)
    assert info.engine == "event"
    assert torch.equal(outputs, naive_rows(graph.run, spikes, plan))


@pytest.mark.parametrize("kind,change,why", [
    ("lif", {"v_reset": 0.25}, "v_reset other than 0"),
    ("lif", {"tau": 1.0}, "decay outside"),
    ("lif", {"v_threshold": torch.ones(2)}, "neither one value nor one per neuron"),
    ("nir-lif", {"v_leak": torch.tensor(0.1)}, "v_leak other than 0"),
    ("nir-lif", {"v_reset": torch.tensor(0.1)}, "v_reset other than 0"),
    ("nir-lif", {"v_threshold": None}, "emits its membrane"),
    ("nir-lif", {"syn_gain": torch.tensor(0.1), "w_in": torch.tensor(1.0)}, "synaptic"),
    ("box", {"v_leak": 0.1}, "v_leak other than 0"),
    ("box", {"v_reset": -0.1}, "v_reset other than 0")])
def test_what_the_kernel_does_not_model_is_refused(kind, change, why):
    graph = hand_graph(torch.float32, [6, 3, 2], kind, seed=0)
    assert event.unsupported(to_compiled_stack(graph)) is None
    first = graph.segments[0]
    neuron = dataclasses.replace(first.neuron, params=first.neuron.params._replace(**change))
    changed = ModelGraph(graph.input_shape, [first._replace(neuron=neuron), *graph.segments[1:]], graph.readout)
    stack = to_compiled_stack(changed)
    assert stack is not None and why in str(event.unsupported(stack))
    if why in ("emits its membrane", "neither one value nor one per neuron"):  # not a model the graph can run
        return
    # Refused, the plan still runs exactly, on another executor.
    spikes = (torch.rand(1, 8, 6, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    plan = remove_each_spike(spikes)
    outputs, info = execute(changed, spikes, plan, return_info=True)
    assert info.engine != "event" and torch.equal(outputs, naive_rows(changed.run, spikes, plan))


@pytest.mark.slow
@pytest.mark.parametrize("readout", ["final_membrane", "max_membrane"])
@pytest.mark.parametrize("kind", ["lif", "box-soft", "nir-lif"])
def test_membrane_readouts_replay_the_rows_inside_the_loose_bound(kind, readout):
    """A membrane readout is a float: every row whose output layer's input changed is replayed there, and a hidden
    layer's rows inside the loose bound from that layer, in the naive loop's call shapes."""
    from sc_neurocore.engine.plans import silence_each_neuron

    graph = hand_graph(torch.float32, [300, 64, 5], kind, seed=4, gain=4.0)
    graph = ModelGraph(graph.input_shape, graph.segments, readout)
    spikes = (torch.rand(2, 25, 300, generator=torch.Generator().manual_seed(6)) < 0.1).float()
    stack = to_compiled_stack(graph)
    assert "membrane" in str(event.unsupported(stack)) and event.unsupported(stack, tight=True) is None
    replayed_ties = 0
    for plan in (remove_each_spike(spikes), silence_each_neuron("0", 64, 2, spikes.device)):
        outputs, info = execute(graph, spikes, plan, engine="event", return_info=True)
        assert info.engine == "event"
        expected = naive_rows(graph.run, spikes, plan)
        assert torch.equal(outputs, expected)
        assert not torch.equal(outputs, graph.run(spikes)[plan.sample])  # the perturbations change them
        replayed_ties += int(info.tie_mask.sum())
    assert replayed_ties > 0  # not vacuous: some rows sat inside the loose bound of the hidden layer
