"""Every public name has a docs page, and the docs tables match the
registry (the build itself runs with --strict in tools/run_tests.py)."""

import pathlib

import keras_opts
from keras_opts import registry, schedules

DOCS = pathlib.Path(__file__).parents[1] / "docs"


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
