"""The package's structure holds: imports flow one way, no cycle, modules import alone.

Read with `ast`, so function-level imports and `TYPE_CHECKING` blocks count like any other
(STYLE.md §1):

    cli  ->  launch/, sweep/, runs/, reproduce/  ->  config/, run/, slurm/, _command
             ->  errors, console
"""

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

# Which expyrun parts each part may import (itself always). A part is a package of expyrun or
# one of its top-level modules. `expyrun` itself (`__version__`) may be imported by anyone.
ALLOWED: dict[str, set[str]] = {
    "expyrun": set(),
    "expyrun.__main__": {"expyrun.cli"},
    "expyrun.cli": {
        "expyrun.console",
        "expyrun.errors",
        "expyrun.launch",
        "expyrun.runs",
        "expyrun.reproduce",
        "expyrun.run",  # the statuses `ls --status` accepts
        "expyrun.sweep",
    },
    # The commands. `reproduce` launches a past run again: a rerun *is* a launch.
    "expyrun.launch": {
        "expyrun.console",
        "expyrun.errors",
        "expyrun.config",
        "expyrun.run",
        "expyrun.slurm",
    },
    # A sweep is many launches; it reads its members' records as `ls` does; a --slurm sweep
    # submits and asks Slurm as a --slurm launch does.
    "expyrun.sweep": {
        "expyrun.console",
        "expyrun.errors",
        "expyrun._command",
        "expyrun.config",
        "expyrun.launch",
        "expyrun.run",
        "expyrun.runs",
        "expyrun.slurm",
    },
    # `diff` lists requirement changes as `reproduce --check` does (reproduce.differences);
    # `ls --keys` reads the configs runs used; `ls --config` resolves an output dir.
    "expyrun.runs": {
        "expyrun.console",
        "expyrun.errors",
        "expyrun.config",
        "expyrun.run",
        "expyrun.slurm",
        "expyrun.reproduce",
    },
    "expyrun.reproduce": {
        "expyrun.console",
        "expyrun.errors",
        "expyrun._command",
        "expyrun.launch",
        "expyrun.run",
    },
    # The rooms below them: config/ and run/ never import each other; slurm/ reads the
    # reserved keys of config/ and the run folder's names of run/, and never imports launch/.
    "expyrun.config": {"expyrun.errors"},
    "expyrun.run": {"expyrun.errors", "expyrun._command"},
    "expyrun.slurm": {"expyrun.errors", "expyrun._command", "expyrun.config", "expyrun.run"},
    "expyrun._command": {"expyrun.errors"},
    "expyrun.console": set(),
    "expyrun.errors": set(),
}
# The only modules that start processes: the door, the worker's spawn (posix_spawn), the
# detach path (a background supervisor that outlives expyrun), --nproc's task supervisors,
# and a sweep's member supervisors and background sweep supervisor.
PROCESS_MODULES = {
    "expyrun._command",
    "expyrun.run.spawn",
    "expyrun.launch.detach",
    "expyrun.launch.nproc",
    "expyrun.sweep.schedule",  # a member's supervisor, waited for by the sweep
    "expyrun.sweep.background",  # a detached sweep's supervisor
}
PROCESS_IMPORTS = {"subprocess", "_posixsubprocess", "multiprocessing", "pty"}


def _path(module: str) -> Path:
    path = PACKAGE.parent / Path(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _imports(module: str) -> list[ast.Import | ast.ImportFrom]:
    tree = ast.parse(_path(module).read_text(), filename=str(_path(module)))
    return [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]


def _expyrun_imports(module: str) -> set[str]:
    """The expyrun modules `module` imports, by their module name (a name from a package:
    the submodule when there is one, else the package)."""
    found = set()
    for node in _imports(module):
        assert not (isinstance(node, ast.ImportFrom) and node.level), f"{module}: relative import"
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "expyrun")
        elif node.module and node.module.split(".")[0] == "expyrun":
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.add(name if name in MODULES else node.module)
    return found


def _part(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def _graph() -> dict[str, set[str]]:
    """Module -> the modules importing it runs: the imported ones and, from outside a package,
    the package's `__init__` (Python runs it first)."""
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        edges = set()
        for name in _expyrun_imports(module) - {module}:
            edges.add(name)
            parts = name.split(".")
            for i in range(2, len(parts)):
                parent = ".".join(parts[:i])
                if not module.startswith(parent + ".") and module != parent:
                    edges.add(parent)
        graph[module] = edges & set(MODULES)
    return graph


def test_every_part_has_its_rule() -> None:
    assert {_part(module) for module in MODULES} <= set(ALLOWED)


@pytest.mark.parametrize("module", MODULES)
def test_imports_flow_one_way(module: str) -> None:
    imported = _expyrun_imports(module)
    if _part(module) not in ("expyrun.__main__", "expyrun.cli"):
        assert _part("expyrun.cli") not in {_part(name) for name in imported}, "nothing imports cli"
    owner = _part(module)
    allowed = ALLOWED[owner] | {owner, "expyrun"}
    for name in imported:
        assert _part(name) in allowed, (
            f"{module} imports {name}: {owner} may only import {sorted(ALLOWED[owner])}"
        )


def test_no_import_cycle() -> None:
    graph = _graph()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = [*path[path.index(module) :], module]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for name in sorted(graph[module]):
            visit(name, [*path, module])
        done.add(module)

    for module in MODULES:
        visit(module, [])


def test_only_the_door_the_spawn_and_detach_start_processes() -> None:
    for module in MODULES:
        names = set()
        for node in _imports(module):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif node.module:
                names.add(node.module.split(".")[0])
        started = names & PROCESS_IMPORTS
        if module not in PROCESS_MODULES:
            assert not started, f"{module} imports {started}: use expyrun._command"


def test_git_is_started_by_one_function() -> None:
    """Every argv starting with "git" is built in `snapshot._git`, the one door to git."""
    builders = set()
    for module in MODULES:
        tree = ast.parse(_path(module).read_text())
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if (
                    isinstance(node, (ast.List, ast.Tuple))
                    and node.elts
                    and isinstance(node.elts[0], ast.Constant)
                    and node.elts[0].value == "git"
                ):
                    builders.add(f"{module}.{function.name}")
    assert builders == {"expyrun.run.snapshot._git"}


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


def test_importing_expyrun_imports_nothing_else() -> None:
    code = "import sys, expyrun; print(sorted(m for m in sys.modules if 'expyrun' in m))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "['expyrun']", done.stderr


# Modules allowed past the limit, and why.
LONG_MODULES = {
    # It runs by file path, as one file, in any interpreter (also one without expyrun).
    "expyrun.run.worker",
}


@pytest.mark.parametrize("module", [m for m in MODULES if m not in LONG_MODULES])
def test_no_module_is_too_long(module: str) -> None:
    """~350 lines at most: past ~300, a module is a hint to split along a job (STYLE.md §1)."""
    assert len(_path(module).read_text().splitlines()) <= 350


def test_no_block_of_six_lines_stands_twice() -> None:
    """Six or more identical source lines in two places are one helper waiting to be named."""
    size = 6
    seen: dict[tuple[str, ...], str] = {}
    for module in MODULES:
        lines = [line.strip() for line in _path(module).read_text().splitlines()]
        for i in range(len(lines) - size + 1):
            block = tuple(lines[i : i + size])
            # Blank lines, closing brackets and import lists repeat by nature.
            meaningful = [
                line for line in block if len(line) > 3 and not line.startswith(("#", '"'))
            ]
            if len(meaningful) < size or any(
                line.startswith(("from ", "import ")) for line in block
            ):
                continue
            where = f"{module}:{i + 1}"
            if block in seen and not seen[block].startswith(module + ":"):
                pytest.fail(
                    f"the same {size} lines at {seen[block]} and {where}:\n" + "\n".join(block)
                )
            seen.setdefault(block, where)


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
