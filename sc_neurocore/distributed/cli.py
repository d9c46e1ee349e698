"""``sc-neurocore explain-dataset``: build the model and the dataset by name, then `explain_dataset`.

Bad input, a folder another run is writing, and a read-only or full disk are each reported as one line
on stderr (exit status 2), never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import TensorDataset

from ..explain import SpikeAttributor
from ..protocol import INPUT_LAYER
from .dataset import SpikeFileDataset
from .ranks import RankLostError
from .run import DEFAULT_BATCH_SIZE, DEFAULT_BATCHES_PER_SHARD, METHODS, SHARD_FORMATS, explain_dataset
from .shards import sha256_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``sc-neurocore explain-dataset`` to ``parser``.

    Args:
        parser: the subcommand's parser (`sc_neurocore.cli` builds it).

    Returns:
        None.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_arguments(parser)
        >>> parser.parse_args(["--model", "m:f", "--dataset", "d.npz", "--method", "saliency", "--out", "o"]).targets
        'predicted'
    """
    parser.add_argument("--model", required=True, metavar="PACKAGE.MODULE:FACTORY",
                        help="a callable that builds the network (imported by name, never unpickled)")
    parser.add_argument("--weights", metavar="FILE", help="state dict to load into the built network "
                        "(.safetensors, or .pt/.pth loaded with weights_only=True)")
    parser.add_argument("--dataset", required=True, metavar="FILE|PACKAGE.MODULE:FACTORY",
                        help="a .safetensors/.npz file with 'spikes' (n, T, N) and optional 'labels' (n,), or a "
                             "callable returning a map-style Dataset or a DataLoader")
    parser.add_argument("--method", required=True, choices=sorted(METHODS), help="which explainer to run")
    parser.add_argument("--out", required=True, help="folder of shards and manifest (a rerun resumes)")
    parser.add_argument("--targets", default="predicted",
                        help="'predicted' (argmax output), 'labels' (the dataset's), or an output neuron index")
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"samples per batch (default {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--shard-size", type=int, default=None,
                        help=f"samples per shard (default {DEFAULT_BATCHES_PER_SHARD} batches)")
    parser.add_argument("--format", dest="shard_format", choices=SHARD_FORMATS, default="npz", help="shard file format")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:K (default: cuda:LOCAL_RANK if available)")
    parser.add_argument("--num-workers", type=int, default=None, help="DataLoader worker processes per rank")
    parser.add_argument("--decay", type=float, default=0.9, help="attribution, linear and gated modes: time decay in (0, 1]")
    parser.add_argument("--mode", choices=("auto", "linear", "gated"), default="auto",
                        help="attribution: auto (spike-time credit through the model's own dynamics; the "
                             "recommended default), linear (the tutorial's weight paths with --decay) or gated "
                             "(deprecated)")
    parser.add_argument("--significance", type=float, default=None, help="saliency: |saliency| counted significant")
    parser.add_argument("--layer", default=INPUT_LAYER, help="causal: the layer whose neurons are silenced")
    parser.add_argument("--sparse", action="store_true",
                        help="attribution, saliency: keep the scores at the input spikes only (O(spikes) shards; "
                             "load_explanations gives a sparse COO tensor)")
    parser.add_argument("--max-memory", type=int, default=None, help="saliency/causal: bytes per forward pass")
    parser.add_argument("--overwrite", action="store_true", help="redo shards left by a run with other settings")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    """``sc-neurocore explain-dataset``: build the model and the dataset by name, then `explain_dataset`.

    The model is built by calling ``--model`` (imported by name) and, with ``--weights``, given the state
    dict read by `sc_neurocore.loading.load_state_dict`; nothing is unpickled.

    Args:
        args: the parsed options (see `add_arguments`).

    Returns:
        0 on success (bad input raises ``ValueError`` / ``TypeError``, which the CLI reports as one line).

    Example:
        >>> from sc_neurocore.cli import main as cli  # doctest: +SKIP
        >>> cli(["explain-dataset", "--model", "mypkg.nets:build", "--weights", "w.safetensors",
        ...      "--dataset", "spikes.npz", "--method", "saliency", "--out", "results"])  # doctest: +SKIP
        0
    """
    from ..loading import load_state_dict

    model = _build(args.model, "model")
    if args.weights is not None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: --weights needs {args.model} to build an nn.Module, got {type(model).__name__}")
        try:
            model.load_state_dict(load_state_dict(args.weights))
        except RuntimeError as error:  # missing, unexpected or mis-shaped tensors
            raise ValueError(f"weights: {args.weights} does not fit the network {args.model} builds: {error}") \
                from error
    dataset_path = Path(args.dataset)
    if dataset_path.suffix in (".safetensors", ".npz"):
        try:
            dataset: Any = SpikeFileDataset(dataset_path)
        except OSError as error:
            if isinstance(error, FileNotFoundError) and error.filename is None:
                raise
            raise ValueError(_os_error_line(error, args.dataset, "dataset")) from error
    elif ":" in args.dataset:
        dataset = _build(args.dataset, "dataset")
        if isinstance(dataset, tuple) and "spikes" in getattr(dataset, "_fields", ()):  # e.g. sc_neurocore.data:load_digits
            spike_set: Any = dataset
            dataset = TensorDataset(*[t for t in (spike_set.spikes, getattr(spike_set, "labels", None)) if t is not None])
    else:
        raise ValueError(f"dataset: expected a .safetensors/.npz file or 'package.module:factory', "
                         f"got {args.dataset!r}")
    if args.method == "attribution":
        explainer = SpikeAttributor(decay=args.decay, mode=args.mode)
    else:
        options = {"max_memory": args.max_memory}
        if args.method == "saliency" and args.significance is not None:
            options["significance"] = args.significance
        explainer = METHODS[args.method](model, **options)
    targets = int(args.targets) if args.targets.lstrip("-").isdigit() else args.targets
    metadata = {"model_factory": args.model, "dataset": args.dataset}
    if args.weights is not None:
        metadata.update(weights=str(args.weights), weights_sha256=sha256_file(Path(args.weights)))
    try:
        summary = explain_dataset(explainer, model, dataset, args.out, batch_size=args.batch_size, targets=targets,
                                  layer=args.layer, shard_size=args.shard_size, device=args.device,
                                  shard_format=args.shard_format, num_workers=args.num_workers,
                                  progress=not args.no_progress, overwrite=args.overwrite, metadata=metadata,
                                  sparse=args.sparse)
    except OSError as error:
        if isinstance(error, FileNotFoundError) and error.filename is None:
            raise  # already one of our named messages
        raise ValueError(_os_error_line(error, args.out)) from error
    except RankLostError as error:  # not bad input: exit status 1, but one line, not a traceback per rank
        print(f"sc-neurocore explain-dataset: error: {error}", file=sys.stderr, flush=True)
        return 1
    if args.no_progress and int(os.environ.get("RANK", "0")) == 0:  # with progress, explain_dataset printed it
        print(summary.describe(), flush=True)
    return 0


def _build(spec: str, name: str):
    """Call the factory ``package.module:factory``; import problems become a ``ValueError`` naming ``name``."""
    from ..loading import import_factory

    try:
        factory = import_factory(spec)
    except ImportError as error:
        raise ValueError(f"{name}: cannot import {spec.split(':')[0]!r} ({error})") from error
    except ValueError as error:  # import_factory names the argument 'model'
        raise ValueError(f"{name}: {str(error).removeprefix('model: ')}") from error
    return factory()


def _os_error_line(error: OSError, path: str, name: str = "out") -> str:
    """An ``OSError`` (read-only or full disk, permissions) as one line naming the argument and the file."""
    where = str(error.filename if error.filename is not None else path)
    if name == "out" and not Path(where).resolve().is_relative_to(Path(path).resolve()):
        name = "dataset"  # not a file of the results: something the run read
    reason = error.strerror or error.__class__.__name__
    if name != "out":
        return f"{name}: cannot read {where!r}: {reason} [errno {error.errno}]"
    hint = {30: "; the folder is on a read-only file system: choose a writable --out",
            28: "; the disk is full: free space or choose another --out (a rerun resumes from the shards "
                "already written)",
            13: "; no permission to write there: choose another --out"}.get(error.errno or 0, "")
    return f"out: cannot write {where!r}: {reason} [errno {error.errno}]{hint}"
