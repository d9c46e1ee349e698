"""Measure ``sc-neurocore explain-dataset`` on 1 rank and on N ranks, and write the table into docs/scale.md.

Each measurement is a real ``torchrun`` job (gloo on CPU, NCCL on CUDA) running the command on a seeded
workload written to a temporary folder: an LIF network ``N_INPUTS-N_HIDDEN-N_OUTPUTS`` (weights in a
``.pt`` file, loaded with ``weights_only=True``) and ``--samples`` Bernoulli spike trains in an ``.npz``.
Throughput is read from the manifest the job writes (explained samples / seconds between the first and
the last barrier, so process start-up is not counted); the wall time of the whole job is reported beside
it. The table replaces the part of ``docs/scale.md`` between ``<!-- scale-bench:DEVICE:start -->`` and
``<!-- scale-bench:DEVICE:end -->`` (one section per device type), so the numbers in the docs are always
this script's output.

Usage::

    python scripts/scale_bench.py                     # CPU: 1 and 2 ranks, saliency, 1024 samples
    python scripts/scale_bench.py --device cuda --ranks 1 2 --samples 4096
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent
N_INPUTS, N_HIDDEN, N_OUTPUTS, N_STEPS, RATE = 64, 64, 10, 50, 0.1


def bench_model(seed: int = 0):
    """The benchmarked network (imported by name by the torchrun job): 64-64-10 LIF, seeded weights."""
    from sc_neurocore.models import LIFNetwork

    generator = torch.Generator().manual_seed(seed)
    return LIFNetwork([torch.randn(N_INPUTS, N_HIDDEN, generator=generator) * 0.5,
                       torch.randn(N_HIDDEN, N_OUTPUTS, generator=generator) * 0.5], beta=0.9, threshold=0.5)


def write_workload(folder: Path, n_samples: int) -> tuple[Path, Path]:
    weights = folder / "weights.pt"
    torch.save(bench_model(seed=1).state_dict(), weights)
    rng = np.random.default_rng(2)
    spikes = (rng.random((n_samples, N_STEPS, N_INPUTS)) < RATE).astype(np.float32)
    data = folder / "spikes.npz"
    np.savez(data, spikes=spikes, labels=rng.integers(0, N_OUTPUTS, n_samples))
    return weights, data


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_job(n_ranks: int, args: argparse.Namespace, weights: Path, data: Path, out: Path) -> dict:
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", str(n_ranks),
               "--master-addr", "127.0.0.1", "--master-port", str(free_port()), "-m", "sc_neurocore.cli",
               "explain-dataset", "--model", "scale_bench:bench_model", "--weights", str(weights),
               "--dataset", str(data), "--method", args.method, "--out", str(out), "--device", args.device,
               "--batch-size", str(args.batch_size), "--shard-size", str(args.shard_size), "--no-progress"]
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SCRIPTS), str(ROOT)]),
                       OMP_NUM_THREADS=str(args.threads))
    environment.setdefault("GLOO_SOCKET_IFNAME", "lo")
    started = time.perf_counter()
    job = subprocess.run(command, env=environment, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    if job.returncode != 0:
        raise SystemExit(f"torchrun with {n_ranks} rank(s) failed:\n{job.stdout}\n{job.stderr}")
    summary = json.loads((out / "manifest.json").read_text())["summary"]
    return {"ranks": n_ranks, "samples": summary["explained_samples"], "shards": summary["explained_shards"],
            "seconds": summary["seconds"], "samples_per_second": summary["samples_per_second"], "wall": wall}


def table(rows: list[dict], args: argparse.Namespace) -> str:
    device = args.device if args.device != "cuda" or not torch.cuda.is_available() else torch.cuda.get_device_name(0)
    base = rows[0]["samples_per_second"]
    lines = [f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by "
             f"`python scripts/scale_bench.py{''.join(' ' + a for a in sys.argv[1:])}` on {platform.machine()} "
             f"with {os.cpu_count()} CPU cores (load average {args.load_at_start:.1f} at the start), device "
             f"{device}, torch {torch.__version__}, {args.threads} thread(s) per rank.",
             f"Workload: {args.method} of a {N_INPUTS}-{N_HIDDEN}-{N_OUTPUTS} LIF network, T={N_STEPS}, input rate "
             f"{RATE}, {args.samples} samples, batches of {args.batch_size}, shards of {args.shard_size}; the "
             f"fastest of {args.repeats} interleaved runs per world size.",
             "",
             "| ranks | samples | shards | explaining (s) | samples/s | speed-up | torchrun job, wall (s) |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['ranks']} | {row['samples']} | {row['shards']} | {row['seconds']:.2f} | "
                     f"{row['samples_per_second']:.1f} | {row['samples_per_second'] / base:.2f}x | {row['wall']:.1f} |")
    return "\n".join(lines)


def write_section(doc: Path, section: str, text: str) -> None:
    from sc_neurocore.atomic import atomic_write

    start, end = f"<!-- scale-bench:{section}:start -->", f"<!-- scale-bench:{section}:end -->"
    content = doc.read_text(encoding="utf-8") if doc.exists() else ""
    block = f"{start}\n{text}\n{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    content = pattern.sub(lambda _: block, content) if pattern.search(content) else content + f"\n{block}\n"
    with atomic_write(doc) as handle:
        handle.write(content)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2], help="world sizes to measure")
    parser.add_argument("--method", default="saliency", choices=("attribution", "saliency", "causal"))
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--shard-size", type=int, default=32)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (one GPU per rank)")
    parser.add_argument("--threads", type=int, default=1, help="OMP threads per rank")
    parser.add_argument("--repeats", type=int, default=3, help="runs per world size; the fastest is reported")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "scale.md", help="the file to update")
    args = parser.parse_args()
    args.load_at_start = os.getloadavg()[0]  # the machine may be shared: say how busy it was
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        weights, data = write_workload(folder, args.samples)
        runs: dict[int, list[dict]] = {n: [] for n in args.ranks}
        for _repeat in range(args.repeats):  # interleaved, so that a burst of load hits every world size alike
            for n_ranks in args.ranks:
                out = folder / f"out-{n_ranks}"
                if out.exists():
                    shutil.rmtree(out)
                runs[n_ranks].append(run_job(n_ranks, args, weights, data, out))
                print(runs[n_ranks][-1], flush=True)
        rows = [max(runs[n], key=lambda row: row["samples_per_second"]) for n in args.ranks]
        first = sorted((folder / f"out-{args.ranks[0]}").glob("shard-*.npz"))
        for n_ranks in args.ranks[1:]:  # every world size must write the same bytes
            other = sorted((folder / f"out-{n_ranks}").glob("shard-*.npz"))
            if [p.read_bytes() for p in first] != [p.read_bytes() for p in other]:
                raise SystemExit(f"{n_ranks} ranks wrote different shards than {args.ranks[0]}")
    text = table(rows, args)
    print(text)
    write_section(args.doc, torch.device(args.device).type, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
