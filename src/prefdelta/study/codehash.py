"""Code versions for stage cache keys: the transitive closure of a module's project imports.

A stage is up to date only if none of the code it may execute changed. Hashing the
stage's own file misses an edit two imports away (a grader, a loss); hashing the whole
package re-runs every stage after any edit. So the key covers the stage module and
every ``prefdelta`` module it imports, directly or through other project modules —
including imports inside functions, which this project uses to keep start-up fast.

The imports are read from the source with :mod:`ast` (nothing is executed), so the
closure is known before a stage runs and is the same whatever was imported earlier.
It over-approximates (an import in a branch that never runs still counts), which errs
on the side of re-running. A registry that imports its entries by name must spell each
module's full dotted name as a string literal (``"prefdelta.sources.gsm8k"``): such
literals count as imports too; a package that imports every module of its folder with
``pkgutil.iter_modules(__path__)`` (the loss registry) reaches all of them.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import re
from pathlib import Path

from prefdelta import __version__
from prefdelta.hashing import file_hash, stable_hash

PACKAGE = "prefdelta"
_MODULE = re.compile(r"^prefdelta(\.[a-z_][a-z0-9_]*)+$")


@functools.cache
def _module_file(name: str) -> Path | None:
    """The source file of module ``name`` (``__init__.py`` for a package), without importing it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


@functools.cache
def _imported_names(path: Path, module: str) -> frozenset[str]:
    """Project modules named by the imports of one source file (absolute and relative)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in _walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base_parts = parts[: len(parts) - node.level + 1]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            # `from prefdelta.x import y`: y may be a submodule
            names.update(f"{base}.{a.name}" for a in node.names if a.name != "*")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE.match(node.value):
            names.add(node.value)  # a registry's `importlib.import_module("prefdelta.x.y")` target
        elif is_package and isinstance(node, ast.Attribute) and node.attr == "iter_modules":
            # a package importing every module of its folder (`pkgutil.iter_modules(__path__)`)
            names.update(f"{module}.{f.stem}" for f in path.parent.glob("*.py") if f.stem != "__init__")
    out = set()
    for name in names:
        if name == PACKAGE or name.startswith(PACKAGE + "."):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b too
                out.add(".".join(parts[:i]))
    return frozenset(out)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(tree: ast.AST):  # -> Iterator[ast.AST]
    """:func:`ast.walk` that skips ``if TYPE_CHECKING:`` bodies (imports for annotations only)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))


@functools.cache
def closure(module: str) -> tuple[tuple[str, str], ...]:
    """``(module, source file)`` for ``module`` and every project module it reaches, sorted."""
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_file(name)
        if path is None:  # a name imported from a module (not a module itself)
            continue
        seen[name] = path
        todo.extend(_imported_names(path, name) - seen.keys())
    return tuple(sorted((n, str(p)) for n, p in seen.items()))


def code_version(*modules: str) -> str:
    """Hash of the package version and the sources of the closure of ``modules``.

    Files are re-read on every call (cheap: a few hundred KB), so an edit made while a
    long-lived process runs is still seen; the import graph itself is cached.
    """
    files = sorted({f for m in modules for _, f in closure(m)})
    return stable_hash(__version__, [(Path(f).name, file_hash(f)) for f in files])
