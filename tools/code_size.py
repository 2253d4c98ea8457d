"""Code lines per module and per layer, and the import graph's circles.

A module's size is its code lines: docstrings, comments and blank lines
do not count, so a well-documented algorithm may be long and a cap does
not push code into a module where it does not belong.
``tests/test_packaging.py`` holds each module of the package under
:data:`CODE_LINE_CAP` and the package and ``benchmarks/`` free of import
circles.

    python tools/code_size.py            # code lines per layer
    python tools/code_size.py --modules  # and per module
"""

from __future__ import annotations

import argparse
import ast
import io
import pathlib
import tokenize
from collections import defaultdict

ROOT = pathlib.Path(__file__).resolve().parents[1]

#: The most code lines one module of the package may have.
CODE_LINE_CAP = 420

#: The layers of the package and the folders beside it, as reported.
LAYERS = (
    "keras_opts/_core",
    "keras_opts/optimizers",
    "keras_opts/wrappers",
    "keras_opts/schedules",
    "keras_opts",
    "benchmarks",
    "tests",
    "tools",
    "examples",
)

_NOT_CODE = {
    tokenize.COMMENT,
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENCODING,
    tokenize.ENDMARKER,
}


def _docstring_lines(tree: ast.AST) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if not isinstance(
            node,
            (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef),
        ):
            continue
        first = node.body[0] if node.body else None
        if (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
        ):
            lines.update(range(first.lineno, first.end_lineno + 1))
    return lines


def code_lines(source: str) -> int:
    """The lines of ``source`` that hold code: not blank, not only a
    comment, not part of a module's, class' or function's docstring."""
    lines = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in _NOT_CODE:
            lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines - _docstring_lines(ast.parse(source)))


def modules(root: pathlib.Path) -> dict[str, pathlib.Path]:
    """Dotted module name -> file, for every ``.py`` file under ``root``
    (a package folder, named relative to its parent)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imported(name: str, path: pathlib.Path, known) -> set[str]:
    """The modules of ``known`` that module ``name`` imports, at any
    depth of its code (an import inside a function still ties the two)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[
                    : len(package.split(".")) + 1 - node.level
                ]
                target = ".".join([*base, *filter(None, [node.module])])
            else:
                target = node.module
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                if submodule in known:
                    found.add(submodule)
                elif target in known:
                    found.add(target)
    return found - {name}


def import_graph(roots) -> dict[str, set[str]]:
    """Module -> the modules it imports, among the modules under
    ``roots`` (package folders)."""
    known = {}
    for root in roots:
        known.update(modules(pathlib.Path(root)))
    return {name: _imported(name, path, known) for name, path in known.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of ``graph``: each strongly connected set of
    more than one module, sorted (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def per_layer(root: pathlib.Path = ROOT) -> dict[str, tuple[int, int]]:
    """Layer -> (modules, code lines); a file counts in the first layer
    of :data:`LAYERS` whose folder holds it."""
    totals = defaultdict(lambda: [0, 0])
    tops = sorted({layer.split("/")[0] for layer in LAYERS})
    for path in sorted(p for top in tops for p in (root / top).rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        layer = next(x for x in LAYERS if relative.startswith(x + "/"))
        totals[layer][0] += 1
        totals[layer][1] += code_lines(path.read_text())
    return {layer: tuple(totals[layer]) for layer in LAYERS if layer in totals}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--modules", action="store_true", help="also list each module"
    )
    args = parser.parse_args(argv)
    print("| layer | modules | code lines |\n|---|---|---|")
    for layer, (count, lines) in per_layer().items():
        print(f"| `{layer}/` | {count} | {lines} |")
    if args.modules:
        print()
        for name, path in modules(ROOT / "keras_opts").items():
            print(f"{code_lines(path.read_text()):5d}  {name}")
    graph = import_graph([ROOT / "keras_opts", ROOT / "benchmarks"])
    for circle in circles(graph):
        print("import circle:", " <-> ".join(circle))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
