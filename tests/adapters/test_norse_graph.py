"""Norse models on the traced model graph: the graph equals Norse's own forward bit for bit on every Norse
zoo model, the explainers equal brute force through Norse's forward on them, the Norse step functions
equal Norse's, and what cannot be represented or wrapped is refused with the reason."""

from __future__ import annotations

import doctest
import importlib

import pytest
import torch
from brute_force import input_causal_loop, saliency_loop
from conftest import require_module
from torch import nn
from toy_models import random_spikes
from zoo.models_norse import MODELS, TutorialSNN, scale_weights

from sc_neurocore.adapters import as_spiking_model, from_module, from_norse
from sc_neurocore.explain import CausalImportance, TemporalSaliency
from sc_neurocore.graph import MEMBRANE_READOUTS

ENTRIES = {entry.name: entry for entry in MODELS}


@pytest.fixture(autouse=True)
def _norse():
    require_module("norse", "norse")


def _target(built) -> int:
    """The output neuron with the largest readout on the first sample: one the spikes move."""
    return int(built.raw_forward(built.spikes)[0].argmax())


def _model_and_spikes(built):
    """The entry's adapter (its bare model wrapped as an explainer wraps it) and its spikes `(B, T, N)`."""
    spikes = built.spikes.reshape(*built.spikes.shape[:2], -1)
    model = as_spiking_model(built.model, batched=None, n_inputs=spikes.shape[2], numpy_io=False,
                             input_shape=tuple(built.spikes.shape[2:]))
    return model, spikes


def _silenced(built, hooks):
    """`raw_forward` with `(module, neuron)` silenced by the entry's hook."""
    handles = [module.register_forward_hook(built.silence_hook(module, j)) for module, j in hooks]
    try:
        return built.raw_forward(built.spikes)
    finally:
        for handle in handles:
            handle.remove()


def test_the_zoo_has_every_kind_the_issue_names():
    layers = {layer for entry in MODELS for layer in entry.layers}
    assert {"LIFCell", "LICell", "Conv2d", "LIFRecurrentCell", "LIFBoxCell", "LIF"} <= layers
    assert len(MODELS) >= 5 and all(entry.framework == "norse" and entry.engine == "graph" for entry in MODELS)


@pytest.mark.parametrize("name", list(ENTRIES))
def test_graph_is_exact_on_every_zoo_model(name):
    built = ENTRIES[name].build()
    model, spikes = _model_and_spikes(built)
    expected = built.raw_forward(built.spikes)
    assert expected.abs().sum() > 0
    torch.testing.assert_close(model.run(spikes), expected, rtol=0, atol=0)
    graph = model.graph_for(spikes)
    assert graph is not None, model.graph_reason
    assert list(graph.neuron_layers) == list(model.neuron_layers)
    torch.testing.assert_close(graph.run(spikes), expected, rtol=0, atol=0)
    other = random_spikes(3, spikes.shape[1], spikes.shape[2], seed=7)
    graph = model.graph_for(other)  # verified again on these spikes
    assert graph is not None
    torch.testing.assert_close(graph.run(other), built.raw_forward(other), rtol=0, atol=0)


@pytest.mark.parametrize("name", list(ENTRIES))
def test_graph_silences_hidden_neurons_as_norse_does(name):
    built = ENTRIES[name].build()
    model, spikes = _model_and_spikes(built)
    graph = model.graph_for(spikes)
    for layer, (module, size) in built.hidden.items():
        mask = torch.zeros(len(spikes), size, dtype=torch.bool)
        mask[:, ::3] = True
        expected = _silenced(built, [(module, j) for j in range(0, size, 3)])
        assert not torch.equal(expected, built.raw_forward(built.spikes))
        torch.testing.assert_close(graph.run(spikes, silence={layer: mask}), expected, rtol=0, atol=0)
        torch.testing.assert_close(model.run(spikes, silence={layer: mask}), expected, rtol=0, atol=0)


@pytest.mark.parametrize("name", list(ENTRIES))
def test_record_equals_the_graph_where_norse_exposes_membranes(name):
    built = ENTRIES[name].build()
    model, spikes = _model_and_spikes(built)
    ours, graph = model.record(spikes), model.graph_for(spikes).record(spikes)
    for layer, traced in zip(ours.layers, graph.layers, strict=True):
        assert layer.name == traced.name and torch.equal(layer.spikes, traced.spikes)
        if getattr(model, "feed", None) == "sequence":  # the zoo's sequence-level stack is all LIF
            # A sequence-level LIF called once returns only its last state: not observable, never made up.
            assert torch.isnan(layer.membrane).all()
        else:
            torch.testing.assert_close(layer.membrane, traced.membrane, rtol=0, atol=0)


def test_sequence_level_membranes_with_record_states():
    import norse.torch as norse

    torch.manual_seed(9)
    net = scale_weights(norse.SequentialState(nn.Linear(8, 6), norse.LIF(record_states=True), nn.Linear(6, 3),
                                              norse.LIF(record_states=True)), 20)
    spikes = random_spikes(3, 10, 8, seed=9)
    model = from_norse(net, readout="final_membrane")
    with torch.no_grad():
        _, state = net(spikes.transpose(0, 1))
    torch.testing.assert_close(model.run(spikes), state[3].v[-1], rtol=0, atol=0)
    graph = model.graph_for(spikes)
    assert model.feed == "sequence" and graph is not None, model.graph_reason
    torch.testing.assert_close(model.record(spikes).layers[0].membrane, graph.record(spikes).layers[0].membrane,
                               rtol=0, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ENTRIES))
def test_explainers_equal_brute_force_on_every_zoo_model(name):
    built = ENTRIES[name].build()
    model, spikes = _model_and_spikes(built)
    target = _target(built)

    def forward(sample):
        return built.raw_forward(sample[None])[0]

    base = built.raw_forward(built.spikes)[:, target]
    # Norse's own forward of one sample differs in the last float32 bits with the batch it runs in
    # (F.linear's blocking), so a voltage readout is compared to float32 precision; spike counts exactly.
    close = {"rtol": 0, "atol": 0}
    if model.readout in MEMBRANE_READOUTS:
        close = {"rtol": 1e-5, "atol": 1e-5 * float(base.abs().max())}
    result = TemporalSaliency(built.model).explain(built.spikes, output_neuron=target)
    assert result.engine == ENTRIES[name].engine, result.engine_reason
    saliency = result.saliency_map().reshape(spikes.shape)
    expected = torch.stack([saliency_loop(forward, sample, target=target) for sample in spikes])
    assert expected.abs().sum() > 0
    torch.testing.assert_close(saliency.double(), expected, **close)
    importance = CausalImportance(built.model).explain(built.spikes, output_neuron=target).importance_map()
    expected = torch.stack([input_causal_loop(forward, sample, target=target) for sample in spikes])
    torch.testing.assert_close(importance.reshape(expected.shape).double(), expected, **close)
    for layer, (module, size) in built.hidden.items():
        result = CausalImportance(built.model).explain(built.spikes, output_neuron=target, layer=layer)
        assert result.engine == ENTRIES[name].engine, result.engine_reason
        expected = torch.stack([base - _silenced(built, [(module, j)])[:, target] for j in range(size)], dim=1)
        assert expected.abs().sum() > 0
        torch.testing.assert_close(result.importance_map(), expected, **close)


# -- the step functions against Norse's own ------------------------------------------------------------------

@pytest.mark.parametrize("reset", ["value", "subtract"])
def test_box_lif_step_is_norse_bit_for_bit(reset):
    import norse.torch as norse
    from norse.torch.functional.lif_box import LIFBoxFeedForwardState, lif_box_feed_forward_step
    from norse.torch.functional.reset import reset_subtract, reset_value

    from sc_neurocore.dynamics import CurrentBoxState, CurrentLIFBoxParameters, current_lif_box_step

    p = norse.LIFBoxParameters(tau_mem_inv=torch.as_tensor(150.0), v_leak=torch.as_tensor(0.1),
                               v_th=torch.as_tensor(0.7), v_reset=torch.as_tensor(-0.2),
                               reset_method=reset_value if reset == "value" else reset_subtract)
    ours = CurrentLIFBoxParameters(p.tau_mem_inv, p.v_leak, p.v_th, p.v_reset, reset, 0.001)
    generator = torch.Generator().manual_seed(0)
    theirs_state, our_state = LIFBoxFeedForwardState(torch.zeros(64)), CurrentBoxState(torch.zeros(64))
    fired = 0.0
    for _ in range(50):
        current = torch.randn(64, generator=generator) * 20
        z_t, theirs_state = lif_box_feed_forward_step(current, theirs_state, p, 0.001)
        z_o, our_state = current_lif_box_step(current, our_state, ours)
        assert torch.equal(z_t, z_o) and torch.equal(theirs_state.v, our_state.membrane)
        fired += float(z_o.sum())
    assert fired > 0


def test_box_li_step_is_norse_bit_for_bit():
    from norse.torch.functional.leaky_integrator_box import LIBoxParameters, LIBoxState, li_box_feed_forward_step

    from sc_neurocore.dynamics import CurrentBoxState, CurrentLIBoxParameters, current_li_box_step

    p = LIBoxParameters(tau_mem_inv=torch.as_tensor(120.0), v_leak=torch.as_tensor(0.3))
    ours = CurrentLIBoxParameters(p.tau_mem_inv, p.v_leak, 0.001)
    generator = torch.Generator().manual_seed(1)
    theirs_state, our_state = LIBoxState(torch.zeros(32)), CurrentBoxState(torch.zeros(32))
    for _ in range(30):
        current = torch.randn(32, generator=generator)
        v_t, theirs_state = li_box_feed_forward_step(current, theirs_state, p, 0.001)
        v_o, our_state = current_li_box_step(current, our_state, ours)
        assert torch.equal(v_t, v_o)


def test_li_box_cell_output_traces_exactly():
    import norse.torch as norse

    torch.manual_seed(3)
    net = norse.SequentialState(nn.Linear(8, 6), norse.LIFCell(), nn.Linear(6, 3), norse.LIBoxCell())
    with torch.no_grad():
        net[0].weight.mul_(30)
    spikes = random_spikes(3, 12, 8, seed=3)
    model = from_norse(net)
    assert model.readout == "max_membrane" and model.feed == "step"
    graph = model.graph_for(spikes)
    assert graph is not None, model.graph_reason
    torch.testing.assert_close(graph.run(spikes), model.run(spikes), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["sc_neurocore.adapters.norse", "sc_neurocore.dynamics.current"])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


# -- readouts and refusals -------------------------------------------------------------------------------------

def test_leaky_integrator_outputs_read_the_max_voltage_and_refuse_spike_readouts():
    tutorial = TutorialSNN()
    model = from_norse(tutorial)
    assert model.readout == "max_membrane"
    spikes = random_spikes(2, 10, 64, seed=4)
    with torch.no_grad():
        voltages = tutorial(spikes.transpose(0, 1))
    torch.testing.assert_close(model.run(spikes), voltages.amax(dim=0), rtol=0, atol=0)
    torch.testing.assert_close(from_norse(tutorial, readout="final_membrane").run(spikes), voltages[-1],
                               rtol=0, atol=0)
    stack = ENTRIES["norse-linear-lifcell-licell"].build().model.module
    assert ENTRIES["norse-linear-lifcell-licell"].build().model.readout == "max_membrane"
    for net in (tutorial, stack):
        for readout in ("count", "rate"):
            with pytest.raises(ValueError, match="leaky integrator and emits no spikes"):
                from_norse(net, readout=readout)


def test_wrong_adapter_is_refused_naming_the_right_one():
    snn = require_module("snntorch", "snntorch")
    net = nn.Sequential(nn.Linear(6, 3), snn.Leaky(beta=0.9, init_hidden=True, output=True))
    with pytest.raises(ValueError, match=r"snntorch neurons, not Norse.*from_snntorch"):
        from_norse(net)
    with pytest.raises(ValueError, match=r"no Norse neuron.*from_module"):
        from_norse(nn.Linear(6, 3))


class _StepWise(nn.Module):
    """A step-wise Norse module (no time loop): fed the whole sequence, its cell sees all steps as one."""

    def __init__(self) -> None:
        import norse.torch as norse

        super().__init__()
        self.fc = nn.Linear(6, 3)
        self.cell = norse.LIFCell()

    def forward(self, x):
        return self.cell(self.fc(x))[0]


def test_cells_fed_the_whole_sequence_are_refused_by_from_norse():
    import norse.torch as norse

    with pytest.raises(ValueError, match="takes one timestep per call.*fed it all 3 timesteps in one call"):
        from_norse(_StepWise())
    with pytest.raises(ValueError, match="takes one timestep per call"):
        from_norse(norse.LIFCell(), input_shape=4)


@pytest.mark.parametrize("build", ["module", "stack"])
def test_step_wise_norse_models_through_from_module_are_refused(build):
    import norse.torch as norse

    model = _StepWise() if build == "module" else norse.SequentialState(nn.Linear(6, 3), norse.LIFCell())
    with pytest.raises(ValueError, match="step-wise neuron is being fed the whole sequence"):
        from_module(model, time_first=True)


def test_norse_neurons_without_exact_dynamics_run_through_the_model():
    import norse.torch as norse

    torch.manual_seed(5)

    def custom_reset(z, v, reset, th):
        return (1 - z) * v + z * reset

    nets = [norse.SequentialState(nn.Linear(8, 6), norse.LIFAdExCell()),
            norse.SequentialState(nn.Linear(8, 6), norse.LIFBoxCell(norse.LIFBoxParameters(reset_method=custom_reset)))]
    spikes = random_spikes(2, 10, 8, seed=5)
    for net, reason in zip(nets, ["no step function", "reset method"], strict=True):
        with torch.no_grad():
            net[0].weight.mul_(20)
        model = from_norse(net)
        assert model.graph_for(spikes) is None and reason in model.graph_reason
        state, steps = None, []
        with torch.no_grad():
            for step in spikes.transpose(0, 1):
                out, state = net(step, state)
                steps.append(out)
        torch.testing.assert_close(model.run(spikes), torch.stack(steps).sum(dim=0), rtol=0, atol=0)


def test_recurrent_cell_fed_one_step_chunks_stops_feeding_back_when_silenced():
    # A LIFRecurrentCell beside a sequence-level LI is fed (1, B, N) chunks: its fed-back state.z is
    # (B, n), one step of the (1, B, n) chunk. Oracle: the silenced neuron's weights cut.
    import norse.torch as norse

    def build():
        torch.manual_seed(8)
        return scale_weights(norse.SequentialState(norse.LIFRecurrentCell(64, 6), nn.Linear(6, 3), norse.LI()), 10)

    def norse_chunks(net, spikes):
        state, steps = None, []
        with torch.no_grad():
            for step in spikes.transpose(0, 1):
                out, state = net(step[None], state)
                steps.append(out[0])
        return torch.stack(steps).amax(dim=0)

    spikes = random_spikes(3, 12, 64, seed=8)
    model = from_norse(build())
    assert model.feed == "chunk"
    mask = torch.zeros(3, 6, dtype=torch.bool)
    mask[:, 1] = True
    cut = build()
    with torch.no_grad():
        cut[0].recurrent_weights[:, 1] = 0
        cut[1].weight[:, 1] = 0
    expected = norse_chunks(cut, spikes)
    assert not torch.equal(expected, norse_chunks(build(), spikes))
    torch.testing.assert_close(model.run(spikes, silence={"0": mask}), expected, rtol=0, atol=0)
    graph = model.graph_for(spikes)
    assert graph is not None, model.graph_reason
    torch.testing.assert_close(graph.run(spikes, silence={"0": mask}), expected, rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["lift-conv", "lif-recurrent", "float64"])
def test_documented_norse_idioms_trace_exactly(kind):
    # Norse's docs: Lift(Conv2d) before a sequence-level LIF, called once on the whole sequence; the
    # sequence-level recurrent LIFRecurrent; a model in float64.
    import norse.torch as norse

    torch.manual_seed(6)
    spikes = random_spikes(3, 12, 64, seed=6)
    if kind == "lift-conv":
        net = scale_weights(norse.SequentialState(norse.Lift(nn.Conv2d(1, 4, 3)), norse.LIF(), norse.Lift(nn.Flatten()),
                                            nn.Linear(4 * 6 * 6, 3), norse.LIF()), 20)
        model, feed = from_norse(net, input_shape=(1, 8, 8)), "sequence"
        with torch.no_grad():
            expected = net(spikes.transpose(0, 1).reshape(12, 3, 1, 8, 8))[0].sum(dim=0)
    else:
        layers = ([nn.Linear(64, 6), norse.LIFRecurrent(6, 6), nn.Linear(6, 3), norse.LIF()] if kind == "lif-recurrent"
                  else [nn.Linear(64, 6), norse.LIFCell(), nn.Linear(6, 3), norse.LIFCell()])
        net = scale_weights(norse.SequentialState(*layers), 20)
        if kind == "float64":
            net = net.double()
            spikes = spikes.double()
        model, feed = from_norse(net), "chunk" if kind == "lif-recurrent" else "step"
        with torch.no_grad():
            if kind == "lif-recurrent":
                expected = net(spikes.transpose(0, 1))[0].sum(dim=0)
            else:
                state, steps = None, []
                for step in spikes.transpose(0, 1):
                    out, state = net(step, state)
                    steps.append(out)
                expected = torch.stack(steps).sum(dim=0)
    assert model.feed == feed and expected.sum() > 0
    torch.testing.assert_close(model.run(spikes), expected, rtol=0, atol=0)
    graph = model.graph_for(spikes)
    assert graph is not None, model.graph_reason
    torch.testing.assert_close(graph.run(spikes), expected, rtol=0, atol=0)
    hidden = next(iter(model.neuron_layers))
    mask = torch.zeros(3, model.neuron_layers[hidden], dtype=torch.bool)
    mask[:, 0] = True
    silenced = model.run(spikes, silence={hidden: mask})
    torch.testing.assert_close(graph.run(spikes, silence={hidden: mask}), silenced, rtol=0, atol=0)
    if kind == "lif-recurrent":
        # Independent oracle: a silenced neuron neither feeds back nor forward, as if its weights were cut.
        with torch.no_grad():
            net[1].recurrent_weights[:, 0] = 0
            net[2].weight[:, 0] = 0
            cut = net(spikes.transpose(0, 1))[0].sum(dim=0)
        assert not torch.equal(cut, expected)
        torch.testing.assert_close(silenced, cut, rtol=0, atol=0)
