"""``sc-neurocore demo``: the tutorial's three explanations on a real spiking network.

Builds a 64-32-10 :class:`~sc_neurocore.models.LIFNetwork` with the tutorial's seeded weights, feeds it
the tutorial's seeded input spikes, and prints what each explainer finds.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from .explain import CausalImportance, SpikeAttributor, TemporalSaliency
from .models import LIFNetwork


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo-output", help="folder for figures (used once figures exist)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the tutorial's random input and weights")


def tutorial_network(seed: int = 42) -> tuple[np.ndarray, list[np.ndarray], LIFNetwork]:
    """The tutorial's input spikes ``(100, 64)`` and 64-32-10 weights, and an LIF network running them."""
    rng = np.random.default_rng(seed)
    input_spikes = (rng.random((100, 64)) < 0.1).astype(float)
    weights = [rng.standard_normal((64, 32)).astype(np.float32) * 0.3,
               rng.standard_normal((32, 10)).astype(np.float32) * 0.3]
    return input_spikes, weights, LIFNetwork(weights, beta=0.9, threshold=0.5)


def main(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)
    input_spikes, weights, network = tutorial_network(args.seed)
    counts = network(torch.as_tensor(input_spikes, dtype=torch.float32)[None])[0]
    target = int(counts.argmax())
    print(f"Network 64-32-10 LIF, T=100; output spike counts: {counts.int().tolist()}; explaining neuron {target}")

    result = SpikeAttributor(decay=0.9).attribute(input_spikes, weights, output_neuron=target)
    print(f"\nSpike attribution (total = linear leaky readout = {result.total:.4f})")
    for t, n, score in result.top_k(5):
        print(f" t={t:>3d}, input neuron={n:>2d}: importance={score:.4f}")
    print(f"Peak importance at t={int(np.argmax(result.temporal_profile()))}")

    saliency = TemporalSaliency(run_fn=network).explain(input_spikes, output_neuron=target)
    print("\nTemporal saliency (exact, output spike counts)")
    print(saliency.summary())

    causal = CausalImportance(run_fn=network).explain(input_spikes, output_neuron=target)
    importance = causal.importance_map()
    critical = np.argsort(importance, kind="stable")[-5:]
    print("\nCausal importance of input neurons")
    print(f"Top 5 critical neurons: {critical}")
    print(f"Their importance scores: {importance[critical]}")
    print(f"Robustness: can silence {causal.robustness_count(threshold=0.05)} neurons")
    return 0
