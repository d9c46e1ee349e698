"""Counting the bytes a computation really materialises: a small tracking allocator for CPU tensors.

:class:`LiveBytes` is a ``TorchDispatchMode``: every tensor an operator returns inside it is counted
against its storage until the last tensor using that storage is garbage collected, so ``peak`` is the
largest number of bytes alive at once among the tensors created inside the block (tensors that
existed before it -- the caller's spikes, the weights -- are not counted). It sees what the engine,
the model and the step functions allocate, whoever allocates it.
"""

from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class LiveBytes(TorchDispatchMode):
    """Peak bytes of tensor storage alive at once, among storages created inside the mode."""

    def __init__(self) -> None:
        super().__init__()
        self._users: dict[int, int] = {}
        self._bytes: dict[int, int] = {}
        self.current = 0
        self.peak = 0

    def _release(self, key: int) -> None:
        self._users[key] -= 1
        if self._users[key] == 0:
            del self._users[key]
            self.current -= self._bytes.pop(key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for tensor in tree_leaves(out):
            if not isinstance(tensor, torch.Tensor) or tensor.device.type != "cpu":
                continue
            storage = tensor.untyped_storage()
            key = storage.data_ptr()
            if key == 0 or (key in inputs and key not in self._users):
                continue  # an empty tensor, or a view / in-place result on storage made before the mode
            if key not in self._users:
                self._users[key] = 0
                self._bytes[key] = storage.nbytes()
                self.current += storage.nbytes()
                self.peak = max(self.peak, self.current)
            self._users[key] += 1
            weakref.finalize(tensor, self._release, key)
        return out
