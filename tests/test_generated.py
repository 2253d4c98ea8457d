"""The files that tools/generate.py writes are up to date, and the script
finds every kind of staleness, fixes it, and keeps what is written by hand.

Generated: the export lists of ``keras_opts/__init__.py`` and
``keras_opts/optimizers/__init__.py``, the tables of ``README.md`` and
``docs/index.md``, the ``mkdocs.yml`` navigation, and a stub page for each
public name without one.
"""

import pathlib
import shutil

import pytest

from tests import helpers, specs

pytestmark = helpers.backend_independent

ROOT = pathlib.Path(__file__).parents[1]
HINT = "stale: run `KERAS_BACKEND=jax python tools/generate.py`"


GENERATE = helpers.tools_module("generate")
FILES = (
    "README.md",
    "docs/index.md",
    "mkdocs.yml",
    "keras_opts/__init__.py",
    "keras_opts/optimizers/__init__.py",
)


def test_the_generated_files_are_up_to_date():
    stale = GENERATE.check()
    assert not stale, f"{HINT}: {', '.join(stale)}"


@pytest.fixture
def copy(tmp_path):
    """The generated files and the docs pages, copied under tmp_path."""
    for path in FILES:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    for folder in ("optimizers", "schedules"):
        shutil.copytree(ROOT / "docs" / folder, tmp_path / "docs" / folder)
    return tmp_path


def _edit(path, old, new):
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def test_check_names_each_stale_file_and_write_fixes_it(copy):
    docs = copy / "docs"
    radam_page = (docs / "optimizers" / "RAdam.md").read_text()
    warmup_prose = "\nA hand-written note.\n"
    _edit(copy / "README.md", "| `adam` |", "| `adam2` |")
    _edit(docs / "index.md", "`torch.optim.Adam(lr)`", "`torch.optim.Adam()`")
    _edit(copy / "mkdocs.yml", "      - Yogi: optimizers/Yogi.md\n", "")
    _edit(copy / "keras_opts/__init__.py", "    Yogi,\n", "")
    _edit(copy / "keras_opts/optimizers/__init__.py", '    "Yogi",\n', "")
    (docs / "optimizers" / "Adam.md").unlink()
    (docs / "schedules" / "Warmup.md").write_text(warmup_prose)
    (docs / "optimizers" / "Removed.md").write_text("::: keras_opts.X\n")

    assert GENERATE.check(copy) == [
        "keras_opts/optimizers/__init__.py",
        "keras_opts/__init__.py",
        "README.md",
        "docs/index.md",
        "mkdocs.yml",
        "docs/optimizers/Adam.md (missing)",
        "docs/schedules/Warmup.md",
        "docs/optimizers/Removed.md (no such public name)",
    ]
    assert len(GENERATE.write(copy)) == 7
    assert GENERATE.check(copy) == [
        "docs/optimizers/Removed.md (no such public name)"
    ]
    for path in FILES:
        assert (copy / path).read_text() == (ROOT / path).read_text(), path
    # A new page is a stub; an existing one keeps its text.
    # A new optimizer page gets its generated Arguments table at once.
    real = (ROOT / "docs" / "optimizers" / "Adam.md").read_text()
    table = real[
        real.index(GENERATE.ARGS_BEGIN) : real.index(GENERATE.ARGS_END)
    ]
    assert (docs / "optimizers" / "Adam.md").read_text() == (
        f"::: keras_opts.Adam\n\n{table}{GENERATE.ARGS_END}\n\n"
        "## Recommended starting point\n\n"
        "<!-- starting-point:begin -->\n<!-- starting-point:end -->\n"
    )
    assert (docs / "schedules" / "Warmup.md").read_text() == (
        f"::: keras_opts.schedules.Warmup\n\n{warmup_prose}"
    )
    assert (docs / "optimizers" / "RAdam.md").read_text() == radam_page


def test_a_missing_marker_is_named(copy):
    _edit(copy / "mkdocs.yml", GENERATE.NAV_END, "")
    with pytest.raises(GENERATE.StaleError, match="mkdocs.yml: needs one"):
        GENERATE.check(copy)


class Lion:
    """A stand-in for a new optimizer module's class."""

    __module__ = "keras_opts.optimizers.lion"


def test_a_new_optimizer_module_gets_explicit_exports_and_a_page():
    classes = [*GENERATE.discover_optimizers(), Lion]
    init = GENERATE.optimizers_init(classes)
    assert "\nfrom keras_opts.optimizers.lion import Lion\n" in init
    assert '\n    "Lion",\n' in init
    exports = GENERATE.package_exports(classes, ["SAM", "SWA", "Lookahead"])
    assert "\n    Lion,\n" in exports and '\n    "Lion",\n' in exports
    sections = GENERATE.doc_sections(
        specs, classes, ["SAM"], ["Warmup", "Cyclical"]
    )
    # Specced optimizers in the docs' order, a new one after them.
    names = [name for name, _ in sections["Optimizers"]]
    assert names[0] == "SGD" and names[-2:] == ["Lion", "get"]
    assert sections["Schedules"] == [
        ("Warmup", "schedules/Warmup.md"),
        ("Cyclical", "schedules/Cyclical.md"),
    ]
    assert GENERATE.page_stub("Optimizers", "Lion").startswith(
        "::: keras_opts.Lion\n\n## Recommended starting point\n"
    )


def test_imported_names_are_in_isort_order():
    names = ["Yogi", "get", "SGD", "AdEMAMix", "AdaBelief", "ADOPT"]
    assert sorted(names, key=GENERATE.member_key) == [
        "ADOPT",
        "SGD",
        "AdaBelief",
        "AdEMAMix",
        "Yogi",
        "get",
    ]
