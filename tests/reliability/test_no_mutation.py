"""No call changes what it is given: inputs, weights, model parameters, buffers, hidden framework state,
training flags, hooks -- nor the process's torch / NumPy settings (threads, grad mode, RNG)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import require_module
from sc_neurocore.engine import execute
from sc_neurocore.engine.plans import remove_each_spike, silence_each_neuron
from sc_neurocore.explain import SpikeAttributor

from . import snapshot
from .zoo import ZOO, ZOO_IDS, as_input, explanations, spikes


@pytest.mark.parametrize("entry", ZOO, ids=ZOO_IDS)
def test_explaining_mutates_nothing(entry):
    for module, extra in entry.needs:
        require_module(module, extra)
    model = entry.build()
    if isinstance(model, torch.nn.Module):
        model.train()  # a model left in training mode must stay in it (explanations run it in eval mode)
    batch_spikes = spikes(3)
    targets = torch.tensor([0, 2, 1])
    given = as_input(entry, batch_spikes)
    before = (snapshot.of_value(given), snapshot.of_value(model), snapshot.of_value(targets),
              snapshot.of_process())
    explanations(entry, model, batch_spikes, targets)
    explanations(entry, model, batch_spikes[0])  # a lone (T, N) sample too
    after = (snapshot.of_value(given), snapshot.of_value(model), snapshot.of_value(targets),
             snapshot.of_process())
    for what, b, a in zip(("input spikes", "model", "targets", "process settings"), before, after, strict=True):
        assert a == b, f"{what} changed"


@pytest.mark.parametrize("name", ["snntorch", "snntorch-bare", "snntorch-own-loop"])
def test_snntorch_reset_state_is_restored(name):
    require_module("snntorch", "snntorch")
    entry = next(entry for entry in ZOO if entry.name == name)
    model = entry.build()
    before = snapshot.of_value(model)
    explanations(entry, model, spikes(3), torch.tensor([0, 2, 1]))
    assert snapshot.of_value(model) == before


@pytest.mark.parametrize("as_numpy", [False, True], ids=["torch", "numpy"])
def test_attribution_mutates_neither_spikes_nor_weights(as_numpy):
    generator = torch.Generator().manual_seed(0)
    weights = [torch.randn(8, 6, generator=generator), torch.randn(6, 3, generator=generator)]
    batch_spikes = spikes(2)
    if as_numpy:
        weights = [w.numpy() for w in weights]
        batch_spikes = batch_spikes.numpy()
    before = snapshot.of_value(batch_spikes), snapshot.of_value(weights), snapshot.of_process()
    result = SpikeAttributor(decay=0.9).attribute(batch_spikes, weights, output_neuron=[1, 2])
    # Results do not alias the caller's arrays either: writing into them leaves the inputs alone.
    scores = result.attribution_map()
    scores[...] = 7
    assert (snapshot.of_value(batch_spikes), snapshot.of_value(weights), snapshot.of_process()) == before
    assert not np.shares_memory(np.asarray(scores), np.asarray(batch_spikes))


def test_engine_mutates_neither_spikes_nor_model():
    from .zoo import lif, lif_generic

    batch_spikes = spikes(2)
    for model in (lif(), lif_generic()):
        before = snapshot.of_value(batch_spikes), snapshot.of_module(model), snapshot.of_process()
        with torch.inference_mode():
            execute(model, batch_spikes, remove_each_spike(batch_spikes))
            execute(model, batch_spikes, silence_each_neuron("0", 6, 2, batch_spikes.device))
            execute(model, batch_spikes, None)
        assert (snapshot.of_value(batch_spikes), snapshot.of_module(model), snapshot.of_process()) == before


def test_the_snapshot_sees_changes():
    # The checks above can fail: every kind of change they guard against shows in a snapshot.
    from .zoo import StatefulUserModule

    model = StatefulUserModule()
    base = snapshot.of_module(model)
    model(spikes(2))  # rewrites the `membrane` buffer
    assert snapshot.of_module(model) != base
    model = StatefulUserModule()
    model.fc1.weight.data[0, 0] += 1e-7
    assert snapshot.of_module(model) != base
    model = StatefulUserModule()
    model.eval()
    assert snapshot.of_module(model) != base
    model = StatefulUserModule()
    model.fc2.register_forward_hook(lambda *args: None)
    assert snapshot.of_module(model) != base
    x = spikes(1)
    before = snapshot.of_value(x)
    x[0, 0, 0] = 1 - x[0, 0, 0]
    assert snapshot.of_value(x) != before
    process = snapshot.of_process()
    torch.rand(1)
    assert snapshot.of_process() != process
