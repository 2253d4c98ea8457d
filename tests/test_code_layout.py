"""The code's shape: each module under the code-line cap, counted without
docstrings and comments, and no import circle in the package or the
benchmarks (``tools/code_size.py``)."""

from __future__ import annotations

import pathlib
import textwrap

import pytest

from tests import helpers

pytestmark = helpers.backend_independent

ROOT = pathlib.Path(__file__).resolve().parents[1]
CODE_SIZE = helpers.tools_module("code_size")


def test_code_lines_leave_out_docstrings_comments_and_blank_lines():
    source = textwrap.dedent(
        '''
        """A module docstring
        on two lines."""

        import math  # a comment after code counts as code


        # a comment alone
        def f(x):
            """One line."""
            return (
                x + 1
            )


        class C:
            """A class docstring."""

            value = "a string that is no docstring"
        '''
    )
    # import, def, return and its two continuation lines, class, value.
    assert CODE_SIZE.code_lines(source) == 7


@pytest.mark.parametrize(
    "name, path",
    sorted(CODE_SIZE.modules(ROOT / "keras_opts").items()),
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_every_module_is_under_the_code_line_cap(name, path):
    lines = CODE_SIZE.code_lines(path.read_text())
    assert lines <= CODE_SIZE.CODE_LINE_CAP, (
        f"{name}: {lines} code lines, the cap is {CODE_SIZE.CODE_LINE_CAP}"
    )


def test_no_import_circle_in_the_package_or_the_benchmarks():
    graph = CODE_SIZE.import_graph([ROOT / "keras_opts", ROOT / "benchmarks"])
    assert "keras_opts.optimizers.adam" in graph  # the graph is not empty
    assert CODE_SIZE.circles(graph) == []


def test_a_planted_circle_through_a_function_level_import_is_found(tmp_path):
    package = tmp_path / "planted"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from planted.sub import b\n")
    (package / "sub" / "b.py").write_text(
        "def later():\n    from .. import a\n    return a\n"
    )
    (package / "c.py").write_text("from planted import a\n")
    graph = CODE_SIZE.import_graph([package])
    assert graph["planted.c"] == {"planted.a"}
    assert CODE_SIZE.circles(graph) == [["planted.a", "planted.sub.b"]]
