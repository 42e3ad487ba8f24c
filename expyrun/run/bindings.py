"""Where a module binds a name, read from its syntax tree (for `run/entry.py`).

The nodes come from the C module `_ast`: `ast` itself costs ~2 ms to import, and the check
runs on every launch.
"""

from __future__ import annotations

import _ast as ast


def rebindable(tree: ast.Module, name: str) -> bool:
    """Whether code may rebind `name` where `top_level_binding` does not look: a `global`
    or `nonlocal` statement naming it, or `globals()`, `vars()`, `exec`."""
    for node in walk(tree):
        if isinstance(node, ast.Global | ast.Nonlocal) and name in node.names:
            return True
        if isinstance(node, ast.Name) and node.id in ("globals", "vars", "exec"):
            return True
    return False


def top_level_binding(tree: ast.Module, name: str) -> ast.stmt | None:
    """The last top-level statement that binds `name`, or None.

    A def, class, import or assignment; one nested in a top-level `if`, `try` or `with`
    counts when no plain top-level statement binds it; a star import may bind anything.
    """
    found: ast.stmt | None = None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == name:
                found = node
        elif isinstance(node, ast.Import | ast.ImportFrom):
            if any((alias.asname or alias.name.split(".")[0]) == name for alias in node.names):
                found = node
            if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
                found = found or node  # a star import may bind it: let the worker check
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(name in _bound_names(target) for target in targets):
                found = node
        elif isinstance(node, ast.If | ast.Try | ast.With):
            found = found or _nested_binding(node, name)
    return found


def _nested_binding(node: ast.stmt, name: str) -> ast.stmt | None:
    for child in walk(node):
        if child is node or not isinstance(child, ast.stmt):
            continue
        sub = ast.Module(body=[child], type_ignores=[])
        if top_level_binding(sub, name) is not None:
            return child
    return None


def _bound_names(target: ast.expr) -> set[str]:
    return {n.id for n in walk(target) if isinstance(n, ast.Name)}


def walk(node: ast.AST) -> list[ast.AST]:
    """`node` and every node below it (as `ast.walk`, without importing `ast`)."""
    found = [node]
    for current in found:  # grows while it is read: a breadth-first walk
        for field in current._fields:
            value = getattr(current, field, None)
            if isinstance(value, ast.AST):
                found.append(value)
            elif isinstance(value, list):
                found.extend(item for item in value if isinstance(item, ast.AST))
    return found
