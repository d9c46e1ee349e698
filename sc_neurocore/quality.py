"""``sc-neurocore quality``: how faithful is each explanation method, measured by the model itself.

On the shipped digits network (`sc_neurocore.data.pretrained_network`) and its test digits, every
method explains each sample's predicted class; `sc_neurocore.explain.metrics` then measures

* the deletion and insertion AUC of its ranking (lower / higher is more faithful),
* its Spearman agreement with exact saliency over the input spikes,

and, on a planted-pattern task (`planted_pattern_task`) with a network
trained on it here (seeded, seconds), the precision@k of the planted spikes among the top-scored ones.

Methods: our gated and linear `SpikeAttributor`, exact
`TemporalSaliency`, Captum's ``Saliency``, ``IntegratedGradients`` and
``InputXGradient`` through the snnTorch twin of the network (surrogate gradients), TSA with and without
absent spikes (`sc_neurocore.explain.tsa`), and a random order. The command prints the report and,
with ``--out``, writes it atomically (``make quality`` writes ``docs/quality.md``).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from .atomic import atomic_write
from .explain import SpikeAttributor, TemporalSaliency
from .inputs import as_positive_int
from .explain.metrics import (Curve, PlantedTask, deletion_curve, insertion_curve, planted_pattern_task,
                              precision_at_k, spearman)
from .explain.tsa import TemporalSpikeAttribution
from .models import LIFNetwork

#: The readout of an ``LIFNetwork`` is a spike count, which weighs an output spike the same at every
#: timestep: the attribution decay that matches it is 1 (the tutorial's 0.9 models a leaky readout).
COUNT_READOUT_DECAY = 1.0
TUTORIAL_DECAY = 0.9

GATED = "SpikeAttributor gated (decay 1)"
GATED_TUTORIAL = "SpikeAttributor gated (decay 0.9)"
LINEAR = "SpikeAttributor linear (decay 1)"
SALIENCY = "TemporalSaliency (exact)"
CAPTUM_SALIENCY = "Captum Saliency (surrogate grad)"
CAPTUM_IG = "Captum IntegratedGradients"
CAPTUM_IXG = "Captum InputXGradient"
TSA_S = "TSA-S (spikes only)"
TSA_NS = "TSA-NS (with absent spikes)"
RANDOM = "random order"
CAPTUM_METHODS = (CAPTUM_SALIENCY, CAPTUM_IG, CAPTUM_IXG)

#: The planted task of the report: 10 classes of 3 planted spikes among 24 noise neurons at rate 0.2.
PLANTED_OPTIONS = {"n_steps": 25, "n_inputs": 64, "n_classes": 10, "pattern_size": 3, "noise_rate": 0.2}

ScoreFunction = Callable[[Tensor, Tensor], Tensor]


class MethodScores(NamedTuple):
    """One row of the faithfulness table (means over samples).

    Attributes:
        method: the method's name.
        deletion_auc: mean deletion AUC, in output spikes (lower is more faithful).
        insertion_auc: mean insertion AUC, in output spikes (higher is more faithful).
        spearman: mean Spearman correlation with exact saliency over the input spikes (samples where it
            is undefined are left out; ``nan`` if it is undefined for all).
        seconds: wall-clock time of the explanations themselves.
        deletion: the per-sample deletion `Curve` (for plots).
        insertion: the per-sample insertion curve.
    """

    method: str
    deletion_auc: float
    insertion_auc: float
    spearman: float
    seconds: float
    deletion: Curve | None = None
    insertion: Curve | None = None


class PlantedScores(NamedTuple):
    """One row of the planted-pattern table: mean precision@k of the planted spikes."""

    method: str
    precision: float
    seconds: float


class Target(NamedTuple):
    """A faithfulness target of the project and whether this run met it."""

    description: str
    met: bool
    detail: str


def gradient_twin(network: LIFNetwork) -> nn.Module:
    """The snnTorch twin of ``network``, wrapped by `sc_neurocore.adapters.from_snntorch`: a batch-first
    differentiable ``(B, T, N) -> (B, C)`` spike-count module for Captum.

    Same spikes as ``network`` (`sc_neurocore.data.pretrained.to_snntorch`); gradients flow through
    snnTorch's surrogate spike function.

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> net = LIFNetwork([torch.randn(8, 4), torch.randn(4, 3)])
        >>> spikes = (torch.rand(2, 10, 8) < 0.3).float()
        >>> bool(torch.equal(gradient_twin(net)(spikes), net(spikes)))
        True
    """
    from .adapters import from_snntorch
    from .data.pretrained import to_snntorch

    twin = to_snntorch(network)
    twin.requires_grad_(False)  # our own copy; Captum differentiates the inputs only
    return from_snntorch(twin, readout="count")


def _captum_map(attribution: Any, spikes: Tensor, targets: Tensor, **options) -> Tensor:
    # Fresh tensors: inputs made under inference mode cannot enter an autograd graph.
    inputs = spikes.detach().clone().requires_grad_(True)
    return attribution.attribute(inputs, target=targets.detach().clone(), **options).detach()


def explanation_methods(network: LIFNetwork, *, gradient_model: nn.Module | None = None, captum: bool = True,
                        ig_steps: int = 32, seed: int = 0) -> dict[str, ScoreFunction]:
    """Every method of the report as ``name -> f(spikes (B, T, N), targets (B,)) -> scores (B, T, N)``.

    Args:
        network: the ``LIFNetwork`` to explain.
        gradient_model: the differentiable twin for Captum (``None``: `gradient_twin` of ``network``).
        captum: include the Captum rows (needs snnTorch for the default twin).
        ig_steps: Riemann steps of Integrated Gradients (baseline: no spikes).
        seed: seed of the random order.

    Returns:
        An ordered dict, our methods first.

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> net = LIFNetwork([torch.randn(8, 4), torch.randn(4, 3)])
        >>> methods = explanation_methods(net, captum=False)
        >>> methods[GATED](torch.ones(2, 5, 8), torch.tensor([0, 1])).shape
        torch.Size([2, 5, 8])
    """
    beta = network.betas[0]
    methods: dict[str, ScoreFunction] = {
        GATED: lambda s, k: SpikeAttributor(COUNT_READOUT_DECAY, mode="gated").attribute(s, network, k).attribution_map(),
        GATED_TUTORIAL: lambda s, k: SpikeAttributor(TUTORIAL_DECAY, mode="gated").attribute(s, network, k)
        .attribution_map(),
        LINEAR: lambda s, k: SpikeAttributor(COUNT_READOUT_DECAY).attribute(s, network, k).attribution_map(),
        SALIENCY: lambda s, k: TemporalSaliency(network).explain(s, k).saliency_map(),
    }
    if captum:
        from captum.attr import InputXGradient, IntegratedGradients, Saliency

        twin = gradient_twin(network) if gradient_model is None else gradient_model
        methods[CAPTUM_SALIENCY] = lambda s, k: _captum_map(Saliency(twin), s, k)
        methods[CAPTUM_IG] = lambda s, k: _captum_map(IntegratedGradients(twin), s, k, baselines=0.0,
                                                      n_steps=ig_steps)
        methods[CAPTUM_IXG] = lambda s, k: _captum_map(InputXGradient(twin), s, k)
    methods[TSA_S] = lambda s, k: TemporalSpikeAttribution(beta).attribute(s, network, k).attribution_map()
    methods[TSA_NS] = lambda s, k: TemporalSpikeAttribution(beta, absent_spikes=True).attribute(s, network, k) \
        .attribution_map()
    generator = torch.Generator().manual_seed(seed)
    methods[RANDOM] = lambda s, k: torch.rand(s.shape, generator=generator).to(s.device)
    return methods


def _timed(function: ScoreFunction, spikes: Tensor, targets: Tensor) -> tuple[Tensor, float]:
    start = time.perf_counter()
    scores = function(spikes, targets)
    return scores, time.perf_counter() - start


def _mean(values: Tensor) -> float:
    finite = values[~torch.isnan(values)]
    return float(finite.mean()) if finite.numel() else math.nan


def faithfulness_rows(network: LIFNetwork, spikes: Tensor, targets: Tensor, *, gradient_model: nn.Module | None = None,
                      captum: bool = True, n_points: int = 21, ig_steps: int = 32, seed: int = 0) -> list[MethodScores]:
    """The faithfulness table on ``spikes``: one `MethodScores` per method.

    Args:
        network: an ``LIFNetwork`` (e.g. `sc_neurocore.data.pretrained_network`).
        spikes: ``(B, T, N)`` samples.
        targets: ``(B,)`` the class explained for each (usually the predicted one).
        gradient_model: the differentiable twin for Captum (``None``: built from ``network``).
        captum: include the Captum rows.
        n_points: points per deletion / insertion curve.
        ig_steps: Integrated Gradients steps.
        seed: seed of the random order.

    Returns:
        The rows, in `explanation_methods` order.

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> net = LIFNetwork([torch.randn(16, 8), torch.randn(8, 3)], threshold=0.5)
        >>> spikes = (torch.rand(4, 12, 16) < 0.3).float()
        >>> rows = faithfulness_rows(net, spikes, net(spikes).argmax(1), captum=False, n_points=5)
        >>> [row.method for row in rows][:2]
        ['SpikeAttributor gated (decay 1)', 'SpikeAttributor gated (decay 0.9)']
    """
    if not isinstance(network, LIFNetwork):
        raise TypeError(f"network: expected an LIFNetwork, got {type(network).__name__}")
    methods = explanation_methods(network, gradient_model=gradient_model, captum=captum, ig_steps=ig_steps, seed=seed)
    exact, _ = _timed(methods[SALIENCY], spikes, targets)
    rows = []
    for name, function in methods.items():
        scores, seconds = _timed(function, spikes, targets)
        deletion = deletion_curve(network, spikes, scores, targets, n_points=n_points)
        insertion = insertion_curve(network, spikes, scores, targets, n_points=n_points)
        rows.append(MethodScores(name, _mean(deletion.auc), _mean(insertion.auc),
                                 _mean(spearman(scores, exact, spikes)), seconds, deletion, insertion))
    return rows


def spearman_ceiling(network: LIFNetwork, spikes: Tensor, targets: Tensor, seed: int = 0) -> tuple[float, float]:
    """The highest mean Spearman with exact saliency that a map without ties can reach, and the share of
    spikes whose exact saliency is 0.

    Within a group of tied saliencies the tie-averaged rank is constant, so a tie-free map that keeps the
    order between distinct saliencies reaches the maximum (the rearrangement inequality), whichever way
    it orders each group; here, exact saliency with its ties broken at random. Count readouts make most
    single-spike saliencies 0, so this ceiling lies well below 1.

    Returns:
        ``(ceiling, zero_share)``.

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> net = LIFNetwork([torch.randn(12, 3) * 2], threshold=0.5)
        >>> spikes = (torch.rand(2, 10, 12) < 0.3).float()
        >>> ceiling, zero_share = spearman_ceiling(net, spikes, net(spikes).argmax(1))
        >>> 0 <= zero_share <= 1
        True
    """
    exact = TemporalSaliency(network).explain(spikes, targets).saliency_map()
    flat = exact.reshape(exact.shape[0], -1)
    generator = torch.Generator().manual_seed(seed)
    shuffled = torch.argsort(torch.rand(flat.shape, generator=generator), dim=1).to(flat.device)
    # A stable sort by saliency of a random permutation: ties in random order, distinct values in order.
    order = shuffled.gather(1, torch.sort(flat.gather(1, shuffled), dim=1, stable=True).indices)
    tie_free = torch.empty_like(flat)
    tie_free.scatter_(1, order, torch.arange(flat.shape[1], dtype=flat.dtype, device=flat.device).expand_as(flat))
    spiking = spikes != 0
    zero_share = float(((exact == 0) & spiking).sum() / spiking.sum().clamp(min=1))
    return _mean(spearman(tie_free.reshape(exact.shape), exact, spikes)), zero_share


def train_planted_network(task: PlantedTask, *, hidden: int = 32, beta: float = 0.9, threshold: float = 1.0,
                          epochs: int = 20, batch_size: int = 64, learning_rate: float = 5e-3,
                          seed: int = 0) -> LIFNetwork:
    """Train an ``N-hidden-C`` LIF network on ``task`` with surrogate-gradient BPTT (seeded, CPU seconds).

    The same recipe as `sc_neurocore.data.train` (snnTorch ``Leaky`` neurons, cross-entropy on output
    spike counts, Adam), on the task's fixed spikes.

    Args:
        task: the training samples.
        hidden: hidden layer size.
        beta, threshold: LIF parameters.
        epochs, batch_size, learning_rate: the optimiser's schedule.
        seed: seeds the initial weights and the batch order.

    Returns:
        The trained `LIFNetwork`.

    Example:
        >>> from sc_neurocore.explain.metrics import planted_pattern_task
        >>> task = planted_pattern_task(32, n_steps=10, n_inputs=16, n_classes=2, pattern_size=2)
        >>> train_planted_network(task, hidden=8, epochs=1).neuron_layers
        {'0': 8, '1': 2}
    """
    from .data.pretrained import snntorch_sequential, snntorch_spike_counts

    hidden, epochs, batch_size = (as_positive_int(hidden, "hidden"), as_positive_int(epochs, "epochs"),
                                  as_positive_int(batch_size, "batch_size"))
    n_inputs, n_classes = task.spikes.shape[2], task.pattern_neurons.shape[0]
    generator = torch.Generator().manual_seed(seed)
    initial = [nn.init.kaiming_uniform_(torch.empty(hidden, n_inputs), a=math.sqrt(5), generator=generator).T,
               nn.init.kaiming_uniform_(torch.empty(n_classes, hidden), a=math.sqrt(5), generator=generator).T]
    model = snntorch_sequential(initial, beta=beta, threshold=threshold)
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    loss_function = nn.CrossEntropyLoss()
    for _ in range(epochs):
        for batch in torch.randperm(len(task.labels), generator=generator).split(batch_size):
            loss = loss_function(snntorch_spike_counts(model, task.spikes[batch]), task.labels[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    weights = [module.weight.detach().T.clone() for module in model if isinstance(module, nn.Linear)]
    return LIFNetwork(weights, beta=beta, threshold=threshold, reset="subtract")


class PlantedRun(NamedTuple):
    """The planted-pattern part of the report."""

    rows: list[PlantedScores]
    accuracy: float
    n_samples: int
    options: dict


def planted_rows(*, n_train: int = 768, n_eval: int = 64, captum: bool = True, ig_steps: int = 32,
                 seed: int = 0) -> PlantedRun:
    """Train a network on the planted task, explain ``n_eval`` held-out samples' true class, score precision@k.

    Args:
        n_train: training samples of the task (`PLANTED_OPTIONS`).
        n_eval: held-out samples explained.
        captum: include the Captum rows.
        ig_steps: Integrated Gradients steps.
        seed: seed of the task, the training and the random order.

    Returns:
        A `PlantedRun` (rows in `explanation_methods` order, the network's held-out accuracy).

    Example:
        >>> run = planted_rows(n_train=64, n_eval=4, captum=False)
        >>> run.rows[0].method, 0.0 <= run.rows[0].precision <= 1.0
        ('SpikeAttributor gated (decay 1)', True)
    """
    n_train, n_eval = as_positive_int(n_train, "n_train"), as_positive_int(n_eval, "n_eval")
    task = planted_pattern_task(n_train + n_eval, seed=seed, **PLANTED_OPTIONS)  # type: ignore[arg-type]
    train = PlantedTask(*(field[:n_train] for field in task[:3]), task.pattern_neurons, task.pattern_times)  # type: ignore[call-arg]
    network = train_planted_network(train, seed=seed)
    spikes, labels, planted = task.spikes[n_train:], task.labels[n_train:], task.planted[n_train:]
    with torch.no_grad():
        accuracy = float((network(spikes).argmax(dim=1) == labels).to(torch.float64).mean())
    rows = []
    for name, function in explanation_methods(network, captum=captum, ig_steps=ig_steps, seed=seed).items():
        scores, seconds = _timed(function, spikes, labels)
        rows.append(PlantedScores(name, _mean(precision_at_k(scores, planted, spikes)), seconds))
    return PlantedRun(rows, accuracy, n_eval, dict(PLANTED_OPTIONS))


def check_targets(rows: list[MethodScores], planted: list[PlantedScores] | None = None) -> list[Target]:
    """The project's faithfulness targets, checked against this run's rows.

    Args:
        rows: the faithfulness table.
        planted: the planted-pattern table, if run.

    Returns:
        One `Target` per target whose methods are in the rows.

    Example:
        >>> rows = [MethodScores(GATED, 2.0, 9.0, 0.7, 0.1), MethodScores(RANDOM, 5.0, 5.0, 0.0, 0.1)]
        >>> [t.met for t in check_targets(rows)]
        [False, True]
    """
    by_name = {row.method: row for row in rows}
    targets = []
    gated = by_name.get(GATED)
    if gated is not None:
        rivals = [name for name in (*CAPTUM_METHODS, TSA_S, TSA_NS, RANDOM) if name in by_name]
        beaten = [name for name in rivals if gated.deletion_auc < by_name[name].deletion_auc]
        missed = sorted(set(rivals) - set(beaten))
        detail = (f"{gated.deletion_auc:.3f} vs best rival {min(by_name[n].deletion_auc for n in rivals):.3f}"
                  if rivals else "no rival was run")
        if missed:
            detail += f"; not beaten: {', '.join(missed)}"
        targets.append(Target("gated SpikeAttributor: lower deletion AUC than every Captum method, TSA and random",
                              not missed and len(rivals) == 6, detail))
        targets.append(Target("gated SpikeAttributor: Spearman >= 0.6 with exact saliency", gated.spearman >= 0.6,
                              f"{gated.spearman:.3f}"))
    if planted is not None:
        planted_by_name = {row.method: row for row in planted}
        for name in (SALIENCY, GATED):
            if name in planted_by_name:
                value = planted_by_name[name].precision
                targets.append(Target(f"planted task: precision@k >= 0.9 for {name}", value >= 0.9, f"{value:.3f}"))
    return targets


def _number(value: float, digits: int = 3) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def format_table(rows: list[MethodScores]) -> str:
    """The faithfulness table as Markdown.

    Example:
        >>> print(format_table([MethodScores("random order", 8.9, 8.9, 0.0, 0.01)]).splitlines()[2])
        | random order | 8.900 | 8.900 | 0.000 | 0.010 |
    """
    lines = ["| method | deletion AUC (lower is better) | insertion AUC (higher is better) | "
             "Spearman with exact saliency | seconds |",
             "|---|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row.method} | {_number(row.deletion_auc)} | {_number(row.insertion_auc)} | "
                     f"{_number(row.spearman)} | {_number(row.seconds)} |")
    return "\n".join(lines)


def format_planted(rows: list[PlantedScores]) -> str:
    """The planted-pattern table as Markdown.

    Example:
        >>> print(format_planted([PlantedScores("random order", 0.02, 0.001)]).splitlines()[2])
        | random order | 0.020 | 0.001 |
    """
    lines = ["| method | precision@k of planted spikes | seconds |", "|---|---:|---:|"]
    lines += [f"| {row.method} | {_number(row.precision)} | {_number(row.seconds)} |" for row in rows]
    return "\n".join(lines)


def format_targets(targets: list[Target]) -> str:
    """The targets as a Markdown list, each marked met or MISSED.

    Example:
        >>> print(format_targets([Target("something", False, "0.1")]))
        - MISSED: something (0.1)
    """
    return "\n".join(f"- {'met' if t.met else 'MISSED'}: {t.description} ({t.detail})" for t in targets)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--samples", type=int, default=64, help="test digits to explain (default 64)")
    parser.add_argument("--points", type=int, default=21, help="points per deletion/insertion curve (default 21)")
    parser.add_argument("--ig-steps", type=int, default=32, help="Integrated Gradients steps (default 32)")
    parser.add_argument("--planted-train", type=int, default=768, help="planted-task training samples")
    parser.add_argument("--planted-eval", type=int, default=64, help="planted-task samples explained")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random order and the planted task")
    parser.add_argument("--out", default=None, help="also write the report to this Markdown file (atomically)")


def report(args: argparse.Namespace) -> str:
    """The whole Markdown report of ``sc-neurocore quality`` for parsed ``args``."""
    from .data.digits import load_digits
    from .data.pretrained import model_config, pretrained_network

    torch.manual_seed(args.seed)
    # Every option is checked before the minutes of work it would otherwise fail at the end of.
    samples = as_positive_int(args.samples, "--samples")
    for option in ("ig_steps", "planted_train", "planted_eval"):
        as_positive_int(getattr(args, option), "--" + option.replace("_", "-"))
    if as_positive_int(args.points, "--points") < 2:
        raise ValueError(f"--points: expected at least 2 (the curve's two ends), got {args.points}")
    network = pretrained_network(8)
    test = load_digits("test")
    spikes = test.spikes[:samples]
    with torch.no_grad():
        targets = network(spikes).argmax(dim=1)
    rows = faithfulness_rows(network, spikes, targets, n_points=args.points, ig_steps=args.ig_steps, seed=args.seed)
    ceiling, zero_share = spearman_ceiling(network, spikes, targets, seed=args.seed)
    planted = planted_rows(n_train=args.planted_train, n_eval=args.planted_eval, ig_steps=args.ig_steps,
                           seed=args.seed)
    targets_met = check_targets(rows, planted.rows)
    config = model_config(8)
    n_spikes = int((spikes != 0).sum())
    options = planted.options
    lines = [
        "# Faithfulness of the explanations",
        "",
        "Generated by `sc-neurocore quality"
        + (f" --out {args.out}" if args.out else "") + "` (`make quality`); do not edit by hand.",
        "",
        f"## Digits network ({'-'.join(map(str, config['layers']))} LIF, T={config['n_steps']}, "
        f"{config['encoding']} coding, test accuracy {config['test_accuracy']:.3f})",
        "",
        f"{samples} test digits ({n_spikes} input spikes), each explained for its predicted class. Deletion "
        f"removes a sample's spikes in the method's order (highest score first), insertion adds them to an "
        f"empty input; the target's output spike count is measured at {args.points} points and the area "
        "under the curve taken over the fraction of spikes. Means over samples.",
        "",
        format_table(rows),
        "",
        f"Spearman ceiling: removing one spike leaves the target's spike count unchanged for "
        f"{100 * zero_share:.1f}% of the spikes, so exact saliency is mostly tied at 0; the highest Spearman any "
        f"map without ties can reach is {_number(ceiling)} (exact saliency with its ties broken at random). "
        "The exact saliency row itself is the reference (1 by definition); its deletion curve is poor because "
        "each spike's effect is measured alone, while deletion removes them together.",
        "",
        f"## Planted patterns ({options['n_classes']} classes, {options['pattern_size']} planted spikes each, "
        f"noise rate {options['noise_rate']} on the {options['n_inputs'] - options['n_classes'] * options['pattern_size']} "
        f"unowned inputs, T={options['n_steps']})",
        "",
        f"A 64-32-10 network trained here on {args.planted_train} samples (held-out accuracy "
        f"{planted.accuracy:.3f}); {planted.n_samples} held-out samples explained for their true class; k = "
        "the number of planted spikes.",
        "",
        format_planted(planted.rows),
        "",
        "## Targets",
        "",
        format_targets(targets_met),
        "",
    ]
    notes = explain_misses(rows, ceiling)
    if notes:
        lines += ["## Why a target is missed", "", *notes, ""]
    return "\n".join(lines)


def explain_misses(rows: list[MethodScores], ceiling: float) -> list[str]:
    """Markdown bullet notes on what this run's rows miss and why (empty when nothing is missed).

    Example:
        >>> rows = [MethodScores(GATED, 2.0, 9.0, 0.2, 0.1), MethodScores(RANDOM, 5.0, 5.0, 0.0, 0.1)]
        >>> explain_misses(rows, ceiling=0.5)[0].startswith("- Spearman >= 0.6 is out of reach")
        True
    """
    by_name = {row.method: row for row in rows}
    rivals = [name for name in (*CAPTUM_METHODS, TSA_S, TSA_NS, RANDOM) if name in by_name]
    notes = []
    gated = by_name.get(GATED)
    gradient = [by_name[name].spearman for name in CAPTUM_METHODS if name in by_name]
    best_gradient = max(gradient) if gradient else math.nan
    if gated is not None and gated.spearman < 0.6:
        if ceiling < 0.6:
            notes.append(f"- Spearman >= 0.6 is out of reach for every method that scores spikes without ties: "
                         f"the ceiling above is {_number(ceiling)}. The gated rule reaches {_number(gated.spearman)}, "
                         f"the best gradient method {_number(best_gradient)}. "
                         "Spike-count saliency is an integer that is 0 for most spikes; the rank agreement is "
                         "dominated by that tie, not by the order of the spikes that matter.")
        else:
            notes.append(f"- The gated rule's Spearman with exact saliency is {_number(gated.spearman)}, below 0.6 "
                         f"although a tie-free map could reach {_number(ceiling)}.")
    if gated is not None:
        beaten_by = [name for name in rivals if by_name[name].deletion_auc <= gated.deletion_auc]
        if beaten_by:
            notes.append(f"- The gated rule's deletion AUC {_number(gated.deletion_auc)} is not below that of "
                         f"{', '.join(beaten_by)}.")
    tutorial = by_name.get(GATED_TUTORIAL)
    if tutorial is not None:
        beaten_by = [name for name in rivals if by_name[name].deletion_auc <= tutorial.deletion_auc]
        if beaten_by:
            notes.append(f"- With the tutorial's decay 0.9 the gated rule's deletion AUC ({_number(tutorial.deletion_auc)}) "
                         f"is not below that of {', '.join(beaten_by)}: the factor 0.9^(T-t) discounts early spikes, "
                         "which a spike-count readout counts as much as late ones. Decay 1 matches this readout.")
    return notes


def main(args: argparse.Namespace) -> int:
    torch.set_num_threads(1)  # small ops: one thread is fastest on a loaded machine, and deterministic
    if args.out and not Path(args.out).resolve().parent.is_dir():  # fail before minutes of work, not after
        raise FileNotFoundError(f"--out: the folder {str(Path(args.out).parent)!r} does not exist")
    text = report(args)
    print(text)
    if args.out:
        with atomic_write(args.out) as handle:
            handle.write(text)
    return 0
