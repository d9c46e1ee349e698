"""Explain a whole dataset, on one process or many, with ``torch.distributed``; results as resumable shards.

`explain_dataset` streams a map-style ``Dataset`` (or the dataset of a ``DataLoader``) through one of the
three explainers, in batches on the chosen device, and writes what it finds to a folder:

* ``shard-00000.npz`` (or ``.safetensors``), one per block of ``shard_size`` consecutive samples, holding
  ``scores`` (the attribution, saliency or importance map of each sample), ``targets`` (the explained
  output neuron), ``outputs`` (the model's readout), ``sample_index`` and, when the dataset has them,
  ``labels``; with ``sparse=True`` the attribution or saliency scores are kept at the input spikes only
  (`sc_neurocore.distributed.sparse`);
* ``shard-00000.json`` beside each shard, its receipt: sample range, SHA-256, the key of the run and the
  digest of the input samples it was computed from;
* ``manifest.json``, written by rank 0 once every rank has finished: model, method, parameters, the
  shard list with sample ranges and checksums, and a summary. A folder with a manifest is complete.

Launched by ``torchrun --nproc-per-node N`` (and ``--nnodes M`` on a cluster), every rank takes a
disjoint, deterministic set of shards (the shards still to do, in order, dealt round-robin: on a fresh
folder shard ``k`` goes to rank ``k mod world_size``); the process group uses gloo on CPU and NCCL on
GPUs. Shards and batches do not depend on the number of ranks, so results are bit-identical whatever the
world size. Every file is written atomically (`sc_neurocore.atomic`) and a shard's receipt only after its
shard, so a killed rank loses only the shard it was computing: a rerun into the same folder keeps every
shard whose checksum, run key and input samples still match, and redoes the others. A folder holding the
results of another model, dataset, method or targets is refused (saying what changed) unless
``overwrite=True``; one run at a time writes into a folder (`sc_neurocore.distributed.lock`).

The package, one idea per module: `dataset` (spike files, batches, content digests), `shards`, `manifest`,
`lock` and `key` (the store), `ranks` (the process group), `run` (`explain_dataset`) and `cli`
(``sc-neurocore explain-dataset``).
"""

from __future__ import annotations

from .cli import add_arguments, main
from .dataset import MAX_NPZ_BYTES, SpikeFileDataset
from .key import model_fingerprint
from .lock import FolderBusyError, folder_lock
from .manifest import FORMAT_VERSION, MANIFEST, DatasetSummary, Explanations, load_explanations
from .ranks import GROUP_TIMEOUT, RankLostError
from .run import DEFAULT_BATCH_SIZE, DEFAULT_BATCHES_PER_SHARD, METHODS, SHARD_FORMATS, TARGET_MODES, explain_dataset

__all__ = ["DEFAULT_BATCHES_PER_SHARD", "DEFAULT_BATCH_SIZE", "FORMAT_VERSION", "GROUP_TIMEOUT", "MANIFEST",
           "MAX_NPZ_BYTES", "METHODS", "SHARD_FORMATS", "TARGET_MODES", "DatasetSummary", "Explanations",
           "FolderBusyError", "RankLostError", "SpikeFileDataset", "add_arguments", "explain_dataset", "folder_lock",
           "load_explanations", "main", "model_fingerprint"]
