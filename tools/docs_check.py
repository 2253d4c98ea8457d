"""Checks the built docs as a reader sees them, in headless Chromium.

Builds the site (strictly, as ``make test`` does) unless ``--site`` names a
built one, opens every page from disk with no network, lets MathJax run,
and fails if any formula is left as raw LaTeX (``\\(``, ``\\[``) or any
parameter table holds a blockquote. ``--screenshots DIR`` also saves a
PNG of each page checked.

    python tools/docs_check.py [--site SITE] [--pages optimizers/SOAP ...]

Needs Chromium (Debian: ``apt-get install chromium``); exits 2 without it.
"""

from __future__ import annotations

import argparse
import html.parser
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import run_tests  # noqa: E402

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
#: Milliseconds of the page's own (virtual) time before the DOM is read:
#: MathJax typesets every page of this site well within it.
BUDGET_MS = 20000


def browser() -> str | None:
    """The Chromium on PATH, or None."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


class _Rendered(html.parser.HTMLParser):
    """Raw LaTeX delimiters outside code, typeset formulas, and
    blockquotes inside tables, in a rendered DOM."""

    SKIP = {"code", "pre", "script", "style", "mjx-assistive-mml"}

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.raw: list[str] = []
        self.formulas = 0
        self.quoted_tables = 0

    def handle_starttag(self, tag, attrs):
        if tag == "mjx-container":
            self.formulas += 1
        if tag == "blockquote" and "table" in self.stack:
            self.quoted_tables += 1
        if tag not in ("br", "img", "input", "meta", "link", "hr"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        while self.stack and self.stack.pop() != tag:
            pass

    def handle_data(self, data):
        if self.SKIP.intersection(self.stack):
            return
        for mark in ("\\(", "\\["):
            if mark in data:
                self.raw.append(data.strip()[:80])


def render(chromium: str, page: pathlib.Path, shot: pathlib.Path | None):
    """The DOM of ``page`` once its scripts have run."""
    base = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--allow-file-access-from-files",
        f"--virtual-time-budget={BUDGET_MS}",
    ]
    url = page.as_uri()
    if shot is not None:
        subprocess.run(
            [*base, "--window-size=1280,2000", f"--screenshot={shot}", url],
            capture_output=True,
            timeout=120,
            check=True,
        )
    done = subprocess.run(
        [*base, "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def check(site: pathlib.Path, pages, shots: pathlib.Path | None) -> list[str]:
    """The problems found on ``pages`` (paths under ``site``, without
    ``index.html``; all pages when empty)."""
    chromium = browser()
    if chromium is None:
        raise FileNotFoundError("no Chromium on PATH")
    if pages:
        files = [site / p / "index.html" for p in pages]
    else:
        files = sorted(site.rglob("index.html"))
    problems = []
    for file in files:
        name = str(file.parent.relative_to(site)) or "index"
        shot = None
        if shots is not None:
            shots.mkdir(parents=True, exist_ok=True)
            shot = shots / (name.replace("/", "_") + ".png")
        dom = _Rendered()
        dom.feed(render(chromium, file, shot))
        if dom.raw:
            problems.append(f"{name}: raw LaTeX left: {dom.raw[:3]}")
        if dom.quoted_tables:
            problems.append(f"{name}: a blockquote inside a table")
        print(f"{name}: {dom.formulas} formulas typeset", flush=True)
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=pathlib.Path)
    parser.add_argument("--pages", nargs="*", default=[])
    parser.add_argument("--screenshots", type=pathlib.Path)
    args = parser.parse_args(argv)
    if browser() is None:
        print("docs_check: no Chromium on PATH", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        site = args.site
        if site is None:
            site = pathlib.Path(tmp) / "site"
            subprocess.run(
                run_tests.docs_command(site),
                cwd=ROOT,
                env={**os.environ, **run_tests.DOCS_ENV},
                check=True,
            )
        problems = check(site, args.pages, args.screenshots)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
