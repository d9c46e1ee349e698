"""GPU check of the incremental engine: exactness on CUDA, then ours vs the naive loop vs the generic batched path.

Run from the repository root, without installing the package::

    PYTHONPATH=. python benchmarks/gpu_check.py            # about 2-4 minutes on one GPU
    OUT=/some/folder PYTHONPATH=. python benchmarks/gpu_check.py   # also writes $OUT/gpu_bench.md
    PYTHONPATH=. python benchmarks/gpu_check.py --quick    # a smoke run (CPU is fine): one small workload

Needs only torch (snnTorch, Norse and Captum are not used here). Exits with status 1 if any exactness
check fails. Without CUDA it runs on the CPU and says so (useful to try it out, not a GPU result).

1. Exactness: fixed-point weights (every float sum exact), ragged spikes with a spike at the last
   timestep; every plan kind (spike removal, input / hidden / output silencing, cumulative prefixes)
   through the incremental executor and through the generic batched path on the GPU: outputs must be
   bit-identical, and equal to the CPU's.
2. Timing on the workloads (R-seed 64-32-10 T=100 10%, R-MNIST 784-128-10 T=25 5%, R-deep
   784-256-128-10 T=50 5%; Gaussian float32 weights): exact saliency of one sample and of a batch of
   samples totalling about 10^5 perturbations, by ours (``execute``, which picks the incremental
   executor), the generic batched path (``run_plan``) and, for one sample, the naive per-spike loop.
   Medians of 3 runs (the naive loop: 1 run), with ``torch.cuda.synchronize()`` around every timing.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import torch
from torch import Tensor

from sc_neurocore.adapters.compile import compile_model
from sc_neurocore.bench.workloads import WORKLOADS, input_spikes, lif_network
from sc_neurocore.engine import execute, run_plan
from sc_neurocore.engine.incremental import run_incremental
from sc_neurocore.engine.plans import remove_each_spike, silence_each_neuron, silence_prefixes
from sc_neurocore.models import LIFNetwork


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(function, device: torch.device, runs: int) -> float:
    seconds = []
    for _ in range(runs):
        synchronize(device)
        start = time.perf_counter()
        function()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def fixed_point_network(sizes, seed: int) -> LIFNetwork:
    generator = torch.Generator().manual_seed(seed)
    weights = [torch.randint(-48, 49, (a, b), generator=generator).float() / 64 * (2.0 if a < 100 else 0.7)
               for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    return LIFNetwork(weights, beta=0.9)


def ragged(batch, steps, n_inputs, rate, seed, device):
    generator = torch.Generator().manual_seed(seed)
    rates = torch.linspace(rate / 2, rate * 1.5, batch)[:, None, None]
    spikes = (torch.rand(batch, steps, n_inputs, generator=generator) < rates).float()
    spikes[0, -1, 1] = 1
    spikes[-1] = 0
    spikes[-1, -1, n_inputs // 2] = 1
    return spikes.to(device)


def exactness(device: torch.device) -> list[str]:
    """Every plan kind, incremental vs generic on ``device`` and vs the CPU; returns failure messages."""
    failures = []
    for name, (sizes, steps, rate) in {"seed": ([64, 32, 10], 40, 0.1), "mnist": ([784, 128, 10], 25, 0.05),
                                       "deep": ([784, 256, 128, 10], 20, 0.05)}.items():
        net_cpu = fixed_point_network(sizes, seed=1)
        net = fixed_point_network(sizes, seed=1).to(device)
        spikes = ragged(3, steps, sizes[0], rate, seed=2, device=device)
        stack = compile_model(net)
        generator = torch.Generator().manual_seed(3)
        plans = [remove_each_spike(spikes), silence_each_neuron("input", sizes[0], 3, device),
                 silence_prefixes("input", torch.randperm(sizes[0], generator=generator).to(device), 3)]
        plans += [silence_each_neuron(layer, n, 3, device) for layer, n in net.neuron_layers.items()]
        for plan in plans:
            label = f"{name}: {type(plan).__name__} {getattr(plan, 'layer', '')}"
            fast = run_incremental(stack, spikes, plan)
            generic = run_plan(net, spikes, plan)
            via_execute = execute(net, spikes, plan)
            cpu_plan = type(plan)(*[p.cpu() if isinstance(p, torch.Tensor) else p for p in plan])
            cpu = run_incremental(compile_model(net_cpu), spikes.cpu(), cpu_plan)
            ok = torch.equal(fast, generic) and torch.equal(fast, via_execute) and torch.equal(fast.cpu(), cpu)
            print(f"  exactness {label:40s} {len(plan):6d} rows: {'ok' if ok else 'FAILED'}", flush=True)
            if not ok:
                failures.append(f"{label}: incremental {fast.sum().item()} generic {generic.sum().item()} "
                                f"cpu {cpu.sum().item()}")
    return failures


def naive(net, spikes):
    rows = torch.nonzero(spikes[0]).tolist()
    outputs = []
    for t, i in rows:
        perturbed = spikes.clone()
        perturbed[0, t, i] = 0
        outputs.append(net.run(perturbed))
    return torch.cat(outputs)


def agreement(a: Tensor, b: Tensor) -> str:
    return "identical" if torch.equal(a, b) else f"{int((a != b).any(dim=1).sum())} rows differ"


def timing(device: torch.device, quick: bool = False) -> list[tuple]:
    """Per workload: one sample (vs the naive loop) and ~10^5 perturbations; each executor timed."""
    table = []
    for name, workload in WORKLOADS.items():
        if quick:  # a smoke run of this script: the smallest workload, shrunk
            if name != "R-seed":
                continue
            workload = workload.scaled(0.3)
        net = lif_network(workload).to(device)
        stack = compile_model(net)
        one = input_spikes(workload).to(device)
        per_sample = max(1, int(one.count_nonzero()))
        batch = max(1, (2_000 if quick else 100_000) // per_sample)
        many = input_spikes(workload, batch=batch, seed=5).to(device)
        for inputs, spikes in (("1 sample", one), (f"{batch} samples", many)):
            plan = remove_each_spike(spikes)
            with torch.inference_mode():
                runs = {"execute": lambda net=net, spikes=spikes, plan=plan: execute(net, spikes, plan),
                        "incremental": lambda stack=stack, spikes=spikes, plan=plan: run_incremental(stack, spikes, plan),
                        "generic": lambda net=net, spikes=spikes, plan=plan: run_plan(net, spikes, plan)}
                if inputs == "1 sample":
                    runs["naive"] = lambda net=net, spikes=spikes: naive(net, spikes)
                outputs = {key: run() for key, run in runs.items()}
                reference = outputs["naive" if "naive" in outputs else "generic"]
                agree = "; ".join(f"{key} vs {'naive' if 'naive' in outputs else 'generic'}: "
                                  f"{agreement(out, reference)}" for key, out in outputs.items()
                                  if out is not reference)
                seconds = {key: timed(run, device, 1 if key == "naive" else 3) for key, run in runs.items()}
            table.append((name, inputs, len(plan), seconds, agree))
            print(f"  {name} {inputs}: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in seconds.items())
                  + f" ({agree})", flush=True)
    return table


def main() -> int:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = False  # TF32 would round the currents differently per path
    torch.backends.cudnn.allow_tf32 = False
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (no CUDA device found)"
    print(f"device: {name}; torch {torch.__version__}", flush=True)
    started = time.perf_counter()
    quick = "--quick" in sys.argv[1:]
    failures = exactness(device)
    table = timing(device, quick)
    lines = ["# GPU check of the incremental engine", "",
             f"Written by `PYTHONPATH=. python benchmarks/gpu_check.py` on {name}, torch {torch.__version__}, "
             f"in {time.perf_counter() - started:.0f} s.", "",
             f"Exactness (incremental == generic batched path == CPU, every plan kind, fixed-point weights): "
             f"{'all identical' if not failures else 'FAILED: ' + '; '.join(failures)}", "",
             "Exact saliency (all single-spike removals), Gaussian float32 weights; medians of 3 runs, naive 1 "
             "run. `execute` is what the explainers call (on a GPU it picks the generic batched path). With "
             "Gaussian float weights the GPU's matrix products round differently for different batch shapes, "
             "so any two executors may disagree on a spike at a threshold tie; with fixed-point weights (above) "
             "they are identical.", "",
             "| workload | inputs | perturbations | execute | incremental | generic batched | naive loop "
             "| naive / execute | agreement |", "|---|---|---|---|---|---|---|---|---|"]
    for workload, inputs, n, seconds, agree in table:
        naive_s = seconds.get("naive")
        naive_text = "-" if naive_s is None else f"{naive_s * 1e3:.0f} ms"
        naive_ratio = "-" if naive_s is None else f"{naive_s / seconds['execute']:.0f}x"
        lines.append(f"| {workload} | {inputs} | {n} | {seconds['execute'] * 1e3:.1f} ms "
                     f"| {seconds['incremental'] * 1e3:.1f} ms | {seconds['generic'] * 1e3:.1f} ms | {naive_text} "
                     f"| {naive_ratio} | {agree} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = os.environ.get("OUT")
    if out:
        with open(os.path.join(out, "gpu_bench.md"), "w") as handle:
            handle.write(text)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
