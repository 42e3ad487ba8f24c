"""The package's structure holds: imports flow one way, modules import alone, no unsafe calls."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "expyrun"
MODULES = sorted(
    ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    for path in PACKAGE.rglob("*.py")
)

# Which expyrun modules each layer may import (STYLE.md §1):
# cli -> pipeline, runs, reproduce -> config/, run/, slurm, detach -> errors, console.
ALLOWED = {
    "expyrun.config": {"expyrun.errors", "expyrun.config"},
    "expyrun.run": {"expyrun.errors", "expyrun.run", "expyrun._command"},
    "expyrun._command": {"expyrun.errors"},
    "expyrun.errors": set(),
    "expyrun.console": set(),
}


def _imported_expyrun_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("expyrun"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("expyrun"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] == "expyrun"}


def _owner(module: str) -> str:
    for prefix in ALLOWED:
        if module == prefix or module.startswith(prefix + "."):
            return prefix
    return module


@pytest.mark.parametrize("module", MODULES)
def test_imports_flow_one_way(module: str) -> None:
    path = PACKAGE.parent / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    imported = _imported_expyrun_modules(path)
    own = module == "expyrun.__main__" or module.split(".")[:2] == ["expyrun", "cli"]
    assert "expyrun.cli" not in imported or own, "nothing imports cli"
    owner = _owner(module)
    if owner in ALLOWED:
        allowed = ALLOWED[owner]
        for name in imported - {"expyrun", "expyrun.__version__"}:
            assert any(name == a or name.startswith(a + ".") for a in allowed), (
                f"{module} imports {name}: {owner} may only import {sorted(allowed)}"
            )


def test_the_worker_imports_only_the_standard_library() -> None:
    tree = ast.parse((PACKAGE / "run" / "worker.py").read_text())
    names = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
    }
    third_party = {n for n in names if n not in sys.stdlib_module_names and n != "__future__"}
    assert not third_party, third_party


@pytest.mark.parametrize("module", MODULES)
def test_each_module_imports_alone(module: str) -> None:
    """Import it first in a fresh interpreter: no circular import hides behind another."""
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_no_shell_and_only_safe_yaml() -> None:
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert "shell=True" not in text, path
        assert "os.system(" not in text, path
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("load", "load_all", "unsafe_load"):
                base = node.value
                if isinstance(base, ast.Name) and base.id == "yaml":
                    pytest.fail(f"{path}: yaml.{node.attr} (use a SafeLoader)")
            if isinstance(node, ast.Name) and node.id in ("FullLoader", "UnsafeLoader", "Loader"):
                pytest.fail(f"{path}: {node.id} is not a safe loader")
