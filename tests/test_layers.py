"""Layers import downward only: http → service → store/storage/hypervisor → model."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "elastic_api"
# What each layer may never import.
FORBIDDEN = {
    "model": ("aiohttp", "sqlite3", "libvirt", "elastic_api.http", "elastic_api.service",
              "elastic_api.store", "elastic_api.storage", "elastic_api.hypervisor"),
    "store": ("aiohttp", "libvirt", "elastic_api.http", "elastic_api.service"),
    "storage": ("aiohttp", "sqlite3", "libvirt", "elastic_api.http", "elastic_api.service",
                "elastic_api.store"),
    "hypervisor": ("aiohttp", "sqlite3", "elastic_api.http", "elastic_api.service", "elastic_api.store"),
    "service": ("aiohttp", "sqlite3", "libvirt", "elastic_api.http"),
}


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_downward_only(layer):
    for path in (PACKAGE / layer).rglob("*.py"):
        for name in imports(path):
            for forbidden in FORBIDDEN[layer]:
                assert not (name == forbidden or name.startswith(forbidden + ".")), f"{path}: {name}"


def test_libvirt_only_in_hypervisor():
    for path in PACKAGE.rglob("*.py"):
        if "hypervisor" not in path.parts:
            assert not any(n.split(".")[0] in ("libvirt", "libvirtaio") for n in imports(path)), path
