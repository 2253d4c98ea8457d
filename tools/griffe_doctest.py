"""Griffe extension for the docs build: doctest blocks become code.

The docstrings keep their examples as plain doctest blocks (``>>>`` lines
and their output, ended by a blank line), which is what ``pytest
--doctest-modules`` runs and what ``help()`` shows. Markdown reads a line
that starts with ``>>>`` as a quote nested three deep, so on the docs pages
the prompts vanished and the output ran into the code. This extension wraps
every doctest block of every docstring in a fenced ``pycon`` block before
mkdocstrings parses it, so each example is shown as highlighted Python with
its prompts and outputs.

Loaded from mkdocs.yml (``extensions`` of the mkdocstrings Python handler).
"""

from __future__ import annotations

from typing import Any

import griffe

PROMPT = ">>>"
FENCE = "```"


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


class DoctestBlocks(griffe.Extension):
    """Fences the doctest blocks of every loaded object's docstring."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(obj.docstring.value)
