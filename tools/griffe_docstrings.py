"""Griffe extension for the docs build: docstrings as the pages show them.

Doctest blocks become code. The docstrings keep their examples as plain
doctest blocks (``>>>`` lines and their output, ended by a blank line),
which is what ``pytest --doctest-modules`` runs and what ``help()`` shows.
Markdown reads a line that starts with ``>>>`` as a quote nested three
deep, so on the docs pages the prompts vanished and the output ran into the
code. This extension wraps every doctest block of every docstring in a
fenced ``pycon`` block before mkdocstrings parses it, so each example is
shown as highlighted Python with its prompts and outputs.

Sphinx roles become links. A few docstrings name another class as
``:class:`Name```, which Markdown shows as the literal text ``:class:``; a
role naming a public name of the package becomes a link to its page, any
other a plain ``Name`` in code font.

Loaded from mkdocs.yml (``extensions`` of the mkdocstrings Python handler).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

PROMPT = ">>>"
FENCE = "```"
ROLE = re.compile(r":(?:class|func|meth|attr|mod|obj):`~?([\w.]+)`")


def fence_doctests(text: str) -> str:
    """``text`` with each doctest block wrapped in a ```` ```pycon ```` fence.

    A block starts at a line whose first non-blank characters are ``>>>``
    and runs to the next blank line or the next line indented less than its
    first; the fence takes the block's indentation. Blocks already inside a
    fence are left alone.
    """
    lines = text.split("\n")
    out: list[str] = []
    in_fence = False
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if stripped.startswith(FENCE):
            in_fence = not in_fence
        if in_fence or not stripped.startswith(PROMPT):
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(stripped)]
        out.append(f"{indent}{FENCE}pycon")
        while (
            i < len(lines) and lines[i].strip() and lines[i].startswith(indent)
        ):
            out.append(lines[i])
            i += 1
        out.append(f"{indent}{FENCE}")
    return "\n".join(out)


def link_roles(text: str, public: dict[str, str]) -> str:
    """``text`` with each Sphinx role as a Markdown cross-reference.

    ``public`` maps a short name to the full path of the object rendered on
    its page (``"Adam"`` -> ``"keras_opts.Adam"``); names not in it become
    plain code.
    """

    def replace(match: re.Match) -> str:
        name = match.group(1)
        path = public.get(name.rsplit(".", 1)[-1])
        return f"[`{name}`][{path}]" if path else f"`{name}`"

    return ROLE.sub(replace, text)


def _public_names(package: griffe.Module) -> dict[str, str]:
    """Short name -> full path for the exports of ``package`` and of its
    subpackages (``keras_opts.Adam``, ``keras_opts.schedules.Warmup``)."""
    names = {}
    for module in (package, *package.modules.values()):
        for name in module.exports or ():
            if isinstance(name, str):
                names.setdefault(name, f"{module.path}.{name}")
    return names


class DocstringsForPages(griffe.Extension):
    """Rewrites every loaded object's docstring for the pages: doctest
    blocks fenced as code, Sphinx roles as links."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is None:
            return
        text = fence_doctests(obj.docstring.value)
        obj.docstring.value = link_roles(text, _public_names(obj.package))
