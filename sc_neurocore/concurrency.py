"""Sharing a model between threads: one call at a time per model, waited for or refused.

A model whose forward temporarily changes itself -- the adapters install forward hooks on the user's
module and empty its neuron-state attributes for the length of a call -- is not safe to call from two
threads at once: one thread's hooks would fire in the other's forward. `CallLock` makes such calls take
turns (``wait=True``, the default: the model is safe to share, calls are serialised) or refuses a second
concurrent call with a clear error (``wait=False``). It is re-entrant (a call may call the model again in
the same thread), and a copy or a pickle of the model gets a fresh, unlocked lock, so ``copy.deepcopy``
and ``DataLoader`` workers keep working.

For parallel speed, give each thread its own copy (``copy.deepcopy(model)``) rather than sharing one.
`sc_neurocore.models.LIFNetwork` keeps no state in the module between or during calls and needs no lock.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, Self, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class ConcurrentCallError(RuntimeError):
    """A second thread called a model that refuses concurrent use (``CallLock(wait=False)``)."""


class CallLock:
    """A re-entrant per-model lock for the length of one call; fresh in every copy or unpickled model.

    Args:
        name: how errors name the model (e.g. ``"from_snntorch(...) adapter"``).
        wait: ``True``: a second thread waits for its turn; ``False``: it gets a `ConcurrentCallError`.

    Example:
        >>> import copy
        >>> lock = CallLock("model")
        >>> with lock:
        ...     with lock:  # re-entrant in the same thread
        ...         pass
        >>> copy.deepcopy(lock).locked()
        False
    """

    def __init__(self, name: str = "model", wait: bool = True) -> None:
        if not isinstance(name, str):
            raise TypeError(f"name: expected a str, got {type(name).__name__}")
        if not isinstance(wait, bool):
            raise TypeError(f"wait: expected True or False, got {wait!r}")
        self.name = name
        self.wait = wait
        self._lock = threading.RLock()
        self._owner: int | None = None
        self._depth = 0

    def __enter__(self) -> Self:
        if not self._lock.acquire(blocking=self.wait):
            raise ConcurrentCallError(f"{self.name}: already running in another thread; it cannot be called "
                                      "from two threads at once: give each thread its own copy "
                                      "(copy.deepcopy(model)) or call it from one thread")
        self._owner, self._depth = threading.get_ident(), self._depth + 1
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
        self._lock.release()

    def locked(self) -> bool:
        """Whether some thread is inside a call now."""
        return self._owner is not None

    # A lock is never shared by copies: a copied model is another model.
    def __deepcopy__(self, memo: dict) -> CallLock:
        return CallLock(self.name, self.wait)

    def __copy__(self) -> CallLock:
        return CallLock(self.name, self.wait)

    def __reduce__(self):
        return (CallLock, (self.name, self.wait))

    def __repr__(self) -> str:
        return f"CallLock({self.name!r}, wait={self.wait})"


_CREATING = threading.Lock()


def one_call_at_a_time(method: F) -> F:
    """Decorate a model's method so that calls on one instance take turns (a `CallLock` per instance,
    created on first use and shared by every decorated method of that instance).

    Example:
        >>> class Counter:
        ...     def __init__(self):
        ...         self.calls = 0
        ...     @one_call_at_a_time
        ...     def run(self):
        ...         self.calls += 1
        ...         return self.calls
        >>> Counter().run()
        1
    """

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        lock = self.__dict__.get("_call_lock")
        if lock is None:
            with _CREATING:
                lock = self.__dict__.get("_call_lock")
                if lock is None:
                    lock = CallLock(f"{type(self).__name__}")
                    self.__dict__["_call_lock"] = lock
        with lock:
            return method(self, *args, **kwargs)

    return call  # type: ignore[return-value]
