"""Sharing a model between threads (issue 16, item 6): `CallLock` and `one_call_at_a_time`.

The race is real and forced: a toy model that, like the adapters, installs a forward hook on itself for
the length of a call, with a barrier inside its forward so that two threads are in it at once. Unlocked,
one thread's hook fires in the other's forward; locked, each call sees only its own hook.
"""

from __future__ import annotations

import copy
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from torch import nn

from sc_neurocore import LIFNetwork
from sc_neurocore.concurrency import CallLock, ConcurrentCallError, one_call_at_a_time


class HookedScaler(nn.Module):
    """``run(x, factor)`` = ``x * factor``, computed by a hook installed for the call (the adapters' pattern)."""

    def __init__(self, rendezvous: threading.Barrier | None = None) -> None:
        super().__init__()
        self.inner = nn.Identity()
        self.rendezvous = rendezvous

    def _meet(self) -> None:
        if self.rendezvous is not None:
            try:
                self.rendezvous.wait(timeout=0.2)
            except threading.BrokenBarrierError:
                self.rendezvous.reset()  # serialised calls never meet: the barrier times out

    def forward(self, x):
        self._meet()  # both threads are inside, each with its hook installed
        out = self.inner(x)
        self._meet()  # neither removes its hook before the other has computed
        return out

    def run(self, x, factor):
        handle = self.inner.register_forward_hook(lambda module, args, out: out * factor)
        try:
            return self(x)
        finally:
            handle.remove()

    @one_call_at_a_time
    def run_locked(self, x, factor):
        return self.run(x, factor)


def two_threads(call) -> list:
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(call, [2.0, 3.0]))


def test_unlocked_hooks_fire_in_the_other_threads_call_and_the_lock_prevents_it():
    racy = HookedScaler(threading.Barrier(2))
    results = two_threads(lambda factor: racy.run(torch.ones(1), factor))
    assert [float(r) for r in results] == [6.0, 6.0]  # each call got both hooks: the race, reproduced

    safe = HookedScaler(threading.Barrier(2))
    results = two_threads(lambda factor: safe.run_locked(torch.ones(1), factor))
    assert [float(r) for r in results] == [2.0, 3.0]


def test_a_lock_that_refuses_says_so_in_the_second_thread():
    lock = CallLock("from_snntorch adapter", wait=False)
    inside, release = threading.Event(), threading.Event()

    def first():
        with lock:
            inside.set()
            release.wait(5)

    worker = threading.Thread(target=first)
    worker.start()
    inside.wait(5)
    try:
        with pytest.raises(ConcurrentCallError, match="from_snntorch adapter: already running in another thread"), lock:
            pass
    finally:
        release.set()
        worker.join()
    with lock, lock:  # free again, and re-entrant
        assert lock.locked()
    assert not lock.locked()


def test_models_holding_a_lock_copy_and_pickle_with_a_fresh_one():
    model = HookedScaler()
    model.run_locked(torch.ones(1), 2.0)  # creates the lock
    with model.__dict__["_call_lock"]:  # held while copying: the copies must not be born locked
        twin, thawed = copy.deepcopy(model), pickle.loads(pickle.dumps(model))
    for other in (twin, thawed):
        assert other.__dict__["_call_lock"] is not model.__dict__["_call_lock"]
        assert not other.__dict__["_call_lock"].locked()
        assert float(other.run_locked(torch.ones(1), 4.0)) == 4.0
    with pytest.raises(TypeError, match="wait: expected True or False"):
        CallLock("m", wait="no")


def test_one_lif_network_shared_by_threads_gives_the_serial_results():
    generator = torch.Generator().manual_seed(0)
    net = LIFNetwork([torch.randn(20, 12, generator=generator), torch.randn(12, 4, generator=generator)],
                     threshold=0.5)
    batches = [(torch.rand(3, 30, 20, generator=generator) < 0.3).float() for _ in range(16)]
    serial = [net.run(batch) for batch in batches]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(net.run, batches))
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel, strict=True))
    assert sum(float(r.sum()) for r in serial) > 0
