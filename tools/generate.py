"""Writes every file that the optimizer modules and tests/specs.py determine.

    KERAS_BACKEND=jax python tools/generate.py          # write them
    KERAS_BACKEND=jax python tools/generate.py --check  # name the stale ones

Written by hand (the sources):

- ``keras_opts/optimizers/<algorithm>.py``: one public optimizer class per
  module, which makes it part of the package;
- ``tests/specs.py``: what the tests and the docs know of each optimizer
  (``SPECS``), and the order of the docs (``SPECS``, ``WRAPPERS``,
  ``SCHEDULES``);
- ``__all__`` of ``keras_opts/wrappers/__init__.py`` and
  ``keras_opts/schedules/__init__.py``.

Generated from them (never edit these parts by hand):

- ``keras_opts/optimizers/__init__.py``, the whole file: an explicit import
  and ``__all__`` entry per optimizer class;
- ``keras_opts/__init__.py`` between its ``generated:exports`` markers: the
  explicit re-exports and ``__all__`` (``keras_opts/registry.py`` derives
  the names ``keras_opts.get`` knows from the optimizers' ``__all__``);
- the optimizer and reference tables of ``README.md`` and
  ``docs/index.md``, between their ``<!-- optimizers:begin -->`` ... and
  ``<!-- references:begin -->`` ... markers;
- the Optimizers, Wrappers and Schedules sections of the ``mkdocs.yml``
  navigation, between its ``generated:nav`` markers;
- the "Arguments" table of each optimizer's page, between its
  ``<!-- arguments:begin -->`` ... markers (added below the API reference
  where missing): each hyperparameter of the class' signature with its
  default and the values its rule allows (``keras_opts._core.config``);
- a page stub ``docs/optimizers/<Name>.md`` or ``docs/schedules/<Name>.md``
  for each public name that has no page. A page is never overwritten: its
  prose and its measured "Recommended starting point" block
  (``examples/starting_points.py --write-docs``) are kept.

``tests/test_generated.py`` fails when any of them is stale.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import pathlib
import sys
from collections.abc import Iterable

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import keras  # noqa: E402

PACKAGE = ROOT / "keras_opts"

#: Names of keras_opts/__init__.py that are not classes of a subpackage.
OTHER_EXPORTS = ("get", "schedules")

PY_BEGIN, PY_END = "# generated:exports:begin", "# generated:exports:end"
NAV_BEGIN, NAV_END = "  # generated:nav:begin", "  # generated:nav:end"
PY_NOTE = (
    "# Written by tools/generate.py from the modules of keras_opts/optimizers\n"
    "# and keras_opts.wrappers.__all__: run it, do not edit these lines.\n"
)
NAV_NOTE = (
    "  # Written by tools/generate.py from tests/specs.py: run it, do not\n"
    "  # edit these lines.\n"
)

OPTIMIZERS_INIT_DOC = '''\
"""The optimizers: one module per algorithm, each a subclass of
:class:`keras_opts._core.base.Optimizer` with its update written once as a
kernel.

Written by tools/generate.py from the modules of this package: run it, do
not edit this file.
"""
'''

#: The measured section that examples/starting_points.py fills in.
STARTING_POINT = (
    "## Recommended starting point\n\n"
    "<!-- starting-point:begin -->\n<!-- starting-point:end -->\n"
)


class StaleError(Exception):
    """A generated file cannot be written as it is (a marker is missing)."""


def member_key(name: str) -> tuple[int, str, str]:
    """isort's order of imported names (ruff's default): constants, then
    classes, then the rest, each case-insensitively."""
    if len(name) > 1 and name.isupper():
        rank = 0
    elif name[:1].isupper():
        rank = 1
    else:
        rank = 2
    return rank, name.lower(), name


def discover_optimizers() -> list[type]:
    """The public optimizer classes of ``keras_opts/optimizers/*.py``, in
    the order of their modules' names."""
    found = []
    for path in sorted((PACKAGE / "optimizers").glob("*.py")):
        if path.stem.startswith("_"):
            continue
        module = importlib.import_module(f"keras_opts.optimizers.{path.stem}")
        found.extend(
            obj
            for name, obj in sorted(vars(module).items())
            if isinstance(obj, type)
            and obj.__module__ == module.__name__
            and not name.startswith("_")
            and issubclass(obj, keras.optimizers.Optimizer)
        )
    return found


def _import_block(module: str, names: Iterable[str]) -> str:
    names = sorted(names, key=member_key)
    line = f"from {module} import {', '.join(names)}"
    if len(line) <= 80:
        return line + "\n"
    body = "".join(f"    {name},\n" for name in names)
    return f"from {module} import (\n{body})\n"


def _all_block(names: Iterable[str]) -> str:
    body = "".join(f'    "{name}",\n' for name in sorted(names, key=member_key))
    return f"__all__ = [\n{body}]\n"


def optimizers_init(classes: list[type]) -> str:
    """The whole of keras_opts/optimizers/__init__.py."""
    modules: dict[str, list[str]] = {}
    for cls in classes:
        modules.setdefault(cls.__module__, []).append(cls.__name__)
    imports = "".join(
        _import_block(module, names)
        for module, names in sorted(modules.items())
    )
    names = [cls.__name__ for cls in classes]
    return f"{OPTIMIZERS_INIT_DOC}\n{imports}\n{_all_block(names)}"


def package_exports(classes: list[type], wrappers: list[str]) -> str:
    """The generated lines of keras_opts/__init__.py."""
    names = [cls.__name__ for cls in classes]
    return (
        PY_NOTE
        + _import_block("keras_opts.optimizers", names)
        + _import_block("keras_opts.wrappers", wrappers)
        + "\n"
        + _all_block([*names, *wrappers, *OTHER_EXPORTS])
    )


def _in_order(preferred: Iterable[str], present: Iterable[str]) -> list[str]:
    """``present`` in the order of ``preferred``, then the others sorted."""
    present = list(present)
    first = [name for name in preferred if name in present]
    return first + sorted(set(present) - set(first), key=str.lower)


def doc_sections(specs, classes, wrappers, schedules):
    """Section title -> [(page title, page path)], in the docs' order."""
    optimizers = _in_order(
        [spec.cls.__name__ for spec in specs.SPECS],
        [cls.__name__ for cls in classes],
    )
    wrappers = _in_order([w.__name__ for w in specs.WRAPPERS], wrappers)
    schedules = _in_order([s.__name__ for s in specs.SCHEDULES], schedules)
    return {
        "Optimizers": [
            (name, f"optimizers/{name}.md") for name in [*optimizers, "get"]
        ],
        "Wrappers": [(name, f"optimizers/{name}.md") for name in wrappers],
        "Schedules": [(name, f"schedules/{name}.md") for name in schedules],
    }


def nav(sections) -> str:
    lines = [NAV_NOTE.rstrip("\n")]
    for title, pages in sections.items():
        lines.append(f"  - {title}:")
        lines.extend(f"      - {name}: {path}" for name, path in pages)
    return "\n".join(lines) + "\n"


def page_stub(section: str, name: str) -> str:
    """A new page: the API reference, and for an optimizer or a wrapper the
    section examples/starting_points.py measures."""
    if section == "Schedules":
        return f"::: keras_opts.schedules.{name}\n"
    if name == "get":
        return f"::: keras_opts.{name}\n"
    return f"::: keras_opts.{name}\n\n{STARTING_POINT}"


ARGS_BEGIN, ARGS_END = "<!-- arguments:begin -->", "<!-- arguments:end -->"


def arguments_table(cls) -> str:
    """The "Arguments" section of an optimizer's page: the hyperparameters
    its signature declares (not those every optimizer shares), each with
    its default and the values it allows."""
    from keras_opts._core import config
    from keras_opts._core.base import Optimizer

    shared = config.declared(Optimizer)
    rate = inspect.signature(cls).parameters["learning_rate"].default
    rows = [
        f"| `learning_rate` | `{rate!r}` | > 0, a `LearningRateSchedule` "
        "or a callable |"
    ] + [
        f"| `{name}` | `{h.default!r}` | {h.rule.allowed} |"
        for name, h in config.declared(cls).items()
        if name not in shared
    ]
    return "\n".join(
        [
            "## Arguments",
            "",
            "Checked when the optimizer is created; a value outside these "
            "raises a `ValueError` naming the argument. Every optimizer also "
            "takes Keras' arguments (`weight_decay`, `clipnorm`, "
            "`gradient_accumulation_steps`, ...) and the options of "
            "[Step options](../step_options.md).",
            "",
            "| argument | default | allowed |",
            "|---|---|---|",
            *rows,
        ]
    )


def with_arguments(text: str, directive: str, table: str, where) -> str:
    """A page's ``text`` with ``table`` between its arguments markers,
    which go right below ``directive`` where the page has none."""
    if ARGS_BEGIN not in text:
        text = text.replace(
            f"{directive}\n",
            f"{directive}\n\n{ARGS_BEGIN}\n{ARGS_END}\n",
            1,
        )
    return replace_between(text, ARGS_BEGIN, ARGS_END, table, where)


def replace_between(text: str, begin: str, end: str, body: str, where) -> str:
    """``text`` with the lines between the ``begin`` and ``end`` markers
    replaced by ``body``."""
    if text.count(begin) != 1 or text.count(end) != 1:
        raise StaleError(f"{where}: needs one {begin!r} and one {end!r}")
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    return f"{head}{begin}\n{body.rstrip(chr(10))}\n{end}{tail}"


def sections() -> dict[str, list[tuple[str, str]]]:
    """The docs' sections of the public names as they are now."""
    from keras_opts import schedules, wrappers
    from tests import specs

    return doc_sections(
        specs, discover_optimizers(), list(wrappers.__all__), schedules.__all__
    )


def expected(root: pathlib.Path = ROOT) -> dict[str, str]:
    """Relative path -> the text it should have, for every generated file
    (read from ``root``, whose hand-written parts are kept)."""
    from keras_opts import wrappers
    from tests import specs

    classes = discover_optimizers()
    tables = {
        "optimizers": specs.markdown_table(),
        "references": specs.markdown_references(),
    }

    def read(path):
        return (root / path).read_text()

    out = {"keras_opts/optimizers/__init__.py": optimizers_init(classes)}
    out["keras_opts/__init__.py"] = replace_between(
        read("keras_opts/__init__.py"),
        PY_BEGIN,
        PY_END,
        package_exports(classes, list(wrappers.__all__)),
        "keras_opts/__init__.py",
    )
    for path in ("README.md", "docs/index.md"):
        text = read(path)
        for name, table in tables.items():
            begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
            text = replace_between(text, begin, end, table, path)
        out[path] = text
    out["mkdocs.yml"] = replace_between(
        read("mkdocs.yml"), NAV_BEGIN, NAV_END, nav(sections()), "mkdocs.yml"
    )
    by_name = {cls.__name__: cls for cls in classes}
    for section, pages in sections().items():
        for name, page in pages:
            path = root / "docs" / page
            stub = page_stub(section, name)
            text = path.read_text() if path.exists() else stub
            directive = stub.splitlines()[0]
            if directive not in text.splitlines():
                text = f"{directive}\n\n{text}"
            if name in by_name:
                table = arguments_table(by_name[name])
                text = with_arguments(text, directive, table, f"docs/{page}")
            out[f"docs/{page}"] = text
    return out


def orphan_pages(root: pathlib.Path = ROOT) -> list[str]:
    """Pages of docs/optimizers and docs/schedules that no public name has
    (to remove by hand: they may hold prose worth keeping)."""
    wanted = {page for pages in sections().values() for _, page in pages}
    docs = root / "docs"
    return sorted(
        page
        for folder in ("optimizers", "schedules")
        for path in (docs / folder).glob("*.md")
        if (page := path.relative_to(docs).as_posix()) not in wanted
    )


def check(root: pathlib.Path = ROOT) -> list[str]:
    """The generated files under ``root`` that differ from what they
    should be, and the pages of no public name."""
    stale = []
    for path, text in expected(root).items():
        file = root / path
        if not file.exists():
            stale.append(f"{path} (missing)")
        elif file.read_text() != text:
            stale.append(path)
    stale.extend(
        f"docs/{page} (no such public name)" for page in orphan_pages(root)
    )
    return stale


def write(root: pathlib.Path = ROOT) -> list[str]:
    """Writes the stale generated files under ``root``; returns their
    paths."""
    written = []
    for path, text in expected(root).items():
        file = root / path
        if not file.exists() or file.read_text() != text:
            file.write_text(text)
            written.append(path)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a generated file is stale",
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = check()
        for path in stale:
            print(f"stale: {path}")
        if stale:
            print("Run `python tools/generate.py` to update them.")
        return 1 if stale else 0
    for path in write():
        print(f"wrote {path}")
    orphans = orphan_pages()
    for page in orphans:
        print(f"docs/{page}: no public name has this page; remove it")
    return 1 if orphans else 0


if __name__ == "__main__":
    sys.exit(main())
