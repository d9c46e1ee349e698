"""Hostile files for the safe-loading tests: a pickle that runs code when it is unpickled."""

from __future__ import annotations

from pathlib import Path

import torch

MARKER = "pwned"


class _CreatesMarker:
    """Unpickling this calls ``open(marker, "w")``: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_malicious_pickle(folder: Path, name: str = "weights.pt") -> Path:
    """A ``torch.save`` file holding a state dict whose unpickling creates ``folder/pwned``."""
    path = Path(folder) / name
    torch.save({"weight": torch.zeros(2, 2), "payload": _CreatesMarker(Path(folder) / MARKER)}, path)
    return path
