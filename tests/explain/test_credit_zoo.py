"""mode="auto" on the whole test zoo: every model with a traced graph is explained (every neuron type the graph
supports), batch == per-sample, NumPy in gives NumPy out, no score without a spike; the rest are refused by name."""

import numpy as np
import pytest
import torch
from conftest import require_module
from zoo import collect

from sc_neurocore.adapters import as_spiking_model
from sc_neurocore.explain import SpikeAttributor

#: The zoo's traced models the rule refuses, with the reason's fragment: a bare threshold has no membrane.
REFUSED = {"nir-integrator-threshold-cubali": r"layer 'threshold' \(threshold\)"}
ENTRIES = collect()


@pytest.mark.parametrize("entry", ENTRIES, ids=[entry.name for entry in ENTRIES])
def test_auto_on_every_zoo_model(entry):
    if entry.extra is not None:
        require_module(entry.extra, entry.extra)
    built = entry.build()
    spikes = built.spikes
    flat = spikes.reshape(spikes.shape[0], spikes.shape[1], -1)
    model = as_spiking_model(built.model, batched=None, n_inputs=flat.shape[2], numpy_io=False,
                             input_shape=tuple(spikes.shape[2:]))
    attributor = SpikeAttributor(mode="auto")
    if entry.engine != "graph" or entry.name in REFUSED:
        with pytest.raises(ValueError, match=REFUSED.get(entry.name, "traced graph")):
            attributor.attribute(flat, model, 0)
        return
    targets = model.run(flat).argmax(dim=1)
    batch = attributor.attribute(flat, model, targets).attribution_map()
    assert batch.shape == flat.shape and bool(torch.isfinite(batch).all())
    assert bool((batch[flat == 0] == 0).all()) and float(batch.abs().sum()) > 0
    for b in range(flat.shape[0]):
        single = attributor.attribute(flat[b], model, int(targets[b])).attribution_map()
        torch.testing.assert_close(batch[b], single, rtol=1e-5, atol=1e-6)
    from_numpy = attributor.attribute(flat.numpy(), model, targets.numpy()).attribution_map()
    assert isinstance(from_numpy, np.ndarray)
    np.testing.assert_allclose(from_numpy, batch.numpy(), rtol=1e-6, atol=1e-7)
