"""Find the entry point's module statically, before anything is created or imported.

The supervisor never imports the user's code (it would be slow and run import-time side
effects twice): it finds the module's file under the code folder, or among installed
packages, and reads the function's definition with `ast`. What cannot be checked statically
(a function made by a decorator, imported from elsewhere) is checked by the worker. A decorated
definition is never refused here, whatever its parameters or `async`: the decorator may return
anything that takes (name, config), and plain python would run it.

A name bound by a plain assignment is checked when its value shows what it is: a literal
(`main = 5`, `main = None`, a string, a list...) is not a function, a lambda must accept
(name, config), and a name (`main = _impl`) is followed to the function it names. This costs
nothing more than the parse already done; anything else (a call, an attribute) is left to the
worker, and so is a module that may rebind the name out of sight (`global main`, `globals()`).
"""

import _ast as ast  # the C node classes: `ast` itself costs ~2 ms to import
import importlib.machinery
import os
import sys
from pathlib import Path
from typing import NamedTuple

from expyrun.errors import EntryPointError
from expyrun.run.bindings import rebindable, top_level_binding


class EntryLocation(NamedTuple):
    """Where an entry point's code lives."""

    top_level: Path  # the top-level package folder or single-file module to copy
    module_file: Path  # the file that defines the entry function
    in_code_dir: bool  # False: an installed package, not copied into the run folder


def locate_entry(entry: str, module: str, function: str, code_dir: Path) -> EntryLocation:
    """Check that `module:function` exists under `code_dir` (or is installed)."""
    if not code_dir.is_dir():
        raise EntryPointError(
            f"entry point '{entry}': the code folder does not exist",
            path=code_dir,
            hint="check __run__.__code__",
        )
    parts = module.split(".")
    top = _find_top_level(parts[0], code_dir)
    if top is None:
        raise EntryPointError(
            f"entry point '{entry}': no package or module '{parts[0]}' in the code folder",
            path=code_dir,
            hint="run expyrun from the folder that holds it, or set __run__.__code__",
        )
    top_path, in_code_dir = top
    module_file = _find_submodule(top_path, parts, entry)
    _check_function(module_file, function, entry, _Importer(top_path, parts))
    return EntryLocation(top_path, module_file, in_code_dir)


def _find_top_level(name: str, code_dir: Path) -> tuple[Path, bool] | None:
    package = code_dir / name
    if package.is_dir():
        return package, True
    module = code_dir / f"{name}.py"
    if module.is_file():
        return module, True
    # Installed packages only: not the current folder, which `python -m expyrun` puts first
    # on sys.path but the worker, running in the run folder, does not have.
    here = os.getcwd()
    installed = [p for p in sys.path if p and os.path.abspath(p) != here]
    spec = importlib.machinery.PathFinder.find_spec(name, installed)
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))), False
    if spec.origin and spec.origin.endswith(".py"):
        return Path(spec.origin), False
    return None


def _find_submodule(top: Path, parts: list[str], entry: str) -> Path:
    if top.is_file():
        if len(parts) > 1:
            raise EntryPointError(f"entry point '{entry}': '{parts[0]}' is a module, not a package")
        return top
    folder = top
    for part in parts[1:]:
        if (folder / part).is_dir():
            folder = folder / part
        elif (folder / f"{part}.py").is_file():
            if part != parts[-1]:
                raise EntryPointError(f"entry point '{entry}': '{part}' is a module, not a package")
            return folder / f"{part}.py"
        else:
            raise EntryPointError(f"entry point '{entry}': no module '{part}'", path=folder)
    init = folder / "__init__.py"
    if not init.is_file():
        raise EntryPointError(f"entry point '{entry}': package has no __init__.py", path=folder)
    return init


class _Importer(NamedTuple):
    """The module being read (`parts`, dotted name split) inside the top-level package `top`:
    what a `from ... import` in it names."""

    top: Path
    parts: list[str]


# `from .train import main` in the entry's module is followed into the user's package this
# many times (a chain of re-exports), never into another package.
_IMPORTS_FOLLOWED = 5


def _check_function(
    module_file: Path, function: str, entry: str, importer: _Importer, depth: int = 0
) -> None:
    """Refuse what `function` in `module_file` certainly is not: a function taking (name,
    config). At `depth` > 0 the module was reached by following an import, and a name it
    does not show is left to the worker (a submodule, a module `__getattr__`), and so is a
    module it cannot parse (the worker's interpreter may be newer: `expyrun reproduce`)."""
    try:
        tree = _parse(module_file, entry)
    except EntryPointError:
        if depth:
            return
        raise
    definition = top_level_binding(tree, function)
    if definition is None:
        if depth:
            return
        raise EntryPointError(
            f"entry point '{entry}': no function '{function}' in the module", path=module_file
        )
    if isinstance(definition, ast.ImportFrom) and definition in tree.body:
        found = _imported(definition, function, importer)
        if found is not None and depth < _IMPORTS_FOLLOWED and not rebindable(tree, function):
            file, name, target = found
            _check_function(file, name, entry, target, depth + 1)
        return
    if isinstance(definition, ast.Assign | ast.AnnAssign) and definition in tree.body:
        definition = _assigned(tree, definition, function, entry, module_file)
    if isinstance(definition, ast.FunctionDef | ast.AsyncFunctionDef):
        if definition.decorator_list:
            return  # a decorator may return anything (a plain function running an async one)
        if isinstance(definition, ast.AsyncFunctionDef):
            raise EntryPointError(
                f"entry point '{entry}' is an async function; expyrun calls a plain function",
                path=module_file,
                line=definition.lineno,
            )
        if not _accepts_two(definition.args):
            raise EntryPointError(
                f"entry point '{entry}' must accept (name, config)",
                path=module_file,
                line=definition.lineno,
            )


def _parse(module_file: Path, entry: str) -> ast.Module:
    """The syntax tree of a module; EntryPointError when it cannot be read or parsed."""
    try:
        tree = compile(module_file.read_bytes(), str(module_file), "exec", ast.PyCF_ONLY_AST)
    except SyntaxError as exc:
        raise EntryPointError(
            f"entry point '{entry}': syntax error: {exc.msg}", path=module_file, line=exc.lineno
        ) from exc
    except OSError as exc:
        raise EntryPointError(f"entry point '{entry}': {exc.strerror}", path=module_file) from exc
    if not isinstance(tree, ast.Module):  # always one, for mypy: compile() returns an AST
        raise EntryPointError(f"entry point '{entry}': not a module", path=module_file)
    return tree


def _imported(
    statement: ast.ImportFrom, name: str, importer: _Importer
) -> tuple[Path, str, _Importer] | None:
    """The file, name and module a `from X import A as name` takes `name` from, when X is a
    module of the importer's own top-level package (a file of the code folder, or of the
    installed package); None otherwise, and for anything it cannot tell."""
    alias = next((a for a in statement.names if (a.asname or a.name) == name), None)
    if alias is None or alias.name == "*":
        return None
    if statement.level:
        package = importer.parts if _is_package(importer) else importer.parts[:-1]
        if statement.level - 1 >= len(package):
            return None  # beyond the top-level package: Python refuses it, let the worker say
        base = package[: len(package) - (statement.level - 1)]
        base = base + (statement.module.split(".") if statement.module else [])
    else:
        base = (statement.module or "").split(".")
    if base[0] != importer.parts[0]:
        return None
    try:
        file = _find_submodule(importer.top, base, "")
    except EntryPointError:
        return None
    if file.name == "__init__.py" and (
        (file.parent / alias.name).is_dir() or (file.parent / f"{alias.name}.py").is_file()
    ):
        return None  # `from pkg import train`: a submodule, not a function
    return file, alias.name, _Importer(importer.top, base)


def _is_package(importer: _Importer) -> bool:
    """Whether the importer is a package's `__init__.py` (its relative imports start at it)."""
    folder = importer.top.joinpath(*importer.parts[1:])
    return importer.top.is_dir() and folder.is_dir()


# Expressions whose value is never callable: literals, displays, comprehensions, f-strings,
# comparisons (their node classes, from the C module like the rest).
_NOT_CALLABLE = (
    ast.Constant,
    ast.JoinedStr,
    ast.List,
    ast.Tuple,
    ast.Dict,
    ast.Set,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
    ast.Compare,
)
_ALIASES_FOLLOWED = 5  # `main = run = _impl`: a few steps, and no loop on `a = b; b = a`


def _assigned(
    tree: ast.Module, statement: ast.stmt, name: str, entry: str, module_file: Path
) -> ast.stmt | None:
    """The function a top-level `name = VALUE` binds, or None when it cannot be told.

    Raises `EntryPointError` when VALUE is certainly not a function that accepts two
    arguments (a literal, a lambda with the wrong parameters).
    """
    if rebindable(tree, name):
        return None
    shown = f"'{name}'"
    for _ in range(_ALIASES_FOLLOWED):
        value = statement.value if isinstance(statement, ast.Assign | ast.AnnAssign) else None
        if not _binds_plainly(statement, name) or value is None:
            return statement
        if isinstance(value, _NOT_CALLABLE):
            what = _describe(value)
            raise EntryPointError(
                f"entry point '{entry}' is not a function: {shown} is {what}",
                path=module_file,
                line=statement.lineno,
            )
        if isinstance(value, ast.Lambda):
            if not _accepts_two(value.args):
                raise EntryPointError(
                    f"entry point '{entry}' must accept (name, config): {shown} is a lambda "
                    "with other parameters",
                    path=module_file,
                    line=statement.lineno,
                )
            return None
        if not isinstance(value, ast.Name):
            return None
        name = value.id
        shown += f" = '{name}'"
        found = top_level_binding(tree, name)
        if found is None or found not in tree.body:
            return None
        statement = found
    return None


def _binds_plainly(statement: ast.stmt, name: str) -> bool:
    """Whether `statement` is an assignment with `name` as one of its plain targets."""
    if isinstance(statement, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id == name for t in statement.targets)
    if isinstance(statement, ast.AnnAssign):
        target = statement.target
        return isinstance(target, ast.Name) and target.id == name
    return True  # a def: the caller checks it


_KINDS = {
    "JoinedStr": "an f-string",
    "Compare": "a comparison",
    "ListComp": "a list comprehension",
    "SetComp": "a set comprehension",
    "DictComp": "a dict comprehension",
    "GeneratorExp": "a generator expression",
}


def _describe(value: ast.expr) -> str:
    """What a non-callable value is, for the message: `the int 5`, `None`, `a list`."""
    if isinstance(value, ast.Constant):
        if value.value is None or value.value is Ellipsis:
            return repr(value.value)
        text = repr(value.value)
        text = text if len(text) <= 40 else text[:37] + "..."
        return f"the {type(value.value).__name__} {text}"
    kind = type(value).__name__
    return _KINDS.get(kind, f"a {kind.lower()}")


def _accepts_two(args: ast.arguments) -> bool:
    positional = len(args.posonlyargs) + len(args.args)
    required = positional - len(args.defaults)
    kwonly_required = sum(1 for d in args.kw_defaults if d is None)
    if kwonly_required:
        return False
    return (args.vararg is not None or positional >= 2) and required <= 2
