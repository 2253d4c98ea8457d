"""Every public name has a docs page, the docs tables match the registry,
the strict build fails on a warning, and every docstring example shows on
its page as highlighted code."""

import doctest
import html.parser
import importlib
import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

import keras_opts
from keras_opts import schedules
from tests import helpers
from tests import specs as registry

pytestmark = helpers.backend_independent

ROOT = pathlib.Path(__file__).parents[1]
DOCS = ROOT / "docs"


RUN_TESTS = helpers.tools_module("run_tests")


def _build_docs(config_dir, site_dir):
    """``mkdocs build`` exactly as tools/run_tests.py runs it."""
    pytest.importorskip("mkdocs")
    return subprocess.run(
        RUN_TESTS.docs_command(site_dir),
        cwd=config_dir,
        env={**os.environ, **RUN_TESTS.DOCS_ENV},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The docs, built once for this module's tests; the build must pass."""
    site_dir = tmp_path_factory.mktemp("site")
    build = _build_docs(ROOT, site_dir)
    assert build.returncode == 0, build.stderr
    return site_dir


def _page_names(folder):
    return {p.stem for p in (DOCS / folder).glob("*.md")}


def test_every_public_name_has_a_page_that_renders_it():
    public = {n for n in keras_opts.__all__ if n != "schedules"}
    assert _page_names("optimizers") == public
    assert _page_names("schedules") == set(schedules.__all__)
    for name in public:
        text = (DOCS / "optimizers" / f"{name}.md").read_text()
        assert f"::: keras_opts.{name}" in text
    for name in schedules.__all__:
        text = (DOCS / "schedules" / f"{name}.md").read_text()
        assert f"::: keras_opts.schedules.{name}" in text


def test_every_page_is_in_the_navigation():
    nav = (DOCS.parent / "mkdocs.yml").read_text()
    for page in DOCS.rglob("*.md"):
        if page.parent.name == "images":  # example output, e.g. compare.md
            continue
        assert str(page.relative_to(DOCS)) in nav, page


def test_docs_tables_are_generated_from_the_registry():
    text = (DOCS / "index.md").read_text()

    def block(name):
        begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
        return text.split(begin)[1].split(end)[0].strip()

    assert block("optimizers") == registry.markdown_table()
    assert block("references") == registry.markdown_references()


def test_gallery_images_exist():
    text = (DOCS / "gallery.md").read_text()
    for line in text.splitlines():
        if line.startswith("!["):
            image = line.split("(")[1].rstrip(")")
            assert (DOCS / image).exists(), image


def test_the_docs_build_is_strict_and_shows_its_warnings():
    command = RUN_TESTS.docs_command("site")
    assert "--strict" in command
    assert not {"--quiet", "-q"} & set(command)


def test_a_planted_warning_fails_the_strict_build(tmp_path):
    """A copy of the docs with a broken link, a link to a missing heading
    and a nav entry to a missing page: the build as run_tests.py runs it
    must fail and name all three."""
    copy = tmp_path / "project"
    copy.mkdir()
    shutil.copy(ROOT / "mkdocs.yml", copy)
    shutil.copytree(DOCS, copy / "docs")
    for source in ("keras_opts", "tools"):
        (copy / source).symlink_to(ROOT / source)
    with open(copy / "docs" / "index.md", "a") as index:
        index.write("\n[a planted link](planted_missing_page.md)\n")
        index.write("\n[a planted anchor](porting.md#planted-anchor)\n")
    with open(copy / "mkdocs.yml", "a") as config:
        config.write("  - Planted: planted_missing_nav.md\n")
    build = _build_docs(copy, tmp_path / "site")
    log = build.stdout + build.stderr
    assert build.returncode != 0, log
    assert "planted_missing_page.md" in log
    assert "planted_missing_nav.md" in log
    assert "#planted-anchor" in log
    assert "Aborted with 3 warnings in strict mode" in log


class _CodeParser(html.parser.HTMLParser):
    """Where each ``>>>`` prompt of a page sits, and the text of its code
    blocks."""

    def __init__(self):
        super().__init__()
        self.stack, self.prompts, self.code = [], [], []

    def handle_starttag(self, tag, attrs):
        if tag not in ("br", "img", "input", "meta", "link", "hr"):
            self.stack.append((tag, dict(attrs).get("class") or ""))

    def handle_endtag(self, tag):
        while self.stack and self.stack.pop()[0] != tag:
            pass

    def handle_data(self, data):
        tags = [tag for tag, _ in self.stack]
        if "code" in tags and "pre" in tags:
            self.code.append(data)
        if ">>>" in data:
            self.prompts.append(list(self.stack))


class _StructureParser(_CodeParser):
    """Which tags hold each ``<blockquote>`` of a page, and the ``src`` of
    every ``<script>``."""

    def __init__(self):
        super().__init__()
        self.quotes, self.scripts = [], []

    def handle_starttag(self, tag, attrs):
        if tag == "blockquote":
            self.quotes.append([t for t, _ in self.stack])
        if tag == "script" and dict(attrs).get("src"):
            self.scripts.append(dict(attrs)["src"])
        super().handle_starttag(tag, attrs)


def _site_pages(site):
    return sorted(site.rglob("*.html"))


def test_no_parameter_table_holds_a_quote(site):
    # A docstring line that starts with ">" (">= 1") inside an argument's
    # description became a <blockquote> inside the parameter table.
    for page in _site_pages(site):
        parser = _StructureParser()
        parser.feed(page.read_text())
        for tags in parser.quotes:
            assert "table" not in tags, f"{page}: a blockquote in a table"


def test_the_site_ships_its_own_mathjax(site):
    # Read offline or behind a firewall, the formulas must still render:
    # no script comes from another host, and MathJax's fonts are there.
    mathjax = site / "javascripts" / "mathjax"
    assert (mathjax / "tex-chtml-full.js").stat().st_size > 10**6
    fonts = mathjax / "output" / "chtml" / "fonts" / "woff-v2"
    assert len(list(fonts.glob("*.woff"))) == 23
    page = site / "optimizers" / "RAdam" / "index.html"
    parser = _StructureParser()
    parser.feed(page.read_text())
    assert any(s.endswith("tex-chtml-full.js") for s in parser.scripts)
    for page in _site_pages(site):
        parser = _StructureParser()
        parser.feed(page.read_text())
        remote = [s for s in parser.scripts if "://" in s]
        assert not remote, f"{page}: scripts from elsewhere: {remote}"


def test_formulas_typeset_offline_in_a_browser(site):
    # What a reader sees: MathJax runs from the site's own copy, on a page
    # opened from disk, and leaves no formula as raw LaTeX.
    checker = helpers.tools_module("docs_check")
    if checker.browser() is None:
        pytest.skip("no Chromium on PATH (make docs-check needs it)")
    pages = ["optimizers/SOAP", "optimizers/RAdam"]
    assert checker.check(site, pages, None) == []


def _example_pages():
    pages = {
        f"optimizers/{n}": getattr(keras_opts, n)
        for n in keras_opts.__all__
        if n != "schedules"
    }
    pages.update(
        {f"schedules/{n}": getattr(schedules, n) for n in schedules.__all__}
    )
    return pages


@pytest.mark.parametrize("page", sorted(_example_pages()))
def test_docstring_examples_render_as_highlighted_code(site, page):
    obj = _example_pages()[page]
    examples = doctest.DocTestParser().get_examples(obj.__doc__)
    assert examples, f"{page}: the docstring has no example"
    parser = _CodeParser()
    text = (site / page / "index.html").read_text()
    assert ":class:" not in text and ":func:" not in text, page
    parser.feed(text)
    assert parser.prompts, f"{page}: no >>> prompt on the page"
    for stack in parser.prompts:
        tags = [tag for tag, _ in stack]
        assert "blockquote" not in tags, f"{page}: an example in a quote"
        assert tags[-3:] == ["pre", "code", "span"], (page, tags)
        assert "highlight" in stack[-4][1], (page, stack)
        assert stack[-1][1] == "gp", (page, stack)  # a Pygments prompt
    code = "".join(parser.code)
    for example in examples:
        assert f">>> {example.source.splitlines()[0]}" in code, page
        if example.want:
            assert example.want.strip() in code, page


def test_sphinx_roles_become_links_or_code():
    module = helpers.tools_module("griffe_docstrings")
    text = "as in :class:`Adam`, not :func:`~numpy.sqrt` or :class:`Other`."
    public = {"Adam": "keras_opts.Adam"}
    assert module.link_roles(text, public) == (
        "as in [`Adam`][keras_opts.Adam], not `numpy.sqrt` or `Other`."
    )


def test_fence_doctests_wraps_each_block_at_its_indentation():
    module = helpers.tools_module("griffe_docstrings")
    text = "\n".join(
        [
            "Example:",
            "",
            ">>> x = 1",
            "... + 1",
            ">>> x",
            "2",
            "",
            "Args:",
            "    a: text.",
            "        >>> a",
            "          1",
            "    b: more.",
            "```python",
            ">>> left alone",
            "```",
        ]
    )
    assert module.fence_doctests(text).split("\n") == [
        "Example:",
        "",
        "```pycon",
        ">>> x = 1",
        "... + 1",
        ">>> x",
        "2",
        "```",
        "",
        "Args:",
        "    a: text.",
        "        ```pycon",
        "        >>> a",
        "          1",
        "        ```",
        "    b: more.",
        "```python",
        ">>> left alone",
        "```",
    ]


@pytest.fixture(scope="module")
def starting_points():
    """examples/starting_points.py as a module."""
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        yield importlib.import_module("starting_points")
    finally:
        sys.path.remove(str(ROOT / "examples"))


def _measured():
    return json.loads((DOCS / "starting_points.json").read_text())


def test_every_optimizer_page_quotes_its_measured_starting_point(
    starting_points,
):
    results = _measured()
    pages = {n for n in keras_opts.__all__ if n not in ("get", "schedules")}
    assert set(results["optimizers"]) == pages
    begin, end = starting_points.BEGIN, starting_points.END
    for page, entry in results["optimizers"].items():
        text = (DOCS / "optimizers" / f"{page}.md").read_text()
        section = text.split("## Recommended starting point", 1)[1]
        block = section.split(begin, 1)[1].split(end, 1)[0].strip()
        expected = starting_points.markdown_block(entry, results["setup"])
        assert block == expected, f"{page}: run --docs-only to update it"


def test_the_measured_defaults_are_still_the_defaults(starting_points):
    """The pages' "defaults" rows are only true while the classes keep the
    defaults they were measured with."""
    results = _measured()
    for spec in registry.SPECS:
        measured = results["optimizers"][spec.cls.__name__]["defaults"]
        current = starting_points.class_defaults(spec.name)
        for key in measured.keys() & current.keys():
            assert measured[key] == current[key], (spec.name, key)


def test_starting_points_measures_and_renders(starting_points, monkeypatch):
    """The script on 128 random images for one epoch: one rate, the
    default."""
    monkeypatch.setattr(starting_points, "SWEEPS", {"adam": [0.001]})
    monkeypatch.setattr(starting_points, "EPOCHS", 1)
    rng = np.random.default_rng(0)
    x = rng.random((160, 784), dtype=np.float32)
    y = rng.integers(0, 10, 160)
    data = ((x[:128], y[:128]), (x[128:], y[128:]))
    entries = starting_points.measure(["adam"], data, log=lambda _: None)
    assert set(entries) == {"Adam"}
    entry = entries["Adam"]
    assert entry["recommended"] == entry["default"] == entry["sweep"][0]
    assert 0.0 <= entry["recommended"]["test_accuracy"] <= 1.0
    setup = starting_points.setup("jax")
    block = starting_points.markdown_block(entry, setup)
    assert "| recommended: the defaults | `Adam(learning_rate=0.001)` |" in (
        block
    )
