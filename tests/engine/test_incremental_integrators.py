"""A stack that ends in a leaky integrator (Norse `LICell`, NIR `LI` / `CubaLI`: a membrane readout, no
spikes) runs on the incremental engine and equals brute force through the framework's own forward (to the
zoo harness's float32 tolerance for membrane readouts). Its last layer takes no spike decision, so it is never
near a threshold (the replay's near-tie watch used to read a threshold the integrator does not have)."""

from __future__ import annotations

import torch
from brute_force import saliency_loop
from conftest import require_module
from zoo import collect

from sc_neurocore.engine.incremental import never_decides
from sc_neurocore.engine.recorded import compiled_stack
from sc_neurocore.explain import TemporalSaliency
from sc_neurocore.graph import ModelGraph

INTEGRATOR_MODELS = [entry for entry in collect() if entry.framework in ("norse", "nir")
                     and entry.refused is None]


def _graph(built, spikes) -> ModelGraph | None:
    if isinstance(built.model, ModelGraph):
        return built.model
    graph_for = getattr(built.model, "graph_for", None)
    if callable(graph_for):
        return graph_for(spikes)
    return None


def _integrator_stack(entry):
    """`(built, spikes)` of a zoo entry whose lowered stack ends in an integrator, else `None`."""
    if entry.extra is not None:
        require_module(entry.extra, entry.extra)
    built = entry.build()
    spikes = built.spikes[:1]
    graph = _graph(built, spikes) if entry.framework == "norse" else None
    if graph is None and entry.framework == "nir":
        from sc_neurocore.adapters import from_nir

        graph = built.model if isinstance(built.model, ModelGraph) else from_nir(built.model)
    stack = None if graph is None else compiled_stack(graph)
    if stack is None or stack.layers[-1].decision is not never_decides:
        return None
    return built, spikes


def test_integrator_readouts_on_the_incremental_engine_equal_brute_force():
    checked = []
    for entry in INTEGRATOR_MODELS:
        found = _integrator_stack(entry)
        if found is None:  # no integrator readout, or one that does not lower to a stack
            continue
        built, spikes = found
        target = int(built.raw_forward(spikes)[0].argmax())
        result = TemporalSaliency(built.model, engine="incremental").explain(spikes, output_neuron=target)
        assert result.executor == "incremental"
        expected = saliency_loop(lambda one, built=built: built.raw_forward(one[None])[0], spikes[0], target)
        assert float(expected.abs().sum()) > 0, f"{entry.name}: removing a spike must change the readout"
        # As the zoo harness compares membrane readouts: the framework's float32 forward on one copy at a
        # time and any batched forward (ours, or its own on a batch) may round a membrane an ulp apart.
        torch.testing.assert_close(torch.as_tensor(result.saliency_map())[0].double(), expected, rtol=1e-5,
                                   atol=1e-5, msg=lambda message, name=entry.name: f"{name}: {message}")
        checked.append(entry.name)
    assert len(checked) >= 2, f"too few zoo models end in an integrator that lowers to a stack: {checked}"
