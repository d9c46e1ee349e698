"""A budget too small to finish well is raised to the workable minimum, with a warning (issue 16).

The workable minimum is the smallest chunk whose fixed per-step dispatch costs at most `MAX_OVERHEAD`
times its work under the cost model. Crawling is measured by what causes it -- the number of forward
passes or replay chunks -- not by wall time, which a loaded CI machine cannot compare reliably.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from sc_neurocore.engine import BudgetWarning, execute, incremental
from sc_neurocore.engine.batched import minimum_rows, run_plan
from sc_neurocore.engine.budget import MAX_OVERHEAD, rows_per_chunk, workable_budget, workable_rows
from sc_neurocore.engine.plans import remove_each_spike, silence_each_neuron
from sc_neurocore.explain import TemporalSaliency
from sc_neurocore.models import LIFNetwork


def _problem(seed: int = 0, samples: int = 3):
    generator = torch.Generator().manual_seed(seed)
    net = LIFNetwork([torch.randn(60, 40, generator=generator) * 0.4, torch.randn(40, 6, generator=generator)],
                     threshold=0.5)
    spikes = (torch.rand(samples, 20, 60, generator=generator) < 0.2).float()
    return net, spikes


class Counting:
    """An LIFNetwork the compiled executors do not know, recording the rows of every forward pass."""

    def __init__(self, net: LIFNetwork) -> None:
        self.net, self.rows = net, []
        self.neuron_layers, self.n_inputs = net.neuron_layers, net.n_inputs

    def run(self, spikes, silence=None):
        self.rows.append(spikes.shape[0])
        return self.net.run(spikes, silence=silence)


def test_workable_rows_follow_the_cost_ratio():
    assert workable_rows(chunk_seconds=1.0, row_seconds=0.01, n_rows=10**6) == round(100 / MAX_OVERHEAD)
    assert workable_rows(chunk_seconds=1.0, row_seconds=0.01, n_rows=7) == 7  # never more than the plan
    assert workable_rows(chunk_seconds=0.0, row_seconds=0.01, n_rows=50) == 1
    assert workable_rows(chunk_seconds=1.0, row_seconds=0.0, n_rows=50) == 1


def test_a_workable_budget_is_kept_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert workable_budget(10_000, 10_000, "x") == 10_000
        assert rows_per_chunk(10_000, 1_000, n_rows=50, min_rows=4) == 10


def test_a_small_budget_is_raised_and_named():
    with pytest.warns(BudgetWarning, match=r"^max_memory: 3000 bytes is too small to run the batched path "
                                           r"\(4 rows per chunk\) well; raised to its workable minimum of 4000"):
        assert rows_per_chunk(3_000, 1_000, n_rows=50, min_rows=4) == 4


@pytest.mark.parametrize("budget", [1, 64, 4096])
def test_the_batched_path_never_crawls(budget):
    net, spikes = _problem()
    plan = remove_each_spike(spikes)
    model = Counting(net)
    floor = minimum_rows(model, spikes, len(plan))
    assert 1 < floor < len(plan)  # the problem is big enough for the floor to matter
    with pytest.warns(BudgetWarning, match="max_memory"):
        outputs = run_plan(model, spikes, plan, max_memory=budget)
    assert torch.equal(outputs, run_plan(net, spikes, plan))
    # On today's engine a 1-byte budget ran one forward per row: len(plan) calls.
    assert min(model.rows[:-1]) >= floor and len(model.rows) <= -(-len(plan) // floor)


def test_the_incremental_engine_never_crawls(monkeypatch):
    net, spikes = _problem(samples=6)
    plan = remove_each_spike(spikes)
    replay, sizes = incremental.replay, []

    def counted(*args, **kwargs):
        replayed = replay(*args, **kwargs)
        if not kwargs.get("exact"):
            sizes.append((replayed[0] if isinstance(replayed, tuple) else replayed).shape[0])
        return replayed

    monkeypatch.setattr(incremental, "replay", counted)
    from sc_neurocore.engine.compile import compile_model

    with pytest.warns(BudgetWarning, match="the incremental engine .* rows per replay"):
        outputs = incremental.run_incremental(compile_model(net), spikes, plan, max_memory=1)
    assert torch.equal(outputs, run_plan(net, spikes, plan))
    # One replay per sample group at least; none of a handful of rows (the screen may drop rows first).
    assert len(sizes) <= 2 * spikes.shape[0] and max(sizes) > 8, sizes


@pytest.mark.parametrize("engine", ["auto", "batched", "incremental", "event"])
def test_every_executor_raises_instead_of_refusing(engine):
    net, spikes = _problem()
    expected = TemporalSaliency(net).explain(spikes, output_neuron=1)
    with pytest.warns(BudgetWarning, match="workable minimum"):
        got = TemporalSaliency(net, max_memory=1, engine=engine).explain(spikes, output_neuron=1)
    keep = ~got.tie_mask if got.tie_mask is not None else torch.ones_like(got.saliency_map(), dtype=torch.bool)
    assert torch.equal(got.saliency_map()[keep], expected.saliency_map()[keep])


def test_silencing_and_the_baseline_are_raised_too():
    net, spikes = _problem()
    plan = silence_each_neuron("0", 40, spikes.shape[0], spikes.device)
    with pytest.warns(BudgetWarning):
        outputs = execute(net, spikes, plan, max_memory=1)
    assert torch.equal(outputs, run_plan(net, spikes, plan))
    with pytest.warns(BudgetWarning):
        assert torch.equal(execute(net, spikes, None, max_memory=1), net.run(spikes))
