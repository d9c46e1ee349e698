"""Atomic file writes: a file is either its old self, the complete new one, or absent -- never partial.

Everything sc-neurocore writes (figures, Verilog, bitstream reports, result shards, manifests) goes
through `atomic_write` or `atomic_path`: the content is written to a temporary file in the
same folder, flushed and fsync'd, then renamed over the target (``os.replace`` is atomic on POSIX and
Windows). An exception or Ctrl-C before the rename removes the temporary file and leaves the target as
it was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``.

    For writers that insist on a file name (``matplotlib.savefig``, ``safetensors.save_file``, a
    toolchain writing its output). The parent folder must exist.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "weights.bin"
        >>> with atomic_path(target) as temporary:
        ...     _ = temporary.write_bytes(b"written under another name")
        ...     target.exists()
        False
        >>> target.read_bytes()
        b'written under another name'
    """
    target = Path(path)
    if not target.parent.is_dir():
        raise FileNotFoundError(f"path: the folder {str(target.parent)!r} does not exist")
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    # mkstemp makes the file private (0600); a published file gets the permissions open() would give it.
    os.fchmod(handle, 0o666 & ~_current_umask())
    os.close(handle)
    temporary_path = Path(temporary)
    try:
        yield temporary_path
        with open(temporary_path, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary_path, target)
    finally:
        # Reached with the file still there only when the body raised (KeyboardInterrupt included).
        with contextlib.suppress(FileNotFoundError):
            temporary_path.unlink()


def _current_umask() -> int:
    # Linux reports the umask without changing it; elsewhere set-and-restore (briefly process-wide).
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """``open(path, mode)`` that publishes the file only once the block completes.

    Args:
        path: the target file.
        mode: ``"w"`` (text) or ``"wb"`` (binary).
        encoding: text encoding (ignored for binary).

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "manifest.json"
        >>> with atomic_write(target) as handle:
        ...     _ = handle.write("{}")
        >>> target.read_text()
        '{}'
    """
    if not isinstance(mode, str) or mode not in ("w", "wb"):
        raise ValueError(f"mode: expected 'w' or 'wb', got {mode!r}")
    with atomic_path(path) as temporary, open(temporary, mode, encoding=None if mode == "wb" else encoding) as handle:
        yield handle
        handle.flush()
