"""One writer per output folder: an advisory lock that holds the writer's pid and host.

`folder_lock` takes ``out_dir/.sc-neurocore.lock`` with ``fcntl.flock`` for the duration of a run. The
kernel drops the lock when its process ends, however it ends, so a lock file left by a killed run is
taken over by the next one (the pid and host it names are only there to say who holds a live lock).
Where ``flock`` is not available (some network file systems), the lock file is created exclusively
instead, and a lock left by a process of this host that no longer runs is recognised as stale and
removed. Every rank of one ``torchrun`` job is one writer: rank 0 takes the lock for all of them.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".sc-neurocore.lock"


class FolderBusyError(ValueError):
    """Another live run is writing into the same output folder."""


def _owner() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "since": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def _describe(path: Path) -> str:
    try:
        owner = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {owner['pid']} on {owner['host']} since {owner['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not yet written its pid"


def _busy(out_dir: Path, path: Path) -> FolderBusyError:
    return FolderBusyError(f"out_dir: {str(out_dir)!r} is being written by another run ({_describe(path)}); "
                           "wait for it to finish or choose another folder")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


@contextlib.contextmanager
def folder_lock(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold the writer's lock on ``out_dir`` (which must exist) for the block.

    Raises:
        FolderBusyError: a live run holds it (a ``ValueError`` naming ``out_dir`` and the holder).

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> with folder_lock(folder):
        ...     try:
        ...         with folder_lock(folder):
        ...             pass
        ...     except FolderBusyError as error:
        ...         print(str(error).split(" (")[0])
        out_dir: ... is being written by another run
    """
    out_dir = Path(out_dir)
    path = out_dir / LOCK_NAME
    try:
        import fcntl
    except ImportError:  # not POSIX
        fcntl = None  # type: ignore[assignment]
    if fcntl is not None:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise _busy(out_dir, path) from None
            except OSError as error:
                if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    raise
                os.close(handle)
                handle = -1
            if handle >= 0:
                os.ftruncate(handle, 0)
                os.write(handle, json.dumps(_owner()).encode())
                try:
                    yield path
                finally:
                    # Truncate rather than delete: deleting would let a waiting run lock an unlinked inode.
                    with contextlib.suppress(OSError):
                        os.ftruncate(handle, 0)
                return
        finally:
            if handle >= 0:
                os.close(handle)  # releases the flock
    with _exclusive_file(out_dir, path):
        yield path


@contextlib.contextmanager
def _exclusive_file(out_dir: Path, path: Path) -> Iterator[None]:
    """The fallback without ``flock``: an exclusively created lock file; a dead local holder's is stale."""
    for _attempt in range(2):
        try:
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            break
        except FileExistsError:
            try:
                owner = json.loads(path.read_text(encoding="utf-8"))
                stale = owner["host"] == socket.gethostname() and not _pid_alive(int(owner["pid"]))
            except (OSError, ValueError, KeyError, TypeError):
                stale = path.exists() and path.stat().st_size == 0
            if not stale:
                raise _busy(out_dir, path) from None
            path.unlink(missing_ok=True)  # left by a run that died: recover it
    else:
        raise _busy(out_dir, path)
    try:
        os.write(handle, json.dumps(_owner()).encode())
        os.close(handle)
        yield
    finally:
        path.unlink(missing_ok=True)
