"""Imports point down the layering of ARCHITECTURE.md: no module imports one on a higher floor, lazily
(inside a function) or not. The floors are the package's parts, bottom first."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sc_neurocore"

#: Floor of each part of the package (the first path component under sc_neurocore/, or the module).
FLOORS = {
    "graph": 1, "dynamics": 1, "protocol": 1, "inputs": 1, "atomic": 1, "loading": 1, "extras": 1,
    "concurrency": 1, "progress": 1,
    "adapters": 2, "models": 2,
    "engine": 3, "fpga": 3,
    "explain": 4,
    "data": 5, "demo": 5, "bench": 5, "quality": 5, "distributed": 5, "plot": 5, "captum": 5,
    "cli": 6, "__main__": 6,
}
#: Modules that are a part's command line: they sit on the CLI floor whatever their folder.
CLI_MODULES = ("cli",)
#: Modules above their part's floor: the FPGA's host side is a job built from the explainers (it returns
#: their results and builds the shipped digits network), not part of the hardware model below them.
MODULE_FLOORS = {"fpga/driver.py": 5, "fpga/network_driver.py": 5, "fpga/network_build.py": 5,
                 "fpga/placement.py": 5}


def _part(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def _floor(path: Path) -> int:
    relative = str(path.relative_to(PACKAGE))
    if relative in MODULE_FLOORS:
        return MODULE_FLOORS[relative]
    if path.stem in CLI_MODULES:
        return FLOORS["cli"]
    return FLOORS.get(_part(path), 0)


def _imported_parts(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ["sc_neurocore", *path.relative_to(PACKAGE).parent.parts]
    parts = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = [*base, *(node.module.split(".") if node.module else [])]
                if len(target) == 1:  # `from .. import x`: x is a part
                    parts.update(alias.name for alias in node.names)
                    continue
            elif node.module and node.module.startswith("sc_neurocore."):
                target = node.module.split(".")
            else:
                continue
            if len(target) > 1:
                parts.add(target[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("sc_neurocore."):
                    parts.add(alias.name.split(".")[1])
    return parts


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


def test_every_part_has_a_floor():
    missing = sorted({_part(p) for p in MODULES if _part(p) not in FLOORS and p.stem not in CLI_MODULES})
    assert not missing, f"parts without a floor in tests/test_layering.py: {missing}"


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(PACKAGE)) for p in MODULES])
def test_imports_point_down(path):
    floor = _floor(path)
    upward = sorted(part for part in _imported_parts(path) if FLOORS.get(part, 0) > floor and part != _part(path))
    assert not upward, f"{path.relative_to(PACKAGE)} (floor {floor}) imports {upward} from a higher floor"
