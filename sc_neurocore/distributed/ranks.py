"""The ranks of a dataset run: the process group (gloo on CPU, NCCL on GPUs), barriers and gathers.

Launched by ``torchrun --nproc-per-node N`` (and ``--nnodes M`` on a cluster), the process group is
created from torchrun's environment unless the caller already created one; a single process is rank 0
of 1 and needs no group.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator
from typing import Any, NamedTuple

import torch

#: How long a rank waits for the others at a barrier (torch's default, 10 to 30 minutes, is too short when
#: ranks finish their shards at different times).
GROUP_TIMEOUT = datetime.timedelta(hours=12)


class RankLostError(RuntimeError):
    """Another rank of the job died (a crashed node, an out-of-memory kill): this rank cannot finish either."""


@contextlib.contextmanager
def _collective(where: Rank, what: str) -> Iterator[None]:
    """Turn the backend's error when a peer is gone (gloo: "Connection closed by peer") into one clear line."""
    try:
        yield
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RankLostError(f"rank {where.rank} of {where.world_size}: lost contact with another rank during {what} "
                            f"({first[:200]}); the job cannot finish. Rerun the same command to resume: shards "
                            "already written are kept") from error


class Rank(NamedTuple):
    rank: int
    world_size: int
    device: torch.device


def resolve_device(device: Any) -> torch.device:
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device: expected a torch device such as 'cpu' or 'cuda:0', got {device!r}") from error
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device: expected 'cpu' or 'cuda[:K]', got {str(device)!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device: {device} requested but CUDA is not available")
        if device.index is None:  # one GPU per local rank, as torchrun intends
            device = torch.device("cuda", local_rank)
        if device.index >= torch.cuda.device_count():
            raise ValueError(f"device: {device} does not exist ({torch.cuda.device_count()} CUDA device(s)); "
                             "start at most one rank per GPU (torchrun --nproc-per-node <= number of GPUs)")
        torch.cuda.set_device(device)
    return device


@contextlib.contextmanager
def process_group(device: Any) -> Iterator[Rank]:
    """Join (or create from torchrun's environment) the process group; destroy it only if created here."""
    import torch.distributed as dist

    device = resolve_device(device)
    created = False
    if dist.is_available() and not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Ranks wait for each other only at the start and the end, which may be hours apart on a big dataset.
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", timeout=GROUP_TIMEOUT)
        created = True
    try:
        if dist.is_available() and dist.is_initialized():
            yield Rank(dist.get_rank(), dist.get_world_size(), device)
        else:
            yield Rank(0, 1, device)
    finally:
        if created:
            dist.destroy_process_group()


def barrier(where: Rank) -> None:
    if where.world_size > 1:
        import torch.distributed as dist

        with _collective(where, "a barrier"):
            if dist.get_backend() == "nccl":
                dist.barrier(device_ids=[where.device.index])
            else:
                dist.barrier()


def gather(where: Rank, value: Any) -> list:
    """``value`` of every rank, in rank order (a list of one on a single process)."""
    if where.world_size == 1:
        return [value]
    import torch.distributed as dist

    gathered: list = [None] * where.world_size
    with _collective(where, "a gather"):
        dist.all_gather_object(gathered, value)
    return gathered


def from_rank0(where: Rank, value: Any) -> Any:
    """Rank 0's ``value`` on every rank."""
    return gather(where, value)[0]
