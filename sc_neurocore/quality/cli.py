"""`sc-neurocore quality`: its options, the run, and the report written atomically (`make quality`)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write
from ..inputs import as_positive_int
from .evaluate import NetworkResult, by_name, evaluate_network
from .networks import SPECS, load_network
from .report import assemble, linear_at
from .report_misses import diagnose
from .rivals import AUTO, GATED, methods
from .targets import network_targets, timing_target
from .timing_run import timing_rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--networks", default="all",
                        help=f"comma-separated networks to evaluate, from {', '.join(SPECS)} (default all)")
    parser.add_argument("--select", type=int, default=32, help="selection-set digits per network (default 32)")
    parser.add_argument("--samples", type=int, default=64, help="held-out digits per network (default 64)")
    parser.add_argument("--points", type=int, default=21, help="points per held-out deletion/insertion curve")
    parser.add_argument("--tune-points", type=int, default=11, help="points per curve when tuning (default 11)")
    parser.add_argument("--subsets", type=int, default=16, help="random subsets per size for sensitivity-n")
    parser.add_argument("--timing-train", type=int, default=2048, help="timing-task training samples")
    parser.add_argument("--timing-eval", type=int, default=64, help="timing-task held-out samples")
    parser.add_argument("--timing-epochs", type=int, default=30, help="timing-task training epochs")
    parser.add_argument("--saliency-digits", type=int, default=8,
                        help="held-out digits exact saliency explains on a CSNN (default 8; it is slow there)")
    parser.add_argument("--seed", type=int, default=0, help="seed of ties, subsets, random order, tasks, training")
    parser.add_argument("--out", default=None, help="also write the report to this Markdown file (atomically)")


def _networks(text: str) -> list[str]:
    keys = list(SPECS) if text == "all" else [key.strip() for key in text.split(",") if key.strip()]
    unknown = [key for key in keys if key not in SPECS]
    if unknown or not keys:
        raise ValueError(f"--networks: expected 'all' or some of {', '.join(SPECS)}, got {text!r}")
    return keys


def crosscheck(result: NetworkResult, n_points: int) -> dict[str, Any]:
    """Our deletion curve of `mode="auto"` on one held-out digit against Captum's `infidelity`."""
    from captum.metrics import infidelity

    from ..explain.metrics import deletion_curve

    network = result.network
    spikes, targets = network.held_out[0][:1], network.held_out[1][:1]
    scores = by_name(result)[AUTO].tuned.method.build(network, {})(spikes, targets)
    curve = deletion_curve(network.model, spikes, scores, targets, n_points=n_points)
    flat_spikes, flat_scores = spikes.reshape(-1), scores.reshape(-1)
    order = torch.sort(-flat_scores.to(torch.float64), stable=True).indices
    order = order[flat_spikes[order] != 0]  # spikes only, by descending score, ties by index
    differences: list[float] = []
    for k in curve.counts[0].tolist():
        def perturb(inputs, k=k):
            removed = torch.zeros_like(inputs).reshape(-1)
            removed[order[:k]] = inputs.reshape(-1)[order[:k]]
            removed = removed.reshape(inputs.shape)
            return removed, inputs - removed

        value = infidelity(lambda x: network.model.run(x), perturb, spikes, torch.zeros_like(spikes),
                           target=targets, n_perturb_samples=1, normalize=False)
        ours = float(curve.values[0, 0] - curve.values[0, len(differences)]) ** 2
        differences.append(abs(float(value[0]) - ours))
    return {"network": network.spec.name, "points": n_points, "max_difference": max(differences),
            "largest": float(curve.values.abs().max())}


def report(args: argparse.Namespace, log: Any = None) -> str:
    """The whole Markdown report of `sc-neurocore quality` for parsed `args`."""
    started = time.perf_counter()
    keys = _networks(args.networks)
    # Every option is checked before the minutes of work it would otherwise fail at the end of.
    for option in ("select", "samples", "subsets", "timing_train", "timing_eval", "timing_epochs", "saliency_digits"):
        as_positive_int(getattr(args, option), "--" + option.replace("_", "-"))
    for option in ("points", "tune_points"):
        if as_positive_int(getattr(args, option), "--" + option.replace("_", "-")) < 2:
            raise ValueError(f"--{option.replace('_', '-')}: expected at least 2 (the curve's two ends)")
    found = methods(seed=args.seed)
    results, linear_at_gated, diagnoses = [], {}, []
    for key in keys:
        network = load_network(SPECS[key], n_select=args.select, n_eval=args.samples, seed=args.seed, log=log)
        result = evaluate_network(network, found, n_points=args.points, tune_points=args.tune_points,
                                  n_subsets=args.subsets, seed=args.seed, saliency_digits=args.saliency_digits,
                                  log=log)
        results.append(result)
        diagnosis = diagnose(result, n_points=args.points, tune_points=args.tune_points, seed=args.seed)
        if diagnosis is not None:
            diagnoses.append(diagnosis)
        if GATED in by_name(result):
            gated_decay = by_name(result)[GATED].tuned.setting["decay"]
            linear_at_gated[network.spec.name] = linear_at(result, gated_decay, args.points, args.seed)
    timing = timing_rows(found, n_train=args.timing_train, n_select=args.select, n_eval=args.timing_eval,
                         epochs=args.timing_epochs, seed=args.seed)
    check = crosscheck(results[0], args.points)
    targets = [target for result in results for target in network_targets(result, args.seed)]
    targets.append(timing_target({row.method: row.separation for row in timing.rows}))
    command = "sc-neurocore quality" + (f" --out {args.out}" if args.out else "")
    header = ["# Faithfulness of the explanations", "",
              (f"Generated by `{command}` (`make quality`) in {time.perf_counter() - started:.0f} s; do not edit by "
              "hand. Every number below is measured by this run."), "",
              ("Method. Each network explains its own test digits. Every method's settings (decays, Integrated "
              "Gradients steps, surrogate gradients) are chosen on a selection set by the lowest mean deletion AUC; "
              "every reported number is on a disjoint held-out set. Deletion removes a sample's spikes in the "
              "method's order (highest score first), insertion adds them to an empty input, ties in a seeded "
              f"random order; the target output is measured at {args.points} points and the area taken over the "
              "share of spikes, on the raw output and on its softmax probability. Sensitivity-n (Ancona et al. "
              f"2018): the Pearson correlation, over {args.subsets} random subsets of a given share of the spikes, "
              "between the subset's summed scores and the output drop when it is removed. Occlusion agreement: the "
              "Spearman correlation between a method's per-input-neuron score and the drop when that neuron's whole "
              "spike train is removed. Differences are paired per sample with bootstrap 95% intervals (2000 "
              "resamples)."), ""]
    return assemble(header, results, linear_at_gated, timing, check, targets, diagnoses, args.seed)


def main(args: argparse.Namespace) -> int:
    torch.set_num_threads(1)  # small ops: one thread is fastest on a loaded machine, and deterministic
    if args.out and not Path(args.out).resolve().parent.is_dir():  # fail before minutes of work, not after
        raise FileNotFoundError(f"--out: the folder {str(Path(args.out).parent)!r} does not exist")
    text = report(args, log=lambda line: print(line, flush=True))
    print(text)
    if args.out:
        with atomic_write(args.out) as handle:
            handle.write(text)
    return 0
