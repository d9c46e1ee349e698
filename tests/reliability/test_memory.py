"""``max_memory`` is respected, and CUDA out-of-memory halves the chunk instead of failing or lying.

Memory is measured, not estimated: :class:`~memory.LiveBytes` tracks every tensor storage created while
the engine runs (perturbed inputs, masks, currents, spikes, states) and reports the peak alive at once.
The one allocation that legitimately grows with the plan rather than the chunk, the ``(P, C)`` output
buffer, is allowed on top of the budget.

Out-of-memory is simulated on CPU by a model that raises ``torch.cuda.OutOfMemoryError`` whenever it is
called with more than a given number of rows: the engine must halve its chunk, log it, and return the
same complete result; when even one row does not fit, it must raise, never return part of a result.
"""

from __future__ import annotations

import logging

import pytest
import torch

from sc_neurocore.engine import execute
from sc_neurocore.engine.batched import run_plan
from sc_neurocore.engine.plans import remove_each_spike, silence_each_neuron, silence_prefixes
from sc_neurocore.explain import CausalImportance, TemporalSaliency
from sc_neurocore.models import LIFNetwork

from .memory import LiveBytes

# These tests check that chunks stay inside their budget down to the smallest chunks the engine can cut;
# raising a budget below the workable minimum is tested in tests/engine/test_budget.py.
pytestmark = pytest.mark.usefixtures("chunks_of_any_size")


def _problem(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    net = LIFNetwork([torch.randn(30, 20, generator=generator), torch.randn(20, 5, generator=generator)],
                     threshold=0.5)
    spikes = (torch.rand(2, 12, 30, generator=generator) < 0.2).float()
    return net, spikes


class Wrapped:
    """A SpikingModel around an LIFNetwork that the incremental engine does not know: the generic path.

    Records the rows of every call; raises a (simulated) CUDA out-of-memory error when called with more
    than ``oom_above`` rows, or on the calls listed in ``oom_on_calls``.
    """

    def __init__(self, net: LIFNetwork, oom_above: int | None = None, oom_on_calls: tuple[int, ...] = ()) -> None:
        self.net = net
        self.oom_above = oom_above
        self.oom_on_calls = oom_on_calls
        self.rows: list[int] = []

    @property
    def neuron_layers(self):
        return self.net.neuron_layers

    @property
    def n_inputs(self):
        return self.net.n_inputs

    def linear_weights(self):
        return self.net.linear_weights()

    def record(self, spikes):
        return self.net.record(spikes)

    def run(self, spikes, silence=None):
        self.rows.append(spikes.shape[0])
        if (self.oom_above is not None and spikes.shape[0] > self.oom_above) or len(self.rows) in self.oom_on_calls:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (simulated for {spikes.shape[0]} rows)")
        return self.net.run(spikes, silence=silence)


def _plans(net, spikes):
    n_samples = spikes.shape[0]
    order = torch.arange(20).flip(0)
    return {"spike removals": remove_each_spike(spikes),
            "input silencing": silence_each_neuron("input", spikes.shape[2], n_samples, spikes.device),
            "hidden silencing": silence_each_neuron("0", 20, n_samples, spikes.device),
            "hidden prefixes": silence_prefixes("0", order, n_samples)}


def _peak(run) -> tuple[int, torch.Tensor]:
    tracker = LiveBytes()
    with torch.inference_mode(), tracker:
        outputs = run()
    return tracker.peak, outputs


@pytest.mark.parametrize("plan_name", ["spike removals", "input silencing", "hidden silencing", "hidden prefixes"])
@pytest.mark.parametrize("max_memory", [25_000, 60_000, 150_000])
def test_generic_engine_stays_within_max_memory(plan_name, max_memory):
    net, spikes = _problem()
    plan = _plans(net, spikes)[plan_name]
    model = Wrapped(net)
    peak, outputs = _peak(lambda: run_plan(model, spikes, plan, max_memory=max_memory))
    output_buffer = outputs.numel() * outputs.element_size()
    assert peak - output_buffer <= max_memory, f"peak {peak} B (+ {output_buffer} B outputs) over {max_memory} B"
    # Not vacuous: the budget is used (chunks are as big as it allows), so the peak is of its order.
    assert len(model.rows) > 1 and peak - output_buffer >= max_memory // 4
    assert torch.equal(outputs, run_plan(net, spikes, plan))


@pytest.mark.parametrize("plan_name", ["spike removals", "input silencing", "hidden silencing", "hidden prefixes"])
def test_incremental_engine_stays_within_max_memory_once_compiled(plan_name):
    from sc_neurocore.engine.compile import compiled_for
    from sc_neurocore.engine.incremental import run_incremental

    net, _ = _problem()
    spikes = (torch.rand(4, 12, 30, generator=torch.Generator().manual_seed(2)) < 0.2).float()
    plan = _plans(net, spikes)[plan_name]
    stack = compiled_for(net, spikes)
    peak, outputs = _peak(lambda: run_incremental(stack, spikes, plan, max_memory=25_000))
    # Allowed on top of the budget, as for the generic engine: what grows with the plan, not the chunk --
    # the (P, C) outputs and a few int64 index vectors of length P (the rows' order and sample groups).
    per_plan = outputs.numel() * outputs.element_size() + 4 * 8 * len(plan)
    assert peak - per_plan <= 25_000, f"peak {peak} B with {per_plan} B of plan-sized tensors"
    assert torch.equal(outputs, run_plan(net, spikes, plan))


def test_incremental_engine_stays_within_max_memory():
    """Through execute(), which first checks the compiled stack against the model on these very spikes."""
    net, _ = _problem()
    spikes = (torch.rand(16, 12, 30, generator=torch.Generator().manual_seed(1)) < 0.2).float()
    plan = silence_each_neuron("0", 20, spikes.shape[0], spikes.device)
    peak, outputs = _peak(lambda: execute(net, spikes, plan, max_memory=25_000))
    assert peak - outputs.numel() * outputs.element_size() <= 25_000


def test_out_of_memory_halves_the_chunk_and_completes(caplog):
    net, spikes = _problem()
    expected = TemporalSaliency(net).explain(spikes, output_neuron=1).saliency_map()
    model = Wrapped(net, oom_above=7)
    with caplog.at_level(logging.WARNING, logger="sc_neurocore.engine"):
        got = TemporalSaliency(model).explain(spikes, output_neuron=1).saliency_map()
    assert torch.equal(got, expected)
    assert "out of memory" in caplog.text and "halving" in caplog.text
    # Halved, not shrunk to one row: every successful call after the first failure has 4 to 7 rows, save
    # the plan's last remainder.
    first_fit = next(i for i, rows in enumerate(model.rows) if rows <= 7 and i > 0)
    assert set(model.rows[first_fit:-1]) <= set(range(4, 8)), model.rows


def test_out_of_memory_in_the_baseline_halves_too(caplog):
    net, _ = _problem()
    spikes = (torch.rand(9, 12, 30, generator=torch.Generator().manual_seed(3)) < 0.2).float()
    expected = CausalImportance(net).explain(spikes, output_neuron=0, layer="0").importance_map()
    with caplog.at_level(logging.WARNING, logger="sc_neurocore.engine"):
        got = CausalImportance(Wrapped(net, oom_above=2)).explain(spikes, output_neuron=0, layer="0")
    assert torch.equal(got.importance_map(), expected)
    assert "halving" in caplog.text


def test_transient_out_of_memory_mid_run_is_retried():
    net, spikes = _problem()
    expected = TemporalSaliency(net, max_memory=40_000).explain(spikes).saliency_map()
    model = Wrapped(net, oom_on_calls=(4,))  # the third perturbation chunk fails once
    got = TemporalSaliency(model, max_memory=40_000).explain(spikes).saliency_map()
    assert torch.equal(got, expected)


def test_out_of_memory_at_one_row_raises_and_returns_nothing():
    net, spikes = _problem()
    model = Wrapped(net, oom_above=0)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        TemporalSaliency(model).explain(spikes)
    # After some chunks succeeded, a failure at one row still raises: no partial result comes back.
    model = Wrapped(net, oom_on_calls=tuple(range(5, 10_000)))
    result = None
    with pytest.raises(torch.cuda.OutOfMemoryError):
        result = TemporalSaliency(model, max_memory=40_000).explain(spikes)
    assert result is None and model.rows[-1] == 1 and len(model.rows) > 5


def test_out_of_memory_in_the_incremental_engine_halves_the_chunk(monkeypatch, caplog):
    monkeypatch.setenv("SC_NEUROCORE_ENGINE", "incremental")  # the executor under test
    import sc_neurocore.engine.incremental as incremental

    net, spikes = _problem()
    plan = remove_each_spike(spikes)
    expected = run_plan(net, spikes, plan)
    replay = incremental.replay
    sizes = []

    def replay_within_three_rows(*args, **kwargs):
        replayed = replay(*args, **kwargs)
        rows = (replayed[0] if isinstance(replayed, tuple) else replayed).shape[0]  # outputs first
        sizes.append(rows)
        if rows > 3:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (simulated for {rows} rows)")
        return replayed

    monkeypatch.setattr(incremental, "replay", replay_within_three_rows)
    with caplog.at_level(logging.WARNING, logger="sc_neurocore.engine"):
        got = execute(net, spikes, plan)
    assert torch.equal(got, expected)
    assert sizes[0] > 3 and "halving" in caplog.text  # the incremental path ran, failed, and halved
    # At one row the incremental engine gives up and raises (never a partial result) ...
    monkeypatch.setattr(incremental, "replay", lambda *args, **kwargs: (_ for _ in ()).throw(
        torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")))
    from sc_neurocore.engine.compile import compile_model

    with pytest.raises(torch.cuda.OutOfMemoryError):
        incremental.run_incremental(compile_model(net), spikes, plan)
    # ... and execute then completes the run on the generic path.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sc_neurocore.engine"):
        assert torch.equal(execute(net, spikes, plan), expected)
    assert "generic batched path" in caplog.text


def test_out_of_memory_the_incremental_engine_cannot_absorb_falls_back_to_the_generic_path(monkeypatch, caplog):
    monkeypatch.setenv("SC_NEUROCORE_ENGINE", "incremental")  # the executor under test
    import sc_neurocore.engine as engine

    net, spikes = _problem()
    plan = remove_each_spike(spikes)
    expected = run_plan(net, spikes, plan)
    attempts = []

    def baseline_does_not_fit(*args, **kwargs):
        attempts.append(1)
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated: the baseline cache)")

    monkeypatch.setattr(engine, "run_incremental", baseline_does_not_fit)
    with caplog.at_level(logging.WARNING, logger="sc_neurocore.engine"):
        got = execute(net, spikes, plan)
    assert attempts and torch.equal(got, expected)
    assert "generic batched path" in caplog.text
